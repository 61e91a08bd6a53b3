#!/usr/bin/env python
"""roipool against its peers on the shared workloads (WORKLOADS.md).

    python bench/bench.py                     # everything, ~3-4 minutes with peers
    python bench/bench.py --workload vgg16-frcnn,tiny --repeat 9
    python bench/bench.py --quick --peers none  # smoke run, roipool alone

For every workload: exactness checks first (roipool against the plain-loop
rule roipool._reference, and against torchvision / ONNX Runtime / OpenCV dnn
where their rule agrees; any mismatch aborts with exit status 1), then
medians at 1 thread and at all cores of roipool's default call (roipool
allocates, the caller drops the result: the headline), its out= call, with
argmax, its torch front end, N Python threads at once, and of
``torchvision.ops.roi_pool``, ONNX Runtime ``MaxRoiPool`` and OpenCV dnn's
Caffe ``ROIPooling``; for the non-tiny workloads the backward pass of roipool
and torchvision. Ratios are of medians measured in this same process run.
The code is in bench/roipool_bench/ (checks, peers, timing, workload,
targets, report). See bench/README.md for the columns and the method."""
import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # roipool_bench, also when loaded by path (tests)

import numpy as np  # noqa: E402

import roipool  # noqa: E402
from roipool import _workloads as wl  # noqa: E402

from roipool_bench.checks import check_workload, compare, perturb  # noqa: E402,F401
from roipool_bench.peers import NAMES as PEER_NAMES, load_peers  # noqa: E402
from roipool_bench.report import chart, history_line, machine_info, markdown  # noqa: E402
from roipool_bench.targets import evaluate_targets, summarize  # noqa: E402
from roipool_bench.timing import Contestant, OtherLoad, round_robin, wait_quiet  # noqa: E402
from roipool_bench.workload import bench_workload  # noqa: E402

DEFAULT_OUT = HERE / "results"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="all",
                   help=f"comma-separated names or 'all' (default): {', '.join(wl.WORKLOADS)}")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per roipool measurement, median shown (default 7; quick 3)")
    p.add_argument("--peer-repeat", type=int, default=None,
                   help="timed runs per peer measurement (default 5; quick 3)")
    p.add_argument("--tiny-number", type=int, default=None,
                   help="calls per timed run on the tiny workloads (default 2000; quick 200)")
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts (default: 1 and all available cores)")
    p.add_argument("--peers", default="auto",
                   help="auto (every installed peer), none, or a comma list of torchvision, ort, "
                        "opencv, openvino")
    p.add_argument("--autograd", action="store_true",
                   help="also time torchvision's autograd forward+backward and report it minus "
                        "the forward (a cross-check of the backward method; slow)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 runs per measurement, 200 tiny calls (not for publication)")
    p.add_argument("--out-dir", default=None,
                   help=f"where results go (default {DEFAULT_OUT.relative_to(HERE.parent)})")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="before timing and before each workload, wait for other processes to "
                        "use < 0.25 cores over a 2 s window; SECONDS is the total budget "
                        "(shared machines; default 0: don't wait)")
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.add_argument("--inject-mismatch", action="store_true",
                   help="testing: perturb roipool's results by one ulp before the checks, "
                        "which must then fail (exit status 1)")
    a = p.parse_args(argv)
    a.repeat = a.repeat or (3 if a.quick else 7)
    a.peer_repeat = a.peer_repeat or (3 if a.quick else 5)
    a.tiny_number = a.tiny_number or (200 if a.quick else 2000)
    if min(a.repeat, a.peer_repeat, a.tiny_number) < 1:
        p.error("--repeat, --peer-repeat and --tiny-number must be >= 1")
    return a


def main(argv=None):
    t_start = time.perf_counter()
    args = parse_args(argv)
    names = list(wl.WORKLOADS) if args.workload == "all" else args.workload.split(",")
    unknown = [n for n in names if n not in wl.WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; choose from {list(wl.WORKLOADS)}", file=sys.stderr)
        return 2
    peers, why = load_peers(args.peers)
    machine = machine_info(peers)
    cores = machine["cores"]
    threads = sorted({int(t) for t in args.threads.split(",")}) if args.threads \
        else sorted({1, cores})

    def log(msg=""):
        print(msg, flush=True)

    log(f"roipool {roipool.__version__} ({machine['isa']}, {machine['compiler']}, OpenMP "
        f"{'on' if machine['openmp'] else 'off'}) on {machine['cpu']}, {cores} cores; "
        f"threads {threads}")
    for k in PEER_NAMES:
        log(f"peer {k}: " + ("yes" if peers[k] is not None else f"not run ({why[k]})"))
    if args.quick or min(args.repeat, args.peer_repeat) < 5:
        log("note: fewer than 5 runs per measurement; smoke numbers, not for publication")

    # 1. checks, all before any timing; any failure aborts
    log("\nchecks (exact, bit for bit):")
    checks, per_wl = [], {}
    for name in names:
        c, arg, grad = check_workload(name, peers, args.inject_mismatch)
        checks += c
        per_wl[name] = (arg, grad)
        for x in c:
            log(f"  {'ok  ' if x['ok'] else 'FAIL'} {x['check']}: {x['detail']}")
    failed = [c for c in checks if not c["ok"]]
    if failed:
        log(f"\n{len(failed)} CHECK(S) FAILED: roipool does not match; no timing done.")
        return 1

    # 2. timing
    deadline = time.perf_counter() + args.wait_quiet
    wait_quiet(deadline, log)
    run_load = OtherLoad()
    limit_start = wl.simd_max_ns_per_element()
    log(f"\nmachine limit: np.max over 1 MiB float32 = {limit_start:.4f} ns/element")
    fwd_rows, bwd_rows = [], []
    for name in names:
        log(f"{name}:")
        arg, grad = per_wl[name]
        wait_quiet(deadline, log)
        load = OtherLoad()
        f, b = bench_workload(name, peers, threads, args, arg, grad, log)
        other = load.cores()
        for r in f + b:
            r["other_load_cores"] = other
        if other is not None:
            log(f"  other processes used {other:.2f} cores meanwhile"
                + ("  (contended: multi-thread numbers unreliable)" if other > 0.25 else ""))
        fwd_rows += f
        bwd_rows += b
    # the tiny target: the default call, validation and allocation included
    tiny_cs = []
    for name in names:
        if name.startswith("tiny"):
            data, rois, pooled, scale = wl.make(name)
            tiny_cs.append(Contestant(name, lambda a=(data, rois, pooled, scale):
                                      roipool.roi_pooling(*a), args.tiny_number, args.repeat))
    tiny_default = {k: float(np.median(v)) * 1e6
                    for k, v in (round_robin(tiny_cs)[0].items() if tiny_cs else ())}
    if tiny_default:
        log("tiny default call: " + ", ".join(f"{k} {u:.2f} us" for k, u in tiny_default.items()))
    limit_end = wl.simd_max_ns_per_element()
    limit = min(limit_start, limit_end)
    machine["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    machine["other_load_cores"] = run_load.cores()

    scaling = summarize(fwd_rows, bwd_rows, limit)
    targets = evaluate_targets(fwd_rows, bwd_rows, scaling, tiny_default)
    res = {
        "machine": machine, "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": args.quick, "repeat": args.repeat, "peer_repeat": args.peer_repeat,
        "tiny_number": args.tiny_number, "threads": threads, "autograd": args.autograd,
        "limit": {"ns_per_element": limit, "start": limit_start, "end": limit_end,
                  "method": "median of 21 x 50 calls of np.max on 262144 float32 (1 MiB)"},
        "peers_missing": {k: w for k, w in why.items() if peers[k] is None},
        "checks": checks, "forward": fwd_rows, "backward": bwd_rows, "scaling": scaling,
        "tiny_default_us": tiny_default, "targets": targets,
    }
    res["runtime_s"] = time.perf_counter() - t_start

    md = markdown(res)
    log("\n" + md)
    log("targets (reported, not asserted):")
    for n, t, s in targets:
        log(f"  {s:<4} {n}: {t}")

    if not args.no_write:
        # only a full run replaces latest.*; partial and quick runs write partial.*
        full = names == list(wl.WORKLOADS) and not args.quick
        out_dir = Path(args.out_dir) if args.out_dir else DEFAULT_OUT
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = "latest" if full else "partial"
        (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
        (out_dir / f"{stem}.md").write_text(md)
        written = [f"{stem}.json", f"{stem}.md"]
        png = "speedup.png" if stem == "latest" else "partial-speedup.png"
        if chart(res, out_dir / png):
            written.append(png)
        with open(out_dir / "history.jsonl", "a") as f:
            f.write(json.dumps(history_line(res)) + "\n")
        written.append("history.jsonl (appended)")
        log(f"\nwrote {', '.join(written)} in {out_dir}")
    log(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
