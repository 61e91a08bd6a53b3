"""ONNX models with MaxRoiPool or RoiAlign: plain ONNX Runtime against roipool.onnx.InferenceSession.

    python bench/bench_onnx.py [--repeat 9] [--threads 1,2] [--out bench/results/onnx_latest.md]

Models (tools/onnx_models.py), data and ROIs from roipool._workloads.make:

* pool only: one MaxRoiPool node, on vgg16-frcnn-300 and vgg16-frcnn;
* RoiAlign only: one RoiAlign node (avg), on fpn-p2 and mask-p2
  (roipool._workloads.make_align);
* head: a Fast R-CNN head on the vgg16-frcnn-300 map (Conv 3x3 512->512 + Relu,
  MaxRoiPool 7x7, Flatten, Gemm 25088->256 + Relu, Gemm 256->21), end to end.

Per model and thread count (``intra_op_num_threads``; roipool follows it),
plain ORT and roipool.onnx with ORT's intra-op spinning off (the default) and
on are timed round robin in one process (bench/roipool_bench/timing.py); each
row is the median of ``--repeat`` samples. The cut's cost is the time a
roipool.onnx call spends outside its parts' ORT sessions and its roipool calls
(timed inside one call), as a share of the pool's own time. Every output is checked
bit-equal to plain ORT's before timing.
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

import roipool
import roipool.onnx as ro
from roipool import _workloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import onnx_models  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "bench"))
from roipool_bench import timing  # noqa: E402

CPU = ["CPUExecutionProvider"]
POOL_CALLS = ("roi_pooling", "roi_align")  # what roipool.onnx calls for a pool
HEAD_WORKLOAD = "vgg16-frcnn-300"
ALIGN_WORKLOADS = ("fpn-p2", "mask-p2")


def options(threads, spinning):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return o


def models():
    """(name, model bytes, feed)"""
    out = []
    for w in ("vgg16-frcnn-300", "vgg16-frcnn"):
        data, rois, pooled, scale = _workloads.make(w)
        out.append((f"pool only, {w}", onnx_models.pool_only(pooled, scale),
                    {"X": data, "rois": rois}))
    for w in ALIGN_WORKLOADS:
        data, rows, pooled, scale, ratio, aligned = _workloads.make_align(w)
        out.append((f"RoiAlign only, {w}",
                    onnx_models.align_only(pooled, scale, ratio, aligned),
                    onnx_models.align_feed(data, rows)))
    data, rois, pooled, scale = _workloads.make(HEAD_WORKLOAD)
    head = onnx_models.head(c_in=data.shape[1], c=data.shape[1], pooled=pooled, scale=scale,
                            hidden=256, classes=21)
    out.append((f"head, {HEAD_WORKLOAD}", head, {"image": data, "rois": rois}))
    return out


def check(plain, ours, feed):
    for a, b in zip(plain.run(None, feed), ours.run(None, feed)):
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            sys.exit("FAIL: roipool.onnx differs from plain ONNX Runtime")


class Timed:
    """roipool.onnx session whose part sessions and roipool calls record their
    time, so one real call splits into parts + pools + the rest (the cut)."""

    def __init__(self, model, threads):
        self.sess = ro.InferenceSession(model, options(threads, "0"), CPU)
        self.parts = self.pools = 0.0
        self.calls = []  # (total, parts, pools) per call
        for _, s in self.sess._parts:
            s.run = self._timed(s.run, "parts")
        self.real = {name: getattr(roipool, name) for name in POOL_CALLS}

    def _timed(self, fn, what):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                setattr(self, what, getattr(self, what) + time.perf_counter() - t0)
        return run

    def __call__(self, feed):
        self.parts = self.pools = 0.0
        for name, fn in self.real.items():
            setattr(roipool, name, self._timed(fn, "pools"))
        try:
            t0 = time.perf_counter()
            self.sess.run(None, feed)
            self.calls.append((time.perf_counter() - t0, self.parts, self.pools))
        finally:
            for name, fn in self.real.items():
                setattr(roipool, name, fn)


def bench(model, feed, threads, repeat):
    plain = ort.InferenceSession(model, options(threads, "1"), CPU)  # ORT's default: spin
    ours = {spin: ro.InferenceSession(model, options(threads, spin), CPU) for spin in "01"}
    for s in ours.values():
        check(plain, s, feed)
    timed = Timed(model, threads)
    contestants = [
        timing.Contestant("plain", lambda: plain.run(None, feed), 1, repeat),
        timing.Contestant("spin0", lambda: ours["0"].run(None, feed), 1, repeat),
        timing.Contestant("spin1", lambda: ours["1"].run(None, feed), 1, repeat),
        timing.Contestant("timed", lambda: timed(feed), 1, repeat),
    ]
    samples, _ = timing.round_robin(contestants)
    med = {k: timing.med_ms(v) for k, v in samples.items()}
    calls = np.array(timed.calls) * 1e3
    parts, pools = np.median(calls[:, 1]), np.median(calls[:, 2])
    cut = np.median(calls[:, 0] - calls[:, 1] - calls[:, 2])
    return med, parts, pools, cut


def shown_args():
    """The command line without --out (where the file went is not a result)."""
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip or a.startswith("--out="):
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        args.append(a)
    return " ".join(args)


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "onnx_latest.md"))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--models", default="", help="only models whose name contains this")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before each model, wait until other processes use < 0.25 cores")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    load0 = os.getloadavg()
    rows = []
    deadline = time.perf_counter() + args.wait_quiet
    for name, model, feed in models():
        if args.models not in name:
            continue
        for t in threads:
            timing.wait_quiet(deadline, print)
            load = timing.OtherLoad()
            med, parts, pools, cut = bench(model, feed, t, args.repeat)
            other = load.cores()
            row = (f"| {name} | {t} | {med['plain']:.2f} | {med['spin0']:.2f} "
                   f"| {med['plain'] / med['spin0']:.1f}x | {med['spin1']:.2f} "
                   f"| {parts:.2f} | {pools:.2f} | {cut:+.2f} ({100 * cut / pools:+.0f}%) "
                   f"| {other if other is None else round(other, 2)} |")
            print(row, flush=True)
            rows.append(row)
    load1 = os.getloadavg()
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        "# ONNX models with MaxRoiPool or RoiAlign: plain ONNX Runtime vs "
        "roipool.onnx.InferenceSession",
        "",
        f"Run {now} with `python bench/bench_onnx.py {shown_args()}` (git {git}); "
        f"roipool {roipool.__version__}, onnxruntime "
        f"{ort.__version__}, Python {platform.python_version()}, CPU {cpu_name()}, "
        f"{len(os.sched_getaffinity(0))} usable cores. Load average before/after: "
        f"{' '.join(f'{x:.2f}' for x in load0)} / {' '.join(f'{x:.2f}' for x in load1)} "
        "(a shared machine: the contestants alternate in one process).",
        "",
        "Medians in ms. Threads: `intra_op_num_threads` of every session; roipool's pools "
        "follow it. Outputs were checked bit-equal to plain ORT first. spin: ORT's "
        "`session.intra_op.allow_spinning` (roipool.onnx's default is 0). parts / pool: "
        "time inside the parts' ORT sessions and inside roipool.roi_pooling / roi_align "
        "during a "
        "call; cut: the rest of that call (feeds, the NaN/-0.0 check, Python; median "
        "over calls), and its share of the pool's time. other load: cores other processes "
        "used while the row was measured.",
        "",
        "| model | threads | plain ORT | roipool.onnx | speed-up | roipool.onnx, spin=1 "
        "| parts | pool | cut (share of pool) | other load (cores) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows, ""])
    if not args.no_write:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
