# Sourced by tools/ci_*.sh (and .ci/run for PINS): what the CI phases share.

# The peers' versions, one per line as pip constraints: every install of a
# peer in CI passes `-c "$PINS"`, so a version is written once.
PINS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/peer_pins.txt

# ci_venv PYTHON DIR: a fresh venv of that Python in DIR/venv with a current
# pip; sets VPY to its python.
ci_venv() {
    "$1" -m venv "$2/venv"
    VPY=$2/venv/bin/python
    "$VPY" -m pip install --quiet --upgrade pip
}

# ci_wheel_suite DIR PYTHON... [-- PYTEST_ARGS...]: the test suite against
# an installed wheel, as cibuildwheel's test-sources runs it. tests/, tools/
# and bench/ (some tests load their scripts) and pyproject.toml are copied
# into DIR, with no src/, so only the installed package can be imported;
# then `PYTHON... -m roipool info` and `PYTHON... -m pytest -q` run in DIR with
# ROIPOOL_WHEEL_TEST=1 (tests/test_wheel.py: ldd, threadpoolctl, fork) and
# without LD_LIBRARY_PATH. PYTHON... is a command, possibly a shell function
# (the aarch64 phase runs the python of an emulated root that sees DIR).
ci_wheel_suite() {
    local dir=$1 py=() args=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do py+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    args=("$@")
    mkdir -p "$dir"
    cp -r tests tools bench pyproject.toml "$dir/"
    (
        cd "$dir"
        unset LD_LIBRARY_PATH
        export ROIPOOL_WHEEL_TEST=1
        "${py[@]}" -m roipool info
        "${py[@]}" -m pytest -q -rs -p no:cacheprovider "${args[@]}"
    )
}
