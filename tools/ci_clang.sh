#!/usr/bin/env bash
# CI phase: roipool built by clang with LLVM's OpenMP runtime (Debian's clang
# and libomp-dev, standing in for macOS's compiler family; gcc stays the
# wheel's compiler), then the whole test suite against that build.
#
# `CC=clang pip install .` in a fresh venv, then checks, independently of
# roipool's own CPU detection, that show_config() says clang, OpenMP on (the
# extension linked to libomp), and the best SIMD path this CPU has (from
# /proc/cpuinfo: avx512f+bw+vl+dq -> avx512, avx2 -> avx2, else baseline).
#
#   bash tools/ci_clang.sh            # as root (apt-get); PYTHON=python3
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
T0=$(date +%s)

if ! dpkg -s clang libomp-dev >/dev/null 2>&1; then
    echo "== apt-get install clang libomp-dev"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libomp-dev >/dev/null
fi
clang --version | head -n 1

source tools/ci_lib.sh
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ci_venv "$PY" "$TMP"
echo "== CC=clang pip install '.[test]'"
CC=clang "$VPY" -m pip install --quiet --no-cache-dir ".[test]"

"$VPY" -m roipool info
(cd / && "$VPY" - <<'EOF')
import subprocess
import roipool
from roipool import _roi_pool

flags = set(open("/proc/cpuinfo").read().split("\nflags")[1].split("\n")[0].split())
if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
    best = "avx512"
elif "avx2" in flags:
    best = "avx2"
else:
    best = "baseline"
info = _roi_pool.build_info()
ldd = subprocess.run(["ldd", _roi_pool.__file__], capture_output=True, text=True).stdout
problems = [msg for bad, msg in [
    (not info["compiler"].startswith("clang"), f"compiler is {info['compiler']!r}, not clang"),
    (not roipool.openmp_enabled(), "built without OpenMP"),
    ("libomp" not in ldd, "the extension is not linked to libomp:\n" + ldd),
    (roipool.get_isa() != best, f"simd path {roipool.get_isa()}, the CPU's best is {best}"),
    (roipool.supported_isas()[-1] != best, f"supported {roipool.supported_isas()}, best {best}"),
] if bad]
if problems:
    raise SystemExit("ci_clang.sh: " + "; ".join(problems))
print(f"   clang build: {info['compiler']}, OpenMP on (libomp), simd path {best}")
EOF
"$VPY" -m pytest -q -rs
echo "   clang phase took $(( $(date +%s) - T0 )) s"
