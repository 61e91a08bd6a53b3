"""roi_pooling_backward: the scatter of docs/semantics.md, "Backward", deterministic.

Compared bit for bit with the reference scatter (roipool._reference), which adds
in ROI order r, then ph, pw, in T. Overlapping ROIs make several bins add into
the same element, so the order of the adds is visible in float32 results.
"""
import numpy as np
import pytest

import roipool
from roipool._reference import backward as ref_backward, forward as ref_forward
from helpers import bfloat16, bits

DTYPES = [np.float32, np.float64, np.float16] + ([bfloat16] if bfloat16 is not None else [])


def overlapping_case(dtype, N=2, C=12, H=13, W=17, R=40, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    # ROIs piled on one region: many bins pick the same element
    x1 = rng.integers(0, 6, R)
    y1 = rng.integers(0, 5, R)
    rois = np.column_stack([rng.integers(0, N, R), x1, y1, x1 + rng.integers(0, 12, R),
                            y1 + rng.integers(0, 9, R)]).astype(np.float32)
    # values spanning many binades make the order of float adds matter
    e = 6 if np.dtype(dtype).itemsize >= 4 else 2  # float16 tops out at 65504
    grad = rng.standard_normal((R, C, 3, 3)) * 10.0 ** rng.integers(-e, e, (R, C, 3, 3))
    return data, rois, grad.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_backward_equals_reference_scatter(dtype):
    data, rois, grad = overlapping_case(dtype)
    _, am = ref_forward(data, rois, (3, 3), 1.0)
    # the case really overlaps: some element is chosen by many bins
    counts = np.bincount(am[am >= 0].ravel())
    assert counts.max() >= 5
    want = ref_backward(grad, rois, am, data.shape)
    for threads in (1, 2, 3):
        got = roipool.roi_pooling_backward(grad, rois, am, data.shape, num_threads=threads)
        assert got.dtype == np.dtype(dtype) and got.shape == data.shape
        np.testing.assert_array_equal(bits(got), bits(want))


def test_order_of_adds_is_visible_and_pinned():
    """Adding 1e8, 1, -1e8 in float32 in ROI order gives 0; another order would not."""
    data = np.zeros((1, 1, 2, 2), np.float32)
    data[0, 0, 0, 0] = 1
    rois = np.array([[0, 0, 0, 1, 1]] * 3, np.float32)
    _, am = roipool.roi_pooling(data, rois, 1, 1.0, return_argmax=True)
    assert (am == 0).all()
    grad = np.array([1e8, 1, -1e8], np.float32).reshape(3, 1, 1, 1)
    got = roipool.roi_pooling_backward(grad, rois, am, data.shape)
    # (1e8 + 1) rounds to 1e8 in float32, minus 1e8 is 0
    assert got[0, 0, 0, 0] == 0.0
    grad = np.array([1, 1e8, -1e8], np.float32).reshape(3, 1, 1, 1)
    got = roipool.roi_pooling_backward(grad, rois, am, data.shape)
    assert got[0, 0, 0, 0] == 0.0
    grad = np.array([1e8, -1e8, 1], np.float32).reshape(3, 1, 1, 1)
    got = roipool.roi_pooling_backward(grad, rois, am, data.shape)
    assert got[0, 0, 0, 0] == 1.0


def test_float16_rounds_every_add():
    # 2048 + 1 is 2048 in float16 (each add rounded), so three +1s after 2048 vanish
    data = np.zeros((1, 1, 1, 1), np.float16)
    rois = np.zeros((4, 5), np.float16)
    am = np.zeros((4, 1, 1, 1), np.int32)
    grad = np.array([2048, 1, 1, 1], np.float16).reshape(4, 1, 1, 1)
    got = roipool.roi_pooling_backward(grad, rois, am, data.shape)
    assert got.dtype == np.float16 and got[0, 0, 0, 0] == 2048
    grad = np.array([1, 1, 1, 2048], np.float16).reshape(4, 1, 1, 1)
    assert roipool.roi_pooling_backward(grad, rois, am, data.shape)[0, 0, 0, 0] == 2052


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_thread_counts_on_a_large_case(dtype):
    rng = np.random.default_rng(5)
    data = rng.standard_normal((2, 64, 30, 40)).astype(dtype)
    R = 600
    x1, y1 = rng.uniform(0, 500, R), rng.uniform(0, 380, R)
    rois = np.column_stack([rng.integers(0, 2, R), x1, y1, x1 + rng.uniform(0, 300, R),
                            y1 + rng.uniform(0, 200, R)])
    _, am = roipool.roi_pooling(data, rois, 7, 1 / 16, return_argmax=True)
    grad = (rng.standard_normal(am.shape) * 1e3).astype(dtype)
    results = [roipool.roi_pooling_backward(grad, rois, am, data.shape, num_threads=t)
               for t in (1, 2, 3, 4)]
    for r in results[1:]:
        np.testing.assert_array_equal(bits(r), bits(results[0]))
    # and the sum of the gradient is the sum of grad_out where argmax >= 0
    np.testing.assert_allclose(results[0].sum(dtype=np.float64),
                               grad[am >= 0].sum(dtype=np.float64), rtol=1e-6)


def test_backward_through_forward_argmax_matches_numerical_gradient():
    """Where maxima are unique, d out / d data is the scatter: check one coordinate."""
    rng = np.random.default_rng(9)
    data = rng.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7).astype(np.float64)
    rois = np.array([[0, 0, 0, 6, 5], [1, 1, 1, 4, 4], [0, 2, 1, 5, 5]], np.float64)
    out, am = roipool.roi_pooling(data, rois, 2, 1.0, return_argmax=True)
    grad_out = rng.standard_normal(out.shape)
    g = roipool.roi_pooling_backward(grad_out, rois, am, data.shape)
    eps = 1e-3
    for idx in [(0, 0, 5, 6), (1, 2, 4, 4), (0, 1, 3, 3), (1, 0, 0, 0)]:
        plus, minus = data.copy(), data.copy()
        plus[idx] += eps
        minus[idx] -= eps
        num = ((roipool.roi_pooling(plus, rois, 2, 1.0) - roipool.roi_pooling(minus, rois, 2, 1.0))
               * grad_out).sum() / (2 * eps)
        assert num == pytest.approx(g[idx], abs=1e-9)


def test_out_buffer_is_overwritten_not_accumulated():
    data, rois, grad = overlapping_case(np.float32, R=6)
    _, am = roipool.roi_pooling(data, rois, 3, 1.0, return_argmax=True)
    buf = np.full(data.shape, 7.0, np.float32)
    res = roipool.roi_pooling_backward(grad, rois, am, data.shape, out=buf)
    assert res is buf
    np.testing.assert_array_equal(buf, ref_backward(grad, rois, am, data.shape))


def test_argmax_minus_one_adds_nothing_and_int64_argmax_is_accepted():
    rois = np.array([[0, 10, 10, 12, 12]], np.float32)  # wholly outside: all -1
    data = np.ones((1, 2, 4, 4), np.float32)
    _, am = roipool.roi_pooling(data, rois, 2, 1.0, return_argmax=True)
    assert (am == -1).all()
    g = roipool.roi_pooling_backward(np.ones(am.shape, np.float32), rois, am.astype(np.int64),
                                     data.shape)
    assert (g == 0).all() and g.shape == data.shape


def test_empty_backward():
    g = roipool.roi_pooling_backward(np.zeros((0, 3, 2, 2), np.float32), np.zeros((0, 5)),
                                     np.zeros((0, 3, 2, 2), np.int32), (2, 3, 4, 5))
    assert g.shape == (2, 3, 4, 5) and (g == 0).all() and g.dtype == np.float32
