"""Python threads calling roipool at once (issue 6, "Concurrency"). Equal results
across OpenMP thread counts within one call: test_threads.py.

* 8 threads x 1,000 calls each on mixed shapes, dtypes, layouts and thread counts
  (forward, backward, out= buffers, error paths) give exactly the serial results,
  bit for bit, and finish: the stress runs in a subprocess with a time limit, so a
  deadlock (or a crash) fails the test instead of hanging pytest.
* The GIL is released inside the kernels: a pure-Python thread keeps progressing
  during a long call, and two threads are inside the kernel at the same time (see
  "GIL" below for why neither measure depends on a quiet machine).

More calls: ROIPOOL_STRESS_CALLS=5000 pytest tests/test_concurrency.py, or
    python tests/test_concurrency.py --threads 8 --calls 5000
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import roipool

from helpers import SANITIZED, run_python
THREADS = 8
CALLS = int(os.environ.get("ROIPOOL_STRESS_CALLS", "1000"))


# ----------------------------------------------------------------------------- workloads


def workloads(rng):
    """(name, fn(num_threads, bufs) -> tuple of arrays, make_bufs) triples. Each fn is
    deterministic; make_bufs gives a thread its own out= buffers (or None)."""
    W = []

    def fwd(name, data, rois, pooled, scale, use_out=False, **kw):
        shape = (np.asarray(rois).shape[0], data.shape[1]) + ((pooled, pooled) if isinstance(pooled, int) else pooled)

        def make():
            if not use_out:
                return None
            return (np.empty(shape, data.dtype), np.empty(shape, np.int32))

        def call(nt, bufs):
            if bufs is None:
                return roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True,
                                           num_threads=nt, **kw)
            out, am = roipool.roi_pooling(data, rois, pooled, scale, out=bufs[0], argmax=bufs[1],
                                          return_argmax=True, num_threads=nt, **kw)
            assert out is bufs[0] and am is bufs[1]
            return out.copy(), am.copy()
        W.append((name, call, make))

    def bwd(name, grad, rois, am, shape):
        def call(nt, bufs):
            return (roipool.roi_pooling_backward(grad, rois, am, shape, num_threads=nt),)
        W.append((name, call, lambda: None))

    def err(name, exc, fn):
        def call(nt, bufs):
            try:
                fn(nt)
            except exc as e:
                return (np.frombuffer(str(e).encode(), np.uint8),)
            raise AssertionError(f"{name}: no {exc.__name__}")
        W.append((name, call, lambda: None))

    def rois_for(N, H, W_, R, scale=1.0):
        x1 = rng.uniform(-4, W_ + 4, R)
        y1 = rng.uniform(-4, H + 4, R)
        xy = np.column_stack([x1, y1, x1 + rng.uniform(-2, W_, R), y1 + rng.uniform(-2, H, R)])
        return np.column_stack([rng.integers(0, N, R), xy / scale]).astype(np.float32)

    d = rng.integers(-3, 4, (2, 3, 8, 8)).astype(np.float32)  # ties
    fwd("f32 nchw small", d, rois_for(2, 8, 8, 5), 2, 1.0)
    d = rng.standard_normal((2, 64, 14, 14)).astype(np.float32)
    d = np.ascontiguousarray(d.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    fwd("f32 channels-last", d, rois_for(2, 14, 14, 50, 0.0625), 7, 0.0625)
    d = rng.standard_normal((1, 17, 10, 12))
    d[d > 1.5] = np.nan
    fwd("f64 nan", d, rois_for(1, 10, 12, 20, 0.7), (3, 5), 0.7, use_out=True)
    d = rng.standard_normal((3, 8, 6, 6)).astype(np.float16)
    fwd("f16", d, rois_for(3, 6, 6, 7), (2, 3), 1.0)
    d = rng.standard_normal((2, 130, 19, 25)).astype(np.float32)
    fwd("f32 big", d, rois_for(2, 19, 25, 64, 0.5), 7, 0.5, use_out=True)
    d = rng.standard_normal((2, 9, 9, 9)).astype(np.float32)[:, ::2, ::-1, :]
    fwd("f32 strided tv", d, rois_for(2, 9, 9, 11, 0.7), 3, 0.7, compat="torchvision")
    R, C, P, H = 30, 16, 4, 9
    g = rng.standard_normal((R, C, P, P)).astype(np.float32)
    am = rng.integers(-1, 5, (R, C, P, P)).astype(np.int32)  # many collisions: order matters
    bwd("bwd f32 collisions", g, rois_for(2, H, H, R), am, (2, C, H, H))
    g64 = rng.standard_normal((R, C, P, P))
    am64 = rng.integers(-1, H * H, (R, C, P, P))
    bwd("bwd f64 int64", g64, rois_for(3, H, H, R), am64, (3, C, H, H))
    bad = rois_for(2, 8, 8, 6)
    bad[4, 2] = np.nan
    small = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    err("bad row", ValueError, lambda nt: roipool.roi_pooling(small, bad, 2, 1.0, num_threads=nt))
    err("bad dtype", TypeError, lambda nt: roipool.roi_pooling(small.astype(np.int32), bad, 2, 1.0,
                                                                num_threads=nt))
    return W


NT_CHOICES = [None, 1, 2, 3]


def stress(n_threads, n_calls, seed=0, timeout=None):
    """Every thread runs n_calls calls (workload and thread count vary per call) and
    compares each result with the serial one bit for bit. Returns a summary dict."""
    rng = np.random.default_rng(seed)
    W = workloads(rng)
    serial = [tuple(np.array(a, copy=True) for a in fn(1, make())) for _, fn, make in W]
    mismatches, errors = [], []
    counts = [0] * n_threads
    barrier = threading.Barrier(n_threads)

    def calls(t):
        bufs = [make() for _, _, make in W]
        trng = np.random.default_rng(seed + 1 + t)
        barrier.wait()
        for i in range(n_calls):
            k = int(trng.integers(0, len(W)))
            nt = NT_CHOICES[int(trng.integers(0, len(NT_CHOICES)))]
            try:
                got = W[k][1](nt, bufs[k])
            except Exception as e:  # noqa: BLE001 - collected, reported by the caller
                errors.append(f"thread {t} call {i} {W[k][0]}: {type(e).__name__}: {e}")
                continue
            ref = serial[k]
            same = len(got) == len(ref) and all(
                a.shape == b.shape and a.dtype == b.dtype and
                np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))
                for a, b in zip(got, ref))
            if not same:
                mismatches.append(f"thread {t} call {i}: {W[k][0]} (num_threads={nt})")
            counts[t] += 1

    def body(t):
        # anything else that raises in a thread (the barrier, a comparison) is
        # collected too: a thread never dies silently
        try:
            calls(t)
        except Exception as e:  # noqa: BLE001
            errors.append(f"thread {t} died: {type(e).__name__}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    alive = sum(th.is_alive() for th in threads)
    return {"threads": n_threads, "calls_per_thread": n_calls, "calls": sum(counts),
            "seconds": round(time.perf_counter() - t0, 2), "alive": alive,
            "mismatches": mismatches[:20], "n_mismatches": len(mismatches),
            "errors": errors[:20], "n_errors": len(errors), "workloads": [w[0] for w in W]}


def run_stress_subprocess(n_threads, n_calls, timeout):
    """This file as a script, with this interpreter and environment (the same
    installed roipool), so a deadlock or a crash fails the test, not pytest."""
    proc = run_python([os.path.abspath(__file__), "--threads", str(n_threads),
                       "--calls", str(n_calls), "--json"], timeout,
                      what=f"{n_threads} threads x {n_calls} calls (deadlock?)")
    assert proc.returncode == 0, f"stress process died ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_threads_give_serial_results_and_finish():
    timeout = 3600 if SANITIZED else max(600, CALLS)  # ~4 s here for 8 x 1,000
    res = run_stress_subprocess(THREADS, CALLS, timeout)
    assert res["alive"] == 0, f"{res['alive']} threads still running: deadlock"
    assert res["n_errors"] == 0, res["errors"]
    assert res["n_mismatches"] == 0, res["mismatches"]
    assert res["calls"] == THREADS * CALLS


def test_stress_detects_a_wrong_result(monkeypatch):
    """The comparison can fail: a result that differs in one bit from the serial one
    in one thread is reported."""
    real = roipool.roi_pooling
    hits = []

    def flaky(*a, **k):
        res = real(*a, **k)
        if threading.current_thread() is not threading.main_thread() and not hits:
            hits.append(1)
            out = res[0] if isinstance(res, tuple) else res
            i = (0,) * out.ndim
            out[i] = 0 if out[i] == 1234.5 else 1234.5
        return res

    monkeypatch.setattr(roipool, "roi_pooling", flaky)
    res = stress(2, 5, timeout=60)
    assert res["n_mismatches"] >= 1


def test_stress_reports_an_exception_in_a_thread(monkeypatch):
    """A call that raises in a worker thread is counted as an error, not lost with
    the thread: if every call raised, the stress would fail."""
    real = roipool.roi_pooling

    def broken(*a, **k):
        if threading.current_thread() is threading.main_thread():
            return real(*a, **k)  # the serial results
        raise RuntimeError("injected")

    monkeypatch.setattr(roipool, "roi_pooling", broken)
    res = stress(2, 5, timeout=60)
    assert res["alive"] == 0 and res["n_errors"] > 0
    assert all("RuntimeError: injected" in e for e in res["errors"]), res["errors"]


# ----------------------------------------------------------------------------- GIL
#
# Two measures, each with a control that holds the GIL (NumPy sorting an object array
# compares Python objects, so it keeps the GIL throughout) to show it can fail.
# Neither compares a duration with a fixed number, and neither needs a quiet machine:
#
# * progress: while one long call runs, a pure-Python thread records timestamps; the
#   share of 2 ms slots of the call in which it made progress is ~0 when the call
#   holds the GIL, ~1 when it does not. A busy machine lowers the share (the thread
#   may wait for a core) but not to ~0; best of 5 attempts.
# * overlap: two threads call the kernel in a loop while a third samples their
#   scheduler states in /proc/self/task/<tid>/stat. "R" is running *or runnable*, so
#   both threads show "R" at once whenever both are inside the kernel -- on a loaded
#   machine too. A thread waiting for the GIL sleeps ("S"), so with the GIL held the
#   two are practically never "R" together.

def _long_call_setup():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((1, 256, 64, 64)).astype(np.float32)
    rois = np.tile(np.array([[0, 0, 0, 63, 63]], np.float32), (400, 1))
    return data, rois


def progress_ratio(call):
    """(seconds, the rate at which another Python thread progresses during call(),
    divided by its rate during a time.sleep() of the same length right after)."""
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            x = 0
            for k in range(20):
                x += k
            count[0] += 1

    th = threading.Thread(target=spin, daemon=True)
    th.start()
    while not count[0]:
        time.sleep(0.001)
    c0, t0 = count[0], time.perf_counter()
    call()
    c1, t1 = count[0], time.perf_counter()
    time.sleep(t1 - t0)
    c2, t2 = count[0], time.perf_counter()
    stop.set()
    th.join(60)
    during = (c1 - c0) / (t1 - t0)
    idle = (c2 - c1) / (t2 - t1)
    return t1 - t0, during / max(idle, 1e-9)


def best_ratio(call, attempts=5, enough=0.5):
    tries = []
    for _ in range(attempts):
        dur, ratio = progress_ratio(call)
        tries.append((round(dur, 3), round(ratio, 2)))
        if ratio >= enough:
            break
    return max(r for _, r in tries), tries


def _held_gil_call():
    arr = np.random.default_rng(3).standard_normal(120_000).astype(object)
    return lambda: np.sort(arr)


def test_a_python_thread_runs_during_the_kernel():
    data, rois = _long_call_setup()
    roipool.roi_pooling(data, rois, 7, 1.0, num_threads=1)  # warm up
    ratio, tries = best_ratio(lambda: roipool.roi_pooling(data, rois, 7, 1.0, num_threads=1))
    assert ratio >= 0.3, f"a Python thread was stalled during roi_pooling: (s, ratio) {tries}"
    out, am = roipool.roi_pooling(data, rois, 7, 1.0, return_argmax=True)
    rois_b = np.tile(rois, (3, 1))
    g = np.ones((3 * out.shape[0],) + out.shape[1:], np.float32)
    am = np.random.default_rng(2).integers(-1, 64 * 64, g.shape).astype(np.int32)
    ratio, tries = best_ratio(lambda: roipool.roi_pooling_backward(g, rois_b, am, data.shape,
                                                                   num_threads=1))
    assert ratio >= 0.3, f"a Python thread was stalled during roi_pooling_backward: {tries}"


def test_progress_ratio_sees_a_held_gil():
    ratio, tries = best_ratio(_held_gil_call(), attempts=2)
    assert ratio < 0.3, tries


SAMPLER = r"""
import select, sys, time
pid, tids = sys.argv[1], sys.argv[2:]

def state(tid):
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]

print("ready", flush=True)
total = both = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    try:
        states = [state(t) for t in tids]
    except OSError:
        break
    total += 1
    both += all(s == "R" for s in states)
    time.sleep(0.0005)
print(total, both, flush=True)
"""


def overlap_share(work, n_calls):
    """Two threads each run work() n_calls times while another process samples their
    scheduler states (it needs no GIL, so it samples evenly in time). Returns
    (samples, share of samples with both threads 'R')."""
    tids = {}
    ready = threading.Barrier(3)
    go = threading.Event()

    def body(k):
        tids[k] = threading.get_native_id()
        ready.wait()
        go.wait()
        for _ in range(n_calls):
            work()

    ths = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(2)]
    for th in ths:
        th.start()
    ready.wait()
    sampler = subprocess.Popen([sys.executable, "-c", SAMPLER, str(os.getpid()), str(tids[0]),
                                str(tids[1])], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert sampler.stdout.readline().strip() == "ready"
        go.set()
        for th in ths:
            th.join(300)
        sampler.stdin.close()
        total, both = map(int, sampler.stdout.readline().split())
    finally:
        sampler.kill()
        sampler.wait()
    return total, both / max(total, 1)


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/task"),
                                reason="needs Linux /proc to read thread states")


@needs_proc
def test_two_threads_run_the_kernel_at_the_same_time():
    data, rois = _long_call_setup()
    rois = rois[:60]
    call = lambda: roipool.roi_pooling(data, rois, 7, 1.0, num_threads=1)  # noqa: E731
    call()
    tries = []
    for _ in range(3):
        total, share = overlap_share(call, 15)
        tries.append((total, round(share, 2)))
        if total >= 20 and share >= 0.6:
            break
    assert any(t >= 20 and s >= 0.6 for t, s in tries), \
        f"two threads were rarely inside roi_pooling together: (samples, share) {tries}"


@needs_proc
def test_overlap_measure_sees_a_held_gil():
    total, share = overlap_share(_held_gil_call(), 3)
    assert total >= 20 and share < 0.6, (total, share)


# ----------------------------------------------------------------------------- CLI


def main():
    ap = argparse.ArgumentParser(description="roipool thread stress")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = stress(args.threads, args.calls, args.seed, timeout=3600)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['threads']} threads x {res['calls_per_thread']} calls = {res['calls']} calls "
              f"in {res['seconds']} s over {len(res['workloads'])} workloads; mismatches "
              f"{res['n_mismatches']}, errors {res['n_errors']}, threads still running {res['alive']}")
        for m in res["mismatches"] + res["errors"]:
            print("  ", m)
    return 0 if not (res["n_mismatches"] or res["n_errors"] or res["alive"]) else 1


if __name__ == "__main__":
    sys.exit(main())
