"""Guest instructions per visit of roipool's compiled code, baseline against
neon, on aarch64 under qemu-user: ARM speed cannot be timed on an x86_64
machine, so this counts instead.

Run inside an arm64 root with roipool installed (tools/ci_aarch64.sh leaves
one; see the README's "aarch64" section):

    python bench/insns_aarch64.py [--workload vgg16-frcnn-300] [--rois 30]

How: each measurement is a child Python under qemu with -singlestep (one
guest instruction per translation block), exec logging without block
chaining (every executed block is logged) and a log filter on the address
range of roipool's extension module (qemu-user places it at the same guest
address in every run; the child checks). The log goes through a pipe and
only its lines are counted. A child makes `calls` forward calls
(float32 with argmax, one thread); the count with 1 call is subtracted from
the count with 3, which cancels the import and the set-up, and the rest is
divided by 2 calls and by the visits of one call. OpenMP's runtime and
NumPy are outside the range: the extension's own instructions (kernel,
gather, transposes, ROI geometry) are what is counted.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading

CHILD = r"""
import json, sys
import numpy as np
import roipool
from roipool import _workloads
name, n_rois, dtype, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
data, rois, pooled, scale = _workloads.make(name)
data, rois = data.astype(dtype), rois[:n_rois].astype(dtype)
so = roipool._roi_pool.__file__
text = [l.split()[0] for l in open("/proc/self/maps") if l.rstrip().endswith(so) and " r-xp " in l]
for _ in range(calls):
    roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True, num_threads=1)
print(json.dumps(dict(isa=roipool.get_isa(), text=text,
                      visits=_workloads.visits(data.shape, rois, pooled, scale))))
"""


def run(isa, args, dtype, calls, text=None):
    """(child's report, guest instructions counted in `text`, or None)."""
    env = dict(os.environ, ROIPOOL_ISA=isa)
    count = [None]
    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "log")
        if text:
            lo, hi = text.split("-")
            os.mkfifo(fifo)
            env.update(QEMU_SINGLESTEP="1", QEMU_LOG="exec,nochain",
                       QEMU_DFILTER=f"0x{lo}..0x{hi}", QEMU_LOG_FILENAME=fifo)

            def reader():
                with open(fifo, "rb") as f:
                    count[0] = sum(1 for line in f if line.startswith(b"Trace "))
            t = threading.Thread(target=reader)
            t.start()
        proc = subprocess.run([sys.executable, "-c", CHILD, args.workload, str(args.rois),
                               dtype, str(calls)], env=env, capture_output=True, text=True)
        if text:
            t.join()
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    if rep["isa"] != isa:
        sys.exit(f"asked for {isa}, ran {rep['isa']}")
    if text and rep["text"] != [text]:
        sys.exit(f"the extension moved: {rep['text']} != {text}")
    return rep, count[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="vgg16-frcnn-300")
    ap.add_argument("--rois", type=int, default=30, help="the first N ROIs of the workload")
    ap.add_argument("--dtypes", default="float32,float16,float64")
    args = ap.parse_args()
    rows = []
    for dtype in args.dtypes.split(","):
        per_visit = {}
        for isa in ("baseline", "neon"):
            rep, _ = run(isa, args, dtype, 1)
            (text,) = rep["text"]
            _, one = run(isa, args, dtype, 1, text)
            _, three = run(isa, args, dtype, 3, text)
            per_visit[isa] = (three - one) / 2 / rep["visits"]
            rows.append(dict(dtype=dtype, isa=isa, visits=rep["visits"],
                             insns_per_call=(three - one) // 2,
                             insns_per_visit=round(per_visit[isa], 4)))
            print(json.dumps(rows[-1]), flush=True)
        print(f"{dtype}: baseline/neon = {per_visit['baseline'] / per_visit['neon']:.2f}",
              flush=True)
    return rows


if __name__ == "__main__":
    main()
