"""Guest instructions per visit of roipool's per-ISA code, baseline against
neon, on aarch64 under qemu-user: ARM speed cannot be timed on an x86_64
machine, so this counts instead.

Run inside an arm64 root with roipool installed (tools/ci_aarch64.sh leaves
one; see CONTRIBUTING.md, "aarch64 under emulation"):

    python bench/insns_aarch64.py [--workload vgg16-frcnn-300] [--rois 30]

How: each measurement is a child Python under qemu with -singlestep (one
guest instruction per translation block) and exec logging without block
chaining (every executed block is one log line), the log filtered to the
address ranges of one group of the path's own functions in the extension,
found in its ELF symbol table: "kernel" (the ROI max kernel and bin max of
that path and type) or "transposes" (the path's scratch -> out copies).
qemu-user maps the extension at the same guest address in every run, which
the child checks. The log goes through a pipe to `wc -l`. The child makes
one forward call (argmax on, one thread); nothing in those functions runs
before it (import and set-up do not call them). Divided by the visits of the
call (the elements the rule reads, roipool._workloads.visits). The gather of
the channel blocks, the ROI geometry and NumPy are the same code for both
paths and are not counted.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys
import roipool
from roipool import _workloads
name, n_rois, dtype, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if dtype == "bfloat16":
    from ml_dtypes import bfloat16 as dtype
data, rois, pooled, scale = _workloads.make(name)
data, rois = data.astype(dtype), rois[:n_rois]
so = roipool._roi_pool.__file__
maps = [l.split()[0] for l in open("/proc/self/maps") if l.rstrip().endswith(so)]
for _ in range(calls):
    roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True, num_threads=1)
print(json.dumps(dict(isa=roipool.get_isa(), so=so, base=maps[0].split("-")[0],
                      visits=_workloads.visits(data.shape, rois, pooled, scale))))
"""

SUFFIX = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16"}
ISA_SUFFIX = {"baseline": "base", "neon": "neon"}


def functions(path):
    """{name: (start, size)} of the FUNC symbols in an ELF64 little-endian .symtab."""
    with open(path, "rb") as f:
        elf = f.read()
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    out = {}
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        for off in range(sh[4], sh[4] + sh[5], 24):
            name, info, _, _, value, size = struct.unpack_from("<IBBHQQ", elf, off)
            if info & 0xF == 2 and size:  # STT_FUNC
                s = strtab[4] + name
                out[elf[s:elf.index(b"\0", s)].decode()] = (value, size)
    return out


def ranges(rep, isa, dtype):
    """{group: {function name: (first, last guest address)}} of the path's functions."""
    t, i = SUFFIX[dtype], ISA_SUFFIX[isa]
    groups = {"kernel": re.compile(rf"roipool_(roi_max|bin_max)_{t}_{i}$"),
              "transposes": re.compile(rf"roipool_transpose(16|32|64)_{i}$")}
    funcs = functions(rep["so"])
    base = int(rep["base"], 16)
    out = {g: {n: (base + v, base + v + s - 1) for n, (v, s) in funcs.items() if pat.match(n)}
           for g, pat in groups.items()}
    if not out["kernel"]:
        sys.exit(f"no kernel symbol for {isa} {dtype} in {rep['so']} (stripped?)")
    return out


def child(isa, args, dtype, funcs=None):
    """(child's report, guest instructions executed in funcs' ranges, or None)."""
    env = dict(os.environ, ROIPOOL_ISA=isa)
    cmd = [sys.executable, "-c", CHILD, args.workload, str(args.rois), dtype, "1"]
    count = None
    with tempfile.TemporaryDirectory() as tmp:
        if not funcs:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        else:
            fifo = os.path.join(tmp, "log")
            os.mkfifo(fifo)
            env.update(QEMU_SINGLESTEP="1", QEMU_LOG="exec,nochain", QEMU_LOG_FILENAME=fifo,
                       QEMU_DFILTER=",".join(f"0x{lo:x}..0x{hi:x}" for lo, hi in funcs.values()))
            wc = subprocess.Popen(f"grep -c '^Trace ' < {fifo}", shell=True,
                                  stdout=subprocess.PIPE, text=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            count = int(wc.communicate()[0])
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    if rep["isa"] != isa:
        sys.exit(f"asked for {isa}, ran {rep['isa']}")
    return rep, count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="vgg16-frcnn-300")
    ap.add_argument("--rois", type=int, default=30, help="the first N ROIs of the workload")
    ap.add_argument("--dtypes", default="float32")
    args = ap.parse_args()
    for dtype in args.dtypes.split(","):
        per_visit = {}
        for isa in ("baseline", "neon"):
            rep, _ = child(isa, args, dtype)
            call = {}
            for group, funcs in ranges(rep, isa, dtype).items():
                again, call[group] = child(isa, args, dtype, funcs) if funcs else (rep, 0)
                if again["base"] != rep["base"]:
                    sys.exit("the extension moved between runs")
            per_visit[isa] = sum(call.values()) / rep["visits"]
            print(json.dumps(dict(workload=f"{args.workload}[:{args.rois}]", dtype=dtype,
                                  isa=isa, visits=rep["visits"], insns=call,
                                  per_visit={g: round(v / rep["visits"], 3)
                                             for g, v in call.items()},
                                  total_per_visit=round(per_visit[isa], 3))), flush=True)
        print(f"{dtype}: baseline / neon instructions = "
              f"{per_visit['baseline'] / per_visit['neon']:.2f}", flush=True)

if __name__ == "__main__":
    main()
