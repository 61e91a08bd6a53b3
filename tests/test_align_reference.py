"""roipool._reference.roi_align / roi_align_backward, the oracle of every
RoIAlign test, against the real peers bit for bit (docs/semantics.md,
"RoIAlign"): torchvision's CPU roi_align forward and backward (float32,
float64, float16; aligned and not; sampling ratios -1, 0, 1, 2, 3; scales 1,
0.5, 0.7, 1/16, 0.3) and ONNX Runtime's RoiAlign (opset 10 and 16, avg and
max, float32 and float64). Peer tests skip without the peer, except in CI's
peer phase (helpers.import_peer). The worked example of the contract and the
degenerate answers are checked without peers.
"""
import itertools

import numpy as np
import pytest

from align_helpers import (RATIOS, SCALES, align_case, ort_run, ort_session, tv_backward,
                           tv_forward)
from helpers import bfloat16, bits, import_peer
from roipool._reference import roi_align, roi_align_backward

TV_DTYPES = (np.float32, np.float64, np.float16)
POOLED = (3, 2)


@pytest.fixture(scope="module")
def torch():
    return import_peer("torch")


@pytest.fixture(scope="module")
def tv_ops():
    return import_peer("torchvision").ops


@pytest.fixture(scope="module")
def ort():
    import_peer("onnx")
    return import_peer("onnxruntime")


def _seed(*key):
    return abs(hash(repr(key))) % 2**32


@pytest.mark.parametrize("dtype", TV_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("aligned", [False, True])
def test_reference_equals_torchvision(dtype, aligned, torch, tv_ops):
    """Forward and backward, every scale and sampling ratio, bit for bit."""
    for scale, ratio in itertools.product(SCALES, RATIOS):
        rng = np.random.default_rng(_seed(np.dtype(dtype).name, aligned, scale, ratio))
        data, rois = align_case(rng, dtype, scale)
        want = tv_forward(tv_ops, torch, data, rois, POOLED, scale, ratio, aligned)
        got = roi_align(data, rois, POOLED, scale, ratio, aligned)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{scale} {ratio}")
        grad_out = rng.standard_normal(want.shape).astype(dtype)
        want_g = tv_backward(tv_ops, torch, data, rois, grad_out, POOLED, scale, ratio, aligned)
        got_g = roi_align_backward(grad_out, rois, data.shape, scale, ratio, aligned)
        np.testing.assert_array_equal(bits(got_g), bits(want_g), err_msg=f"{scale} {ratio}")


def test_reference_torchvision_specials(torch, tv_ops):
    """Values torchvision gives on edge data: inf/NaN at the plane's (0, 0) make
    bins with outside samples NaN, samples on the last row/column, -0.0."""
    rng = np.random.default_rng(5)
    data, rois = align_case(rng, np.float32, 0.5, H=6, W=7, R=12, flips=False)
    data[0, :, 0, 0] = [np.inf, np.nan, -0.0]
    data[1, 1, -1, -1] = np.nan
    rois[::3, 1:] *= 4  # partly or wholly outside
    for ratio, aligned in itertools.product((0, 2), (False, True)):
        want = tv_forward(tv_ops, torch, data, rois, (2, 3), 0.5, ratio, aligned)
        got = roi_align(data, rois, (2, 3), 0.5, ratio, aligned)
        np.testing.assert_array_equal(bits(got), bits(want))
        assert np.isnan(got).any()


@pytest.mark.parametrize("opset", [10, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_reference_equals_onnxruntime(opset, dtype, mode, ort):
    for scale, ratio, aligned in itertools.product(SCALES, (0, 1, 2, 3), (False, True)):
        if opset == 10 and aligned:
            continue  # opset 10 has only the unaligned mapping
        rng = np.random.default_rng(_seed(opset, np.dtype(dtype).name, mode, scale, ratio, aligned))
        data, rois = align_case(rng, dtype, scale)
        if mode == "max":
            data[0, 0, 0, 0] = np.nan  # max keeps a NaN it holds, drops a later one
        session = ort_session(ort, dtype, POOLED, scale, ratio, aligned, mode, opset)
        want = ort_run(session, data, rois)
        got = roi_align(data, rois, POOLED, scale, ratio, aligned, mode=mode,
                        compat="onnxruntime")
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{scale} {ratio} {aligned}")


def test_float64_compat_differs_at_non_binary_scales(torch, tv_ops, ort):
    """The scale's type is the only difference, and it shows in float64 at 0.7."""
    rng = np.random.default_rng(3)
    data, rois = align_case(rng, np.float64, 0.7, R=20, flips=False)
    tv = roi_align(data, rois, POOLED, 0.7, 2)
    ox = roi_align(data, rois, POOLED, 0.7, 2, compat="onnxruntime")
    assert not np.array_equal(tv, ox)
    np.testing.assert_array_equal(ox, roi_align(data, rois, POOLED, 0.7, 2, compat="mxnet"))
    want_ox = ort_run(ort_session(ort, np.float64, POOLED, 0.7, 2, False), data, rois)
    np.testing.assert_array_equal(bits(ox), bits(want_ox))
    np.testing.assert_array_equal(bits(tv), bits(tv_forward(tv_ops, torch, data, rois, POOLED,
                                                            0.7, 2, False)))


def test_worked_example():
    """docs/semantics.md's RoIAlign example (no peer needed)."""
    x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    row = [[0, 0, 0, 4, 4]]
    for ratio in (-1, 2):
        assert roi_align(x, row, (2, 2), 1.0, ratio).ravel().tolist() == [7, 9, 19, 21]
        assert roi_align(x, row, (2, 2), 1.0, ratio, True).ravel().tolist() == [3.5, 5.5, 15.5, 17.5]
    got = roi_align(x, row, (2, 2), 1.0, 2, mode="max", compat="onnxruntime")
    assert got.ravel().tolist() == [3.5, 4, 6.5, 7]


def test_degenerate_answers():
    """The contract's table: no samples -> 0; empty map -> 0; outside -> 0."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
    for row in ([0, 3, 1, 1, 4], [0, 3, 4, 1, 1], [0, 2, 1, 2, 4], [0, 2, 2, 2, 2]):
        for ratio in (-1, 0):
            out = roi_align(data, np.array([row], np.float32), (2, 2), 1.0, ratio, True)
            assert not out.any() and not np.signbit(out).any()
            grad = roi_align_backward(np.ones((1, 2, 2, 2), np.float32), [row], data.shape, 1.0,
                                      ratio, True)
            assert not grad.any()
    empty = np.zeros((1, 2, 0, 6), np.float32)
    assert roi_align(empty, [[0, 1, 1, 3, 3]], (2, 2), 1.0, 2).tolist() == np.zeros((1, 2, 2, 2)).tolist()
    out = roi_align(data, [[0, 100, 100, 110, 110]], (2, 2), 1.0, 2)
    assert not out.any()


@pytest.mark.skipif(bfloat16 is None, reason="ml_dtypes (test extra) not installed")
def test_bfloat16_is_float32_rounded_once():
    rng = np.random.default_rng(2)
    data, rois = align_case(rng, np.float32, 0.7)
    xb = data.astype(bfloat16)
    want = roi_align(xb.astype(np.float32), rois, POOLED, 0.7, 2).astype(bfloat16)
    got = roi_align(xb, rois, POOLED, 0.7, 2)
    assert got.dtype == bfloat16
    np.testing.assert_array_equal(bits(got), bits(want))
    # not the same as rounding every step: the contract's own rule, pinned
    gb = rng.standard_normal(got.shape).astype(bfloat16)
    want_g = roi_align_backward(gb.astype(np.float32), rois, data.shape, 0.7, 2).astype(bfloat16)
    np.testing.assert_array_equal(bits(roi_align_backward(gb, rois, data.shape, 0.7, 2)),
                                  bits(want_g))


@pytest.mark.skipif(bfloat16 is None, reason="ml_dtypes (test extra) not installed")
def test_bfloat16_equals_torchvision_autocast(torch, tv_ops):
    """The contract's bfloat16 rule is torchvision's CPU autocast: float32
    kernel on float32 rows, the result rounded to bfloat16."""
    rng = np.random.default_rng(4)
    data, rois = align_case(rng, np.float32, 0.25, H=20, W=24, R=8, flips=False)
    xb = data.astype(bfloat16)
    x = torch.from_numpy(xb.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
    for ratio, aligned in itertools.product((-1, 2), (False, True)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = tv_ops.roi_align(x, torch.from_numpy(rois), POOLED, 0.25, ratio, aligned)
        assert y.dtype == torch.bfloat16
        want = y.view(torch.int16).numpy().view(np.uint16)
        got = roi_align(xb, rois, POOLED, 0.25, ratio, aligned)
        np.testing.assert_array_equal(got.view(np.uint16), want)
