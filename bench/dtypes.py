"""roipool per element type: float16 and bfloat16 against float32, one run.

    python bench/dtypes.py [--workload vgg16-frcnn-300,vgg16-frcnn] [--threads 1,2]
                           [--dtypes float32,float16,bfloat16] [--repeat 7]

Per workload and thread count, the calls of every dtype are timed round robin
(run 1 of each dtype, then run 2, ...; each run after one untimed call), so
machine load drifting during the run hits every dtype alike. The data is the
workload's (roipool._workloads.make) in that dtype, ROIs included. Reported:
the median ms of the default call, the out= call, the call with argmax=,
the backward's default call and its out= call, each dtype's default call / float32's, the
same two for CPU time (all threads' CPU seconds per call: on a loaded shared
machine the wall times of every build and dtype suffer, CPU time much less)
and the backward's CPU time / float32's.
bfloat16 needs ml_dtypes. Prints only; no files.
"""
import argparse
import sys
import time

import numpy as np

import roipool
from roipool import _workloads


def dtype_of(name):
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def calls(name, dtype, nt):
    """{call: fn} of one workload in one dtype at nt threads."""
    data, rois, pooled, scale = _workloads.make(name, dtype)
    y, am = roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True)
    out, arg, grad = np.empty_like(y), np.empty_like(am), np.ones_like(y)
    grad_data = np.empty_like(data)
    return {
        "default": lambda: roipool.roi_pooling(data, rois, pooled, scale, num_threads=nt),
        "out=": lambda: roipool.roi_pooling(data, rois, pooled, scale, out=out, num_threads=nt),
        "+argmax": lambda: roipool.roi_pooling(data, rois, pooled, scale, out=out, argmax=arg,
                                               num_threads=nt),
        "backward": lambda: roipool.roi_pooling_backward(grad, rois, am, data.shape,
                                                         num_threads=nt),
        "bwd out=": lambda: roipool.roi_pooling_backward(grad, rois, am, data.shape, out=grad_data,
                                                         num_threads=nt),
    }


def sample(fn):
    """(wall s, CPU s) of one call, after one untimed call."""
    fn()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="vgg16-frcnn-300,vgg16-frcnn")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    names = args.dtypes.split(",")
    dtypes = {n: dtype_of(n) for n in names}
    print(f"roipool {roipool.__version__}, SIMD {roipool.get_isa()}; medians of "
          f"{args.repeat} round-robin runs (ms)")
    print(f"{'workload':16s} {'thr':>3s} {'dtype':9s} {'default':>8s} {'out=':>8s} "
          f"{'+argmax':>8s} {'backward':>8s} {'bwd out=':>8s} {'/ ' + names[0]:>10s} {'cpu dflt':>8s} "
          f"{'cpu /':>6s} {'bwd cpu /':>9s}")
    for wl in args.workload.split(","):
        for nt in (int(t) for t in args.threads.split(",")):
            fns = {n: calls(wl, dt, nt) for n, dt in dtypes.items()}
            samples = {(n, c): [] for n in names for c in fns[names[0]]}
            for _ in range(args.repeat):
                for c in fns[names[0]]:
                    for n in names:
                        samples[n, c].append(sample(fns[n][c]))
            med = {k: np.median(v, axis=0) * 1e3 for k, v in samples.items()}
            for n in names:
                row = " ".join(f"{med[n, c][0]:8.2f}" for c in fns[n])
                ratio = med[n, "default"] / med[names[0], "default"]
                bwd = med[n, "backward"][1] / med[names[0], "backward"][1]
                print(f"{wl:16s} {nt:3d} {n:9s} {row} {ratio[0]:10.2f} "
                      f"{med[n, 'default'][1]:8.2f} {ratio[1]:6.2f} {bwd:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
