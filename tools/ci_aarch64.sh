#!/usr/bin/env bash
# CI, aarch64: the aarch64 wheel installed into a fresh arm64 Debian 12 root
# under qemu-user (no compiler there), then the whole test suite against it.
#
#   bash tools/ci_aarch64.sh        # as root; from nothing on a fresh machine
#
# 1. the wheel: wheelhouse/roipool-*_aarch64.whl, built first with
#    `tools/build_wheel.sh --arch aarch64` when there is none (ROIPOOL_REBUILD=1
#    always rebuilds);
# 2. a fresh root: a copy of the debootstrap cache of tools/arm64_root.sh
#    (made once per machine, under /var/cache/roipool), Python and venv only;
# 3. a venv there with the wheel and its test extras from PyPI; checks that
#    `python -m roipool info` says "simd path: neon" and that a parallel call
#    maps the libgomp in roipool.libs/ and no other;
# 4. the suite against the wheel, as in CI's x86_64 packaging phase
#    (tools/ci_lib.sh's ci_wheel_suite, run by the root's python on /work).
#    torch is not installed there (an emulated torch run would take longer
#    than the rest together), so the torch tests skip and the wheel test that
#    mixes torch's and scikit-learn's OpenMP with ours is deselected; ldd,
#    the bundled runtime and threadpoolctl's view of it are tested.
# Prints the phase's time. ROIPOOL_ARM64_TEST_ROOT: where the root goes.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd)
T0=$(date +%s)
say() { echo "== aarch64: $*"; }

# shellcheck source=tools/arm64_root.sh
source tools/arm64_root.sh
# shellcheck source=tools/ci_lib.sh
source tools/ci_lib.sh
WHEEL=$(ls wheelhouse/roipool-*_aarch64.whl 2>/dev/null || true)
if [ -z "$WHEEL" ] || [ "${ROIPOOL_REBUILD:-0}" = 1 ]; then
    say "build the wheel: tools/build_wheel.sh --arch aarch64"
    bash tools/build_wheel.sh --arch aarch64
    WHEEL=$(ls wheelhouse/roipool-*_aarch64.whl)
fi
T_BUILT=$(date +%s)
say "wheel $(basename "$WHEEL")"

TROOT=${ROIPOOL_ARM64_TEST_ROOT:-$ARM64_CACHE-test}
ARM64_WORK=$(mktemp -d "${TMPDIR:-/tmp}/roipool-arm64-test.XXXXXX")
cleanup() { arm64_umount "$TROOT"; rm -rf "$ARM64_WORK"; }
trap cleanup EXIT
say "fresh root $TROOT (from the debootstrap cache)"
arm64_umount "$TROOT" 2>/dev/null || true
rm -rf "$TROOT"
arm64_root "$TROOT"
cp "$WHEEL" "$ARM64_WORK/"
W=/work/$(basename "$WHEEL")

say "install the wheel (no compiler in the root)"
# shellcheck disable=SC2016
arm64_run "$TROOT" bash -ec '
    for cc in cc gcc clang; do
        if command -v $cc >/dev/null; then echo "a compiler is in the root: $cc"; exit 1; fi
    done
    python3 -m venv /opt/venv
    /opt/venv/bin/python -m pip install --quiet --only-binary=:all: "$1[test]" \
        2> >(grep -v "^WARNING: Location .* is ignored" >&2) || exit 1' bash "$W" \
    || { echo "aarch64: installing $W failed" >&2; exit 1; }
T_INSTALLED=$(date +%s)

say "python -m roipool info; the bundled libgomp is the one loaded"
arm64_run "$TROOT" bash -ec 'cd /tmp && /opt/venv/bin/python -m roipool info | tee /work/info.txt'
grep -q "^simd path: neon" "$ARM64_WORK/info.txt" || { echo "aarch64: not on the neon path" >&2; exit 1; }
arm64_run "$TROOT" bash -ec 'cd /tmp && /opt/venv/bin/python - <<EOF
import os, numpy as np, roipool
pkg = os.path.dirname(os.path.dirname(os.path.realpath(roipool.__file__)))
data = np.arange(2 * 64 * 9 * 9, dtype=np.float32).reshape(2, 64, 9, 9)
rois = np.array([[0, 0, 0, 8, 8], [1, 1, 1, 7, 7]], np.float32)
roipool.roi_pooling(data, rois, (3, 3), 1.0, num_threads=2)
maps = {os.path.realpath(l.split()[-1]) for l in open("/proc/self/maps") if "gomp" in l}
bundled = [m for m in maps if m.startswith(os.path.join(pkg, "roipool.libs") + "/")]
print("   OpenMP runtime mapped:", sorted(maps))
assert maps and maps == set(bundled), (maps, pkg)
EOF'

say "the test suite against the installed wheel (emulated)"
ci_wheel_suite "$ARM64_WORK" arm64_run "$TROOT" env -C /work /opt/venv/bin/python \
    -- --deselect tests/test_wheel.py::test_with_torch_and_sklearn_openmp_in_one_process
T_END=$(date +%s)
echo "   aarch64 phase took $(( T_END - T0 )) s (wheel $(( T_BUILT - T0 )) s, root + install $(( T_INSTALLED - T_BUILT )) s, info + suite $(( T_END - T_INSTALLED )) s)"
