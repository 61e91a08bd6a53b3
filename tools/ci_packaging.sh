#!/usr/bin/env bash
# CI phase (issue 13): tools/build_wheel.sh makes the sdist and the repaired
# manylinux wheel (libgomp bundled in roipool.libs/) in wheelhouse/ and checks
# that the sdist builds the same wheel. The wheel then goes into a fresh venv
# with torch and scikit-learn (each brings its own OpenMP runtime), and the
# whole suite runs against it from a copy of tests/ (with tools/ and bench/,
# whose scripts some tests load), as cibuildwheel's test-sources does: no src/
# there, so only the installed wheel can be imported. ROIPOOL_WHEEL_TEST=1
# turns on tests/test_wheel.py (ldd, threadpoolctl, fork, torch + sklearn).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ci_venv.sh
PY=${PYTHON:-python3}
bash tools/build_wheel.sh
TAG=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
WHEEL=$(ls wheelhouse/roipool-*-"$TAG"-"$TAG"-manylinux*.whl)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT  # torch: 5 GB
ci_venv "$PY" "$WORK"
"$VPY" -m pip install --quiet "$WHEEL[test-torch]" scikit-learn==1.9.1 \
    torch==2.14.1 torchvision==0.29.1
cp -r tests tools bench pyproject.toml "$WORK/"
(cd "$WORK" && env -u LD_LIBRARY_PATH ROIPOOL_WHEEL_TEST=1 ROIPOOL_REQUIRE_TORCH=1 \
    "$VPY" -m pytest -q)
