#!/usr/bin/env bash
# CI phase: the whole test suite on the oldest NumPy the dependencies admit.
#
# The floor is read from pyproject.toml's `numpy>=X.Y`; the run takes the
# newest patch release of that minor series (numpy~=X.Y.0, 1.25.2 today), in a
# fresh venv. roipool is built as a user's pip builds it: in pip's isolated
# build environment, which pyproject.toml gives numpy>=2.0 (an extension built
# against NumPy 2 runs on 1.x; built against 1.x it would not run on 2), then
# installed beside the old NumPy. The suite runs from the checkout with no src/
# on sys.path, so it imports the installed roipool.
#
#   bash tools/ci_numpy_floor.sh      # PYTHON=python3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
T0=$(date +%s)

FLOOR=$(sed -n 's/^dependencies = \[.*"numpy>=\([0-9]*\.[0-9]*\)".*/\1/p' pyproject.toml)
[ -n "$FLOOR" ] || { echo "ci_numpy_floor.sh: no numpy>=X.Y in pyproject.toml's dependencies" >&2; exit 1; }
source tools/ci_lib.sh
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ci_venv "$PY" "$TMP"
echo "== numpy floor: numpy~=$FLOOR.0 with roipool built by pip (isolated, numpy>=2.0)"
"$VPY" -m pip install --quiet "numpy~=$FLOOR.0" ".[test]"
HAVE=$("$VPY" -c 'import numpy; print(numpy.__version__)')
case "$HAVE" in
    "$FLOOR".*) ;;
    *) echo "ci_numpy_floor.sh: pip installed numpy $HAVE, not $FLOOR.x" >&2; exit 1 ;;
esac
"$VPY" -m roipool info
"$VPY" -m pytest -q -rs
echo "   numpy floor ($HAVE) took $(( $(date +%s) - T0 )) s"
