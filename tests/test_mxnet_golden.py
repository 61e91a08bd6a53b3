"""roipool against golden data produced by the real MXNet 1.9.1 (an independent oracle).

The data file is written by tools/make_mxnet_golden.py, which runs in a separate
virtualenv with mxnet==1.9.1; this test never imports MXNet.  Each case holds
data, rois (already in data's dtype), pooled_size, spatial_scale and MXNet's
``out``, its hidden second output ``argmax_mx`` and, for the backward cases,
``grad_out`` and MXNet's gradient w.r.t. data (from mx.autograd).

Two facts about MXNet 1.9.1 that the file records:
  * its argmax (kMaxIdx, int32) is the flat index into the whole data array,
    ((b*C + c)*H + h)*W + w; roipool (like Caffe and torchvision) returns
    h*W + w inside plane (b, c).  The file stores both; we compare against the
    converted one and check the conversion separately.
  * its CPU backward scatters grad_out through argmax sequentially (ROI r
    ascending, then ph, pw), each += done in T (for float16: in float32 and
    rounded to half).  That is the order docs/semantics.md prescribes ("Backward"),
    so the gradient is compared exactly.
"""
import json
import os

import numpy as np
import pytest

import roipool
from roipool._reference import forward as ref_forward

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mxnet_golden.npz")


def _load():
    with np.load(PATH, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    return meta, arrays


META, ARRAYS = _load()
CASES = META["cases"]
GRAD_CASES = [c for c in CASES if c["has_grad"]]
# float16 cases where MXNet 1.9.1 multiplies by the unrounded float32 scale
# (mshadow's half_t * float) while docs/semantics.md rounds the scale to float16 first.
AGREE = [c for c in CASES if c["semantics_agrees"]]
DIVERGE = [c for c in CASES if not c["semantics_agrees"]]


def _get(case, name):
    return ARRAYS[f"{case['key']}_{name}"]


def _ids(cases):
    return [c["name"] for c in cases]


def test_golden_file_provenance():
    assert META["mxnet_version"] == "1.9.1"
    assert META["numpy_version"]
    assert len(CASES) >= 60
    dtypes = {c["dtype"] for c in CASES}
    assert {"float32", "float64", "float16"} <= dtypes
    assert len(GRAD_CASES) >= 3


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_mxnet_argmax_layout(case):
    """Self-check of the data: MXNet's argmax = plane argmax + (b*C + c)*H*W."""
    data, rois = _get(case, "data"), _get(case, "rois")
    am, raw = _get(case, "argmax"), _get(case, "argmax_mx")
    N, C, H, W = data.shape
    b = np.trunc(rois[:, 0].astype(np.float64)).astype(np.int64)
    off = ((b[:, None] * C + np.arange(C)[None, :]) * (H * W))[:, :, None, None]
    assert am.dtype == np.int32 and raw.dtype == np.int32
    np.testing.assert_array_equal(am == -1, raw == -1)
    np.testing.assert_array_equal(np.where(raw >= 0, raw - off, -1), am)
    assert ((am == -1) | ((am >= 0) & (am < H * W))).all()


@pytest.mark.parametrize("case", AGREE, ids=_ids(AGREE))
def test_forward_matches_mxnet(case):
    data, rois = _get(case, "data"), _get(case, "rois")
    want_out, want_am = _get(case, "out"), _get(case, "argmax")
    data_c, rois_c = data.copy(), rois.copy()
    out, am = roipool.roi_pooling(data, rois, tuple(case["pooled"]), case["scale"],
                                  return_argmax=True)
    assert out.dtype == want_out.dtype and out.shape == want_out.shape
    assert am.dtype == np.int32 and am.shape == want_am.shape
    # assert_array_equal treats NaN == NaN; compare bit-exact too (signed zeros, inf)
    np.testing.assert_array_equal(out, want_out, err_msg=case["name"])
    np.testing.assert_array_equal(am, want_am, err_msg=case["name"])
    np.testing.assert_array_equal(np.signbit(out), np.signbit(want_out), err_msg=case["name"])
    # inputs are never modified
    np.testing.assert_array_equal(data, data_c)
    np.testing.assert_array_equal(rois, rois_c)


@pytest.mark.parametrize("case", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_backward_matches_mxnet(case):
    data, rois = _get(case, "data"), _get(case, "rois")
    grad_out, want = _get(case, "grad_out"), _get(case, "grad")
    am = _get(case, "argmax")
    got = roipool.roi_pooling_backward(grad_out, rois, am, data.shape)
    assert got.dtype == want.dtype and got.shape == want.shape
    # MXNet's CPU backward accumulates sequentially in T (r, then ph, pw):
    # the same order as roipool's contract, so the result is bit-exact.
    np.testing.assert_array_equal(got, want, err_msg=case["name"])
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=case["name"])


@pytest.mark.parametrize("case", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_backward_through_own_argmax(case):
    """End to end: roipool's own forward argmax fed to its backward gives MXNet's gradient."""
    data, rois = _get(case, "data"), _get(case, "rois")
    _, am = roipool.roi_pooling(data, rois, tuple(case["pooled"]), case["scale"],
                                return_argmax=True)
    got = roipool.roi_pooling_backward(_get(case, "grad_out"), rois, am, data.shape)
    np.testing.assert_array_equal(got, _get(case, "grad"), err_msg=case["name"])


def test_divergent_cases_are_only_the_float16_scale():
    assert len(DIVERGE) == 2
    assert all(c["dtype"] == "float16" and c["scale"] not in (0.5, 1.0, 0.25) for c in DIVERGE)


@pytest.mark.parametrize("case", DIVERGE, ids=_ids(DIVERGE))
def test_float16_scale_follows_semantics_not_mxnet(case):
    """roipool rounds the scale to float16 (docs/semantics.md); MXNet 1.9.1 does not."""
    data, rois = _get(case, "data"), _get(case, "rois")
    pooled, scale = tuple(case["pooled"]), case["scale"]
    out, am = roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True)
    want_out, want_am = ref_forward(data, rois, pooled, scale)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(am, want_am)
    # the golden file really records a different MXNet answer here
    assert not (np.array_equal(out, _get(case, "out")) and np.array_equal(am, _get(case, "argmax")))
