"""Timing: contestants sampled round-robin, and the load of other processes."""
import gc
import os
import time

import numpy as np

from roipool import _workloads as wl


class OtherLoad:
    """CPU used by everything but this process while it runs, in cores: busy
    time of the whole machine (/proc/stat, steal included) minus this
    process's own CPU time, over wall time. On a shared machine a value near
    1 means one of the cores was taken, which spoils multi-thread timings."""

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), self._own()

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _own():
        t = os.times()
        return t.user + t.system

    def cores(self):
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        return max(0.0, (busy - self.busy0) - (self._own() - self.own0)) / wall if wall > 0 else None


def wait_quiet(deadline, log, quiet=0.25, window=2.0):
    """Until `deadline` (perf_counter seconds), wait for other processes to use
    fewer than `quiet` cores over a `window` s probe (--wait-quiet)."""
    waited = False
    while time.perf_counter() < deadline:
        probe = OtherLoad()
        time.sleep(window)
        other = probe.cores()
        if other is None or other < quiet:
            break
        if not waited:
            log(f"  waiting for a quiet machine (other processes use {other:.2f} cores) ...")
        waited = True
    else:
        if waited:
            log("  --wait-quiet budget spent; timing on a busy machine")


def med_ms(s):
    return float(np.median(s)) * 1e3


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


class Contestant:
    """One thing to time: `fn` called `number` times per sample, `repeat`
    samples, `setup` (untimed) before each sample, e.g. torch.set_num_threads."""

    def __init__(self, key, fn, number, repeat, setup=None):
        self.key, self.fn, self.number, self.repeat, self.setup = key, fn, number, repeat, setup
        self.samples = []


# Worker threads of the runtimes spin for a while after a call (ONNX
# Runtime's intra-op pool, the OpenMP pools of torch and roipool) and would
# take a core from the next contestant; a pause before each sample lets them
# go to sleep. Without it roipool's short 2-thread calls measured up to 40%
# slower right after an ORT call (1->2 thread scaling of vgg16-frcnn-300 read
# 1.47-1.50x; with it 1.76-2.17x on the same machine).
PAUSE_S = 0.02
# A timed run of a call shorter than this repeats the call (timeit's
# autorange): a single 2 ms call measures a wake-up, not the steady state.
MIN_SAMPLE_S = 0.02


def round_robin(contestants, warmup=1, pause=PAUSE_S):
    """Time the contestants in rounds: sample i of every contestant, then
    sample i + 1, ... so that a change in the machine's load (shared, noisy)
    hits all of them alike instead of whichever was being timed at the time.
    Each contestant first gets `warmup` untimed samples; a contestant of one
    call per sample whose call is shorter than MIN_SAMPLE_S then gets enough
    calls per sample to last that long (c.number, reported). Every sample
    starts `pause` seconds after the previous one ended, with one untimed call
    of its own. Garbage collector off, as timeit does (no gc.collect() first:
    with torch imported one takes ~0.3 s)."""
    was = gc.isenabled()
    gc.disable()
    try:
        for c in contestants:
            if c.setup:
                c.setup()
            t = min(wl.time_samples(c.fn, repeat=warmup, number=c.number, warmup=0))
            if c.number == 1 and 0 < t < MIN_SAMPLE_S:
                c.number = min(50, int(MIN_SAMPLE_S / t) + 1)
        for i in range(max(c.repeat for c in contestants)):
            for c in contestants:
                if i < c.repeat:
                    if c.setup:
                        c.setup()
                    # busy, not sleep(): an idle vCPU comes back slow on a VM
                    end = time.perf_counter() + pause
                    while time.perf_counter() < end:
                        pass
                    # one untimed call first: each sample is a call in a warm
                    # loop, as in a service, not the first after another library
                    c.samples += wl.time_samples(c.fn, repeat=1, number=c.number, warmup=1)
    finally:
        if was:
            gc.enable()
    return {c.key: c.samples for c in contestants}, {c.key: c.number for c in contestants}


