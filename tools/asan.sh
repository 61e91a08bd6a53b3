#!/usr/bin/env bash
# Build roipool with AddressSanitizer + UndefinedBehaviorSanitizer in a
# throw-away copy of the tree and run the test suite and the fuzzer under it
# (both cover roi_pooling and roi_align, forward and backward).
#
#   tools/asan.sh                 # tests + 2,000 fuzz cases, the -O3 kernels
#   tools/asan.sh --cases 10000   # more fuzz cases
#   tools/asan.sh --debug         # also ROIPOOL_DEBUG=1: -O0 -g, Cython bounds checks
#   tools/asan.sh --keep          # keep the sanitized copy (path is printed)
#   tools/asan.sh -- -k fuzz      # extra arguments after -- go to pytest
#
# The normal in-place build in this checkout is never touched: the tree is
# copied to a temporary directory, built there with ROIPOOL_SANITIZE=1
# (setup.py adds -fsanitize=address,undefined; this script adds
# -fsanitize=float-cast-overflow through CFLAGS), and PYTHONPATH points at the
# copy's src/. CPython is not built with ASan, so the sanitizer runtimes are
# LD_PRELOADed. Exit status is non-zero on any sanitizer report, test
# failure or fuzz failure. Needs gcc (or clang) with libasan/libubsan.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
CASES=2000
KEEP=0
DEBUG=0
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --cases) CASES=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --debug) DEBUG=1; shift ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h|--help) sed -n 2,21p "$0"; exit 0 ;;
        *) echo "asan.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

T0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/roipool-asan.XXXXXX")
cleanup() {
    if [ "$KEEP" = 1 ]; then echo "asan.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- copy the sources (not the build products, not .git) -------------------
SRC="$WORK/roipool-src"
mkdir -p "$SRC"
tar -C "$HERE" \
    --exclude=./.git --exclude=./build --exclude='*.so' --exclude='*.pyd' \
    --exclude=./src/roipool/_roi_pool.c --exclude='__pycache__' --exclude='.hypothesis' \
    --exclude='./venv*' --exclude='./.venv*' --exclude='*.egg-info' \
    -cf - . | tar -C "$SRC" -xf -

# --- build ------------------------------------------------------------------
CC_BIN=${CC:-gcc}
LIBASAN=$("$CC_BIN" -print-file-name=libasan.so)
LIBUBSAN=$("$CC_BIN" -print-file-name=libubsan.so)
for lib in "$LIBASAN" "$LIBUBSAN"; do
    if [ ! -e "$lib" ]; then
        echo "asan.sh: $CC_BIN has no sanitizer runtime ($lib); install libasan/libubsan" >&2
        exit 2
    fi
done
# The build runs setup.py directly, so the build requirements and the test
# extra of pyproject.toml must be in $PY itself (no isolated build env here).
"$PY" - "$HERE/pyproject.toml" <<'EOF' || exit 2
import re, sys
from importlib.metadata import version, PackageNotFoundError
try:
    import tomllib
except ImportError:  # Python 3.10: check the build requirements only
    tomllib = None
reqs = ["setuptools>=77", "Cython>=3.0", "numpy>=2.0"]
if tomllib:
    with open(sys.argv[1], "rb") as f:
        meta = tomllib.load(f)
    reqs = meta["build-system"]["requires"] + meta["project"]["optional-dependencies"]["test"]
bad = []
for req in reqs:
    name, _, low = re.match(r"([A-Za-z0-9_.-]+)\s*(>=\s*([0-9.]+))?", req).groups()
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    key = lambda v: [int(p) for p in re.findall(r"\d+", v)[:3]]
    if have is None or (low and key(have) < key(low)):
        bad.append(req)
if bad:
    sys.exit("asan.sh: %s lacks %s; run: %s -m pip install %s"
             % (sys.executable, ", ".join(bad), sys.executable, " ".join(repr(r) for r in bad)))
EOF
echo "== building a sanitized copy in $SRC"
(
    cd "$SRC"
    CFLAGS="${CFLAGS:-} -fsanitize=float-cast-overflow" ROIPOOL_SANITIZE=1 ROIPOOL_DEBUG=$DEBUG \
        "$PY" setup.py -q build_ext --inplace --force >"$WORK/build.log" 2>&1
) || { tail -50 "$WORK/build.log"; echo "asan.sh: build failed" >&2; exit 2; }
T1=$(date +%s)
echo "   built in $((T1 - T0)) s"

# --- environment for every process below (pytest, its subprocesses, fuzz) ---
export PYTHONPATH="$SRC/src${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$LIBASAN $LIBUBSAN"
# detect_leaks=0: CPython leaks by design at exit.
# allocator_may_return_null=1: the limit tests ask for impossible sizes on
#   purpose; malloc must return NULL (roipool turns it into MemoryError)
#   instead of ASan aborting on "allocation-size-too-big".
# handle_segv etc. stay on so a crash prints a stack.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=0:exitcode=86:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87"
export ROIPOOL_SANITIZED=1
export PYTHONFAULTHANDLER=1
# This run tests the sanitized build in its source copy on purpose; CI=true
# makes the packaging tests demand an installed wheel, which is .ci/run's job.
unset CI
# Fewer OpenMP threads than cores keeps ASan's shadow bookkeeping cheap but
# still runs the parallel paths.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

cd "$SRC"
"$PY" - <<'EOF'
import roipool, os, sys
info = roipool._roi_pool.build_info()
assert "-fsanitize=address" in info["flags"], info
assert os.path.dirname(roipool.__file__).startswith(os.environ["PYTHONPATH"].split(":")[0]), roipool.__file__
print("   sanitized build:", info["flags"])
EOF

STATUS=0
echo "== pytest (sanitized)"
"$PY" -m pytest -q -p no:cacheprovider "$SRC/tests" ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"} \
    || STATUS=$?
T2=$(date +%s)
echo "   pytest took $((T2 - T1)) s (exit $STATUS)"

echo "== fuzz, $CASES cases (sanitized)"
FSTATUS=0
"$PY" "$SRC/tools/fuzz.py" --cases "$CASES" --timeout 900 || FSTATUS=$?
T3=$(date +%s)
echo "   fuzz took $((T3 - T2)) s (exit $FSTATUS)"

echo "== total $((T3 - T0)) s: build $((T1 - T0)) s, pytest $((T2 - T1)) s, fuzz $((T3 - T2)) s"
if [ "$STATUS" != 0 ] || [ "$FSTATUS" != 0 ]; then
    echo "asan.sh: FAILED (pytest exit $STATUS, fuzz exit $FSTATUS)" >&2
    exit 1
fi
echo "asan.sh: clean"
