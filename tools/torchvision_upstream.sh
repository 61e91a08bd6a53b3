#!/usr/bin/env bash
# torchvision's own CPU tests of roi_align, RoIAlign, MultiScaleRoIAlign (and
# roi_pool, RoIPool), unmodified, run with roipool.torch.patch_torchvision()
# applied before any test (issue 25, point 2). Needs network access: the test
# files are fetched from github.com/pytorch/vision at the tag of the installed
# torchvision (they are not in the wheel) into a temporary directory; nothing
# of them is kept in this repository. A pytest plugin patches at start and
# fails the run if roipool's RoIAlign kernel never ran (so a patch that did not
# take cannot pass). CUDA and MPS tests skip on a CPU machine.
# Offline: if TORCHVISION_TESTS names a directory, the test files found there
# are copied from it instead of fetched (no network needed).
#
#   bash tools/torchvision_upstream.sh            # in an environment with roipool
#                                                 # importable, torch, torchvision
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
TAG=v$("$PY" -c 'import torchvision; print(torchvision.__version__.split("+")[0])')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
BASE=https://raw.githubusercontent.com/pytorch/vision/$TAG/test
for f in test_ops.py common_utils.py conftest.py _utils_internal.py optests_failures_dict.json; do
    if [ -n "${TORCHVISION_TESTS:-}" ] && [ -d "$TORCHVISION_TESTS" ]; then
        if [ -f "$TORCHVISION_TESTS/$f" ]; then cp "$TORCHVISION_TESTS/$f" "$WORK/$f"; fi
    else
        curl -fsSL "$BASE/$f" -o "$WORK/$f"
    fi
done
cat > "$WORK/roipool_patch_plugin.py" <<'PLUGIN'
import pytest
import roipool.torch as rt
from roipool.torch import _ops

CALLS = {"roi_align": 0, "roi_pooling": 0}


def _counted(name):
    fn = getattr(_ops, name)

    def inner(*a, **kw):
        CALLS[name] += 1
        return fn(*a, **kw)
    return inner


def pytest_configure(config):
    _ops.roi_align = _counted("roi_align")
    _ops.roi_pooling = _counted("roi_pooling")
    rt.patch_torchvision()


def pytest_sessionfinish(session, exitstatus):
    print(f"\nroipool kernel calls under the patch: {CALLS}")
    if CALLS["roi_align"] == 0 or CALLS["roi_pooling"] == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("roipool's kernels never ran: the patch did not take")
PLUGIN
cd "$WORK"
PYTHONPATH="$WORK${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -q -p roipool_patch_plugin \
    test_ops.py -k "(TestRoIAlign or TestMultiScaleRoIAlign or TestRoiPool) and not cuda and not mps"
