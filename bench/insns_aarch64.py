"""Guest instructions per visit of roipool's per-ISA code, baseline against
neon, on aarch64 under qemu-user: ARM speed cannot be timed on an x86_64
machine, so this counts instead.

Run inside an arm64 root with roipool installed (tools/ci_aarch64.sh leaves
one; see the README's "aarch64" section):

    python bench/insns_aarch64.py [--workload vgg16-frcnn-300] [--rois 30]

How: each measurement is a child Python under qemu with -singlestep (one
guest instruction per translation block) and exec logging without block
chaining (every executed block is one log line), the log filtered to the
address ranges of the path's own functions in the extension (from its ELF
symbol table: the ROI max kernel and bin max of that path and type, and the
path's transposes; qemu-user maps the extension at the same guest address in
every run, which the child checks). The log goes through a pipe to awk, which counts its lines by function.
A child makes `calls` forward calls (argmax on, one thread); the count with 1
call is subtracted from the count with 2, which cancels everything before the
first call, and divided by the visits of one call (the elements the rule
reads, roipool._workloads.visits). The gather of the channel blocks, the ROI
geometry and NumPy are the same code for both paths and are not counted.
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
    """{function name: (first, last guest address)} of the path's own functions."""
    t, i = SUFFIX[dtype], ISA_SUFFIX[isa]
    pat = re.compile(rf"roipool_(roi_max|bin_max)_{t}_{i}$|roipool_transpose(16|32|64)_{i}$")
    funcs = {n: v for n, v in functions(rep["so"]).items() if pat.match(n)}
    if not any(n.startswith("roipool_roi_max") for n in funcs):
        sys.exit(f"no kernel symbol for {isa} {dtype} in {rep['so']} (stripped?)")
    base = int(rep["base"], 16)
    return {n: (base + v, base + v + s - 1) for n, (v, s) in funcs.items()}


# Counts the log's lines by the function their guest PC (the second field in
# brackets, 16 hex digits: string order is address order) falls in. The "x"
# keeps awk from reading "...5500e40000" as a number.
AWK = r"""
BEGIN { n = split(R, r, ","); for (i = 1; i <= n; i += 3) { lo[i] = "x" r[i]; hi[i] = "x" r[i + 1] } }
/^Trace / { split($4, f, "/"); pc = "x" f[2]; for (i = 1; i <= n; i += 3)
            if (pc >= lo[i] && pc <= hi[i]) { c[r[i + 2]]++; break } }
END { for (k in c) print k, c[k] }
"""


def child(isa, args, dtype, calls, funcs=None):
    """(child's report, {function: guest instructions executed in it} or None)."""
    env = dict(os.environ, ROIPOOL_ISA=isa)
    cmd = [sys.executable, "-c", CHILD, args.workload, str(args.rois), dtype, str(calls)]
    counts = None
    with tempfile.TemporaryDirectory() as tmp:
        if not funcs:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        else:
            fifo = os.path.join(tmp, "log")
            os.mkfifo(fifo)
            env.update(QEMU_SINGLESTEP="1", QEMU_LOG="exec,nochain", QEMU_LOG_FILENAME=fifo,
                       QEMU_DFILTER=",".join(f"0x{lo:x}..0x{hi:x}" for lo, hi in funcs.values()))
            spec = ",".join(f"{lo:016x},{hi:016x},{n}" for n, (lo, hi) in funcs.items())
            with open(fifo + ".n", "w+") as out:
                reader = subprocess.Popen(f"awk -v R={spec} '{AWK}' < {fifo}", shell=True,
                                          stdout=out)
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                reader.wait()
                out.seek(0)
                counts = {n: 0 for n in funcs}
                counts.update({k: int(v) for k, v in (line.split() for line in out)})
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    if rep["isa"] != isa:
        sys.exit(f"asked for {isa}, ran {rep['isa']}")
    return rep, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="vgg16-frcnn-300")
    ap.add_argument("--rois", type=int, default=30, help="the first N ROIs of the workload")
    ap.add_argument("--dtypes", default="float32,float16")
    args = ap.parse_args()
    for dtype in args.dtypes.split(","):
        per_visit = {}
        for isa in ("baseline", "neon"):
            rep, _ = child(isa, args, dtype, 1)
            funcs = ranges(rep, isa, dtype)
            rep1, one = child(isa, args, dtype, 1, funcs)
            rep2, two = child(isa, args, dtype, 2, funcs)
            if rep1["base"] != rep["base"] or rep2["base"] != rep["base"]:
                sys.exit("the extension moved between runs")
            call = {n: two[n] - one[n] for n in funcs}
            kernel = sum(v for n, v in call.items() if "_max_" in n)
            per_visit[isa] = sum(call.values()) / rep["visits"]
            print(json.dumps(dict(workload=f"{args.workload}[:{args.rois}]", dtype=dtype,
                                  isa=isa, visits=rep["visits"], per_call=call,
                                  kernel_per_visit=round(kernel / rep["visits"], 3),
                                  all_per_visit=round(per_visit[isa], 3))), flush=True)
        print(f"{dtype}: baseline / neon instructions = "
              f"{per_visit['baseline'] / per_visit['neon']:.2f}", flush=True)

if __name__ == "__main__":
    main()
