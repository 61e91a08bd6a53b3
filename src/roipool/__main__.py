"""python -m roipool [info | bench ...]

With no subcommand: the main job. Prints the build, runs the seed examples
of docs/semantics.md (roi_pooling, roi_align) and checks them, checks forward
parity against the plain-loop rule (roipool._reference) on random ROIs, and
times the vgg16-frcnn-300 workload and RoIAlign's fpn-p2 at one thread and at
all threads (< 30 s)."""
import argparse
import sys

import numpy as np

import roipool
from roipool import _reference
from roipool import _workloads as wl

SEED_EXPECTED = {1.0: [[14, 16], [26, 28]], 0.7: [[7, 9], [19, 21]]}  # docs/semantics.md, the worked example
ALIGN_EXPECTED = [[7, 9], [19, 21]]  # docs/semantics.md, RoIAlign's worked example


def _timing_rows(name, threads, repeat, dtype=np.float32):
    data, rois, pooled, scale = wl.make(name, dtype)
    n_visits = wl.visits(data.shape, rois, pooled, scale)
    out = np.empty((len(rois), data.shape[1]) + pooled, dtype)
    rows = []
    for nt in threads:
        t = wl.median_time(lambda: roipool.roi_pooling(data, rois, pooled, scale, out,
                                                       num_threads=nt), repeat=repeat)
        rows.append((name, nt, t * 1e3, t / n_visits * 1e9))
    return rows


def _print_rows(rows, limit):
    print(f"{'workload':<17} {'threads':>7} {'median ms':>10} {'ns/visit':>9} {'x limit/thread':>15}")
    for name, nt, ms, nsv in rows:
        print(f"{name:<17} {nt:>7} {ms:>10.3f} {nsv:>9.4f} {nsv * nt / limit:>15.2f}")


def main_job():
    print(f"roipool {roipool.__version__}: OpenMP {'on' if roipool.openmp_enabled() else 'off'}, "
          f"{roipool._roi_pool.omp_max_threads()} threads, SIMD path {roipool.get_isa()}")
    ok = True
    x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    for scale, want in SEED_EXPECTED.items():
        got = roipool.roi_pooling(x, [[0, 0, 0, 4, 4]], (2, 2), scale)[0, 0]
        match = np.array_equal(got, np.array(want, np.float32))
        ok &= match
        print(f"seed example, spatial_scale={scale}: {got.astype(int).tolist()} "
              f"{'== expected' if match else '!= expected ' + str(want)}")

    rng = np.random.default_rng(0)
    data = rng.standard_normal((2, 3, 13, 11), dtype=np.float32)
    data[0, 0, :3, :3] = 1.0  # ties
    data[1, 1, 5:7, 5:7] = np.nan
    R = 40
    b = rng.integers(0, 2, R)
    xy = rng.uniform(-20, 60, (R, 4))
    rois = np.column_stack([b, xy]).astype(np.float32)
    for scale in (0.25, 0.7, 1.0):
        out, arg = roipool.roi_pooling(data, rois, (3, 4), scale, return_argmax=True)
        ref_out, ref_arg = _reference.forward(data, rois, (3, 4), scale)
        match = np.array_equal(out, ref_out, equal_nan=True) and np.array_equal(arg, ref_arg)
        ok &= match
        print(f"parity vs the plain-loop rule, {R} random ROIs, spatial_scale={scale}: "
              f"{'exact' if match else 'MISMATCH'}")

    got = roipool.roi_align(x, [[0, 0, 0, 4, 4]], (2, 2), 1.0, 2)[0, 0]
    match = np.array_equal(got, np.array(ALIGN_EXPECTED, np.float32))
    ok &= match
    print(f"RoIAlign seed example, sampling_ratio=2: {got.tolist()} "
          f"{'== expected' if match else '!= expected ' + str(ALIGN_EXPECTED)}")

    limit = wl.simd_max_ns_per_element()
    print(f"\nvgg16-frcnn-300 (1x512x38x50, 300 ROIs, 7x7, float32), median of 7 runs; "
          f"machine limit (np.max, 1 MiB): {limit:.4f} ns/element")
    threads = sorted({1, roipool._roi_pool.omp_max_threads()})
    _print_rows(_timing_rows("vgg16-frcnn-300", threads, 7), limit)
    data, rois, pooled, scale, ratio, aligned = wl.make_align("fpn-p2")
    print("\nRoIAlign fpn-p2 (1x256x200x272, 500 ROIs, 7x7, sampling_ratio 2, float32), "
          "median of 7 runs")
    for nt in threads:
        t = wl.median_time(lambda: roipool.roi_align(data, rois, pooled, scale, ratio, aligned,
                                                     num_threads=nt), repeat=7)
        print(f"  {nt} thread(s): {t * 1e3:.3f} ms")
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


def bench(args):
    names = list(wl.WORKLOADS) if args.workload == "all" else args.workload.split(",")
    unknown = [n for n in names if n not in wl.WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; choose from {list(wl.WORKLOADS)}", file=sys.stderr)
        return 2
    threads = [int(t) for t in args.threads.split(",")] if args.threads else \
        sorted({1, roipool._roi_pool.omp_max_threads()})
    dtype = np.dtype(args.dtype)
    limit = wl.simd_max_ns_per_element()
    print(f"roipool {roipool.__version__}, {dtype}, SIMD {roipool.get_isa()}, "
          f"median of {args.repeat}; limit {limit:.4f} ns/element (np.max, 1 MiB)")
    rows = []
    for name in names:
        rows += _timing_rows(name, threads, args.repeat, dtype)
    _print_rows(rows, limit)
    print("For peers side by side (torchvision, ONNX Runtime) run bench/bench.py from a checkout.")
    return 0


def _arg_workloads(text):
    """argparse type: 'all' or comma-separated known workload names (kept as text)."""
    unknown = [n for n in text.split(",") if n not in wl.WORKLOADS]
    if text != "all" and unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown)}; choose from all, {', '.join(wl.WORKLOADS)}")
    return text


def _arg_threads(text):
    """argparse type: comma-separated thread counts >= 1 (kept as text)."""
    try:
        ok = all(int(t) >= 1 for t in text.split(","))
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return text


def _arg_positive(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return n


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m roipool",
        description="roipool: exact, parallel ROI max pooling. Without a subcommand: "
                    "print the build, check the seed example and parity, time vgg16-frcnn-300.")
    sub = parser.add_subparsers(dest="cmd", metavar="{info,bench}")
    info_help = "version, OpenMP runtime, threads, SIMD path, build flags"
    sub.add_parser("info", help=info_help,
                   description=f"Print {info_help}: paste it into bug reports.")
    bench_help = "time the shared workloads (roipool alone)"
    b = sub.add_parser("bench", help=bench_help,
                       description=f"{bench_help[0].upper()}{bench_help[1:]}: median ms, ns per "
                                   "visit and the multiple of this machine's SIMD limit.")
    b.add_argument("--workload", default="all", type=_arg_workloads,
                   help=f"comma-separated names or 'all' (default): {', '.join(wl.WORKLOADS)}")
    b.add_argument("--threads", default=None, type=_arg_threads,
                   help="comma-separated thread counts (default: 1 and all)")
    b.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    b.add_argument("--repeat", type=_arg_positive, default=7,
                   help="timed runs per row; the median is shown (default: 7)")
    args = parser.parse_args(argv)
    if args.cmd == "info":
        roipool.show_config()
        return 0
    if args.cmd == "bench":
        return bench(args)
    return main_job()


if __name__ == "__main__":
    sys.exit(main())
