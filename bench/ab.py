"""Interleaved A/B of two roipool builds: is a change faster or slower?

    python bench/ab.py OLD_SRC NEW_SRC [--rounds 4]

OLD_SRC and NEW_SRC are the `src` folders of two checkouts, each built in
place (`python setup.py build_ext --inplace`). Each round runs one process
per build, in alternating order, so drifting machine load hits both alike;
a process times every workload (forward with out=, the default call, and
backward; 1 and 2 threads) as the median of 9 calls after a warm-up. The
table gives the median over rounds of each build and new / old, wall and CPU
time, and their geometric means. Numbers within +-5 % are noise on a shared
machine; rerun before believing them. --argmax adds the forward that returns
the argmax (the bin-by-bin kernel), --only REGEX keeps the matching cases; the
SIMD path is the child's default or ROIPOOL_ISA's, inherited.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

CALLS = 9
THREADS = (1, 2)

# The child times with its own loop rather than roipool._workloads' helpers:
# it runs against any old build, whose helpers may differ (only make() and the
# public functions are relied on), and it records CPU time beside wall time.
CHILD = f"""
import json, re, sys, time
import numpy as np
import roipool
from roipool import _workloads

def timed(fn):
    fn()
    wall, cpu = [], []
    for _ in range({CALLS}):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))

argmax, only = sys.argv[1] == "1", re.compile(sys.argv[2])
res = {{}}
def case(key, fn):
    if only.search(key):
        res[key] = timed(fn)
for name in ("vgg16-frcnn", "vgg16-frcnn-300", "r50-c4", "batch4"):
    data, rois, pooled, scale = _workloads.make(name)
    out = np.empty((rois.shape[0], data.shape[1]) + tuple(pooled), data.dtype)
    y, am = roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True)
    grad = np.ones_like(y)
    for nt in {THREADS}:
        case(f"{{name}} fwd-out t{{nt}}",
             lambda: roipool.roi_pooling(data, rois, pooled, scale, out=out, num_threads=nt))
        case(f"{{name}} fwd-default t{{nt}}",
             lambda: roipool.roi_pooling(data, rois, pooled, scale, num_threads=nt))
        if argmax:
            case(f"{{name}} fwd-argmax t{{nt}}",
                 lambda: roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True,
                                             num_threads=nt))
        case(f"{{name}} backward t{{nt}}",
             lambda: roipool.roi_pooling_backward(grad, rois, am, data.shape, num_threads=nt))
print(json.dumps(res))
"""


def run(src, argmax=False, only=""):
    """One process of the build in `src`: {case: (wall s, cpu s)}."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    # outside any checkout, so `src` is the only roipool on the path
    p = subprocess.run([sys.executable, "-c", CHILD, str(int(argmax)), only], env=env, capture_output=True,
                       text=True, cwd=os.path.abspath(os.sep))
    if p.returncode:
        sys.exit(f"the build in {src} failed:\n{p.stderr}")
    return json.loads(p.stdout)


def geomean(ratios):
    return float(np.exp(np.mean(np.log(ratios))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old_src")
    ap.add_argument("new_src")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--argmax", action="store_true", help="also time return_argmax=True")
    ap.add_argument("--only", default="", help="regex: time only the matching cases")
    args = ap.parse_args(argv)
    builds = {"old": args.old_src, "new": args.new_src}
    samples = {"old": [], "new": []}
    for i in range(args.rounds):
        for tag in (("old", "new") if i % 2 == 0 else ("new", "old")):
            samples[tag].append(run(builds[tag], args.argmax, args.only))
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    def med(tag, case, k):
        return float(np.median([s[case][k] for s in samples[tag]])) * 1e3

    print(f"{'case':34s} {'old ms':>8s} {'new ms':>8s} {'new/old':>7s}"
          f"   {'old cpu':>8s} {'new cpu':>8s} {'new/old':>7s}")
    wall, cpu = [], []
    for case in samples["old"][0]:
        o, n, oc, nc = med("old", case, 0), med("new", case, 0), med("old", case, 1), med("new", case, 1)
        wall.append(n / o)
        cpu.append(nc / oc)
        print(f"{case:34s} {o:8.2f} {n:8.2f} {n / o:7.3f}   {oc:8.2f} {nc:8.2f} {nc / oc:7.3f}")
    print(f"geometric mean new/old: wall {geomean(wall):.3f}, cpu {geomean(cpu):.3f}")


if __name__ == "__main__":
    main()
