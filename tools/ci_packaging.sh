#!/usr/bin/env bash
# CI phase (issue 13): tools/build_wheel.sh makes the sdist and the repaired
# manylinux wheel (libgomp bundled in roipool.libs/) in wheelhouse/ and checks
# that the sdist builds the same wheel. The wheel then goes into a fresh venv
# with torch and scikit-learn (each brings its own OpenMP runtime; versions
# from tools/peer_pins.txt), and the whole suite runs against it
# (tools/ci_lib.sh's ci_wheel_suite), with tests/test_wheel.py's torch +
# scikit-learn test.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/ci_lib.sh
PY=${PYTHON:-python3}
bash tools/build_wheel.sh
TAG=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
WHEEL=$(ls wheelhouse/roipool-*-"$TAG"-"$TAG"-manylinux*.whl)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT  # torch: 5 GB
ci_venv "$PY" "$WORK"
"$VPY" -m pip install --quiet -c "$PINS" "$WHEEL[test-torch]" scikit-learn torch torchvision
ROIPOOL_REQUIRE_TORCH=1 ci_wheel_suite "$WORK/run" "$VPY"
