"""RoIAlign against golden data from the real MXNet 1.9.1 (mx.nd.contrib.ROIAlign),
written by tools/make_mxnet_align_golden.py in MXNet's own virtualenv; this
test never imports MXNet. compat="mxnet" (the scale as a C float converted to
the data's type) equals it bit for bit: float32, float64 and float16 forward,
float32 and float64 backward. In float64 at the scales 0.7 and 0.3 the
torchvision rule differs from it, which the file also pins."""
import json
import os

import numpy as np
import pytest

import roipool
from roipool._reference import roi_align as ref_align, roi_align_backward as ref_backward

from helpers import bits

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mxnet_align_golden.npz")

with np.load(PATH, allow_pickle=False) as z:
    ARRAYS = {k: z[k] for k in z.files}
META = json.loads(str(ARRAYS.pop("meta")))
CASES = META["cases"]


def _args(c):
    k = c["key"]
    return (ARRAYS[f"{k}_data"], ARRAYS[f"{k}_rois"], tuple(c["pooled"]), c["scale"],
            c["sampling_ratio"], c["aligned"])


def test_golden_file_provenance():
    assert META["mxnet_version"] == "1.9.1" and META["operator"] == "mx.nd.contrib.ROIAlign"
    assert len(CASES) == 120
    assert {c["dtype"] for c in CASES} == {"float32", "float64", "float16"}
    assert {c["scale"] for c in CASES} >= {0.7, 0.3}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reference_equals_mxnet(case):
    args = _args(case)
    k = case["key"]
    np.testing.assert_array_equal(bits(ref_align(*args, compat="mxnet")), bits(ARRAYS[f"{k}_out"]))
    if case["has_grad"]:
        data, rois, _, scale, ratio, aligned = args
        got = ref_backward(ARRAYS[f"{k}_grad_out"], rois, data.shape, scale, ratio, aligned,
                           compat="mxnet")
        np.testing.assert_array_equal(bits(got), bits(ARRAYS[f"{k}_grad"]))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_roi_align_equals_mxnet(dtype):
    for case in (c for c in CASES if c["dtype"] == dtype):
        args = _args(case)
        k = case["key"]
        got = roipool.roi_align(*args, compat="mxnet", num_threads=2)
        np.testing.assert_array_equal(bits(got), bits(ARRAYS[f"{k}_out"]), err_msg=case["name"])
        if case["has_grad"]:
            data, rois, _, scale, ratio, aligned = args
            g = roipool.roi_align_backward(ARRAYS[f"{k}_grad_out"], rois, data.shape, scale, ratio,
                                           aligned, compat="mxnet", num_threads=2)
            np.testing.assert_array_equal(bits(g), bits(ARRAYS[f"{k}_grad"]), err_msg=case["name"])


def test_float64_torchvision_rule_differs_where_the_scale_is_not_a_float32():
    differ = set()
    for case in (c for c in CASES if c["dtype"] == "float64"):
        same = np.array_equal(ref_align(*_args(case)), ARRAYS[f"{case['key']}_out"])
        if not same:
            differ.add(case["scale"])
    assert differ == {0.7, 0.3}
