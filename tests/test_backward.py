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


def special_half_case(dtype, kind, seed):
    """grad_out with the values the float16/bfloat16 kernels treat specially,
    argmax piled on few elements (long runs of rounded adds per element)."""
    rng = np.random.default_rng(seed)
    N, C, H, W, R, PH, PW = 2, 19, 3, 4, 23, 3, 2
    if kind == "bits":  # every pattern: NaN payloads (signaling too), infs, subnormals
        grad = rng.integers(0, 1 << 16, (R, C, PH, PW), dtype=np.uint16).view(dtype)
    elif kind == "subnormal":
        tiny = 2.0 ** -24 if np.dtype(dtype) == np.float16 else 2.0 ** -133
        grad = (rng.integers(-40, 40, (R, C, PH, PW)) * tiny).astype(np.float32).astype(dtype)
    else:  # "overflow": sums beyond the largest finite value, inf - inf = NaN
        big = 30000.0 if np.dtype(dtype) == np.float16 else 3e38
        with np.errstate(over="ignore"):
            grad = (rng.standard_normal((R, C, PH, PW)) * big).astype(np.float32).astype(dtype)
    argmax = rng.integers(-1, 3, (R, C, PH, PW)).astype(np.int32)
    rois = np.zeros((R, 5), np.float32)
    rois[:, 0] = rng.integers(0, N, R)
    return grad, rois, argmax, (N, C, H, W)


HALVES = [np.float16] + ([bfloat16] if bfloat16 is not None else [])


def nan_first_backward(grad_out, rois, argmax, shape):
    """The scatter with MXNet's half_t add spelled out: float32 sum rounded to
    T, a NaN sum taking the NaN already in grad when there is one (NumPy's
    own add may return either NaN operand; roipool._reference uses it)."""
    N, C, H, W = shape
    R, _, PH, PW = grad_out.shape
    grad = np.zeros((N, C, H * W), grad_out.dtype)
    for r in range(R):
        b = int(rois[r, 0])
        for ph in range(PH):
            for pw in range(PW):
                a = argmax[r, :, ph, pw]
                c, a = np.flatnonzero(a >= 0), a[a >= 0]
                old = grad[b, c, a].astype(np.float32)
                new = grad_out[r, c, ph, pw].astype(np.float32)
                grad[b, c, a] = np.where(np.isnan(old), old + old, old + new).astype(grad.dtype)
    return grad.reshape(shape)


@pytest.mark.parametrize("kind", ["bits", "subnormal", "overflow"])
@pytest.mark.parametrize("dtype", HALVES, ids=lambda d: np.dtype(d).name)
def test_half_backward_specials_equal_reference_on_every_path(dtype, kind):
    # float16/bfloat16 widen, add, round and narrow in per-ISA kernels
    # (simd/backward.inc.h): every path, thread count and out= layout gives
    # the reference's bits, NaN payloads and signs included.
    before = roipool.get_isa()
    try:
        for seed in range(3):
            grad, rois, argmax, shape = special_half_case(dtype, kind, seed)
            with np.errstate(all="ignore"):  # inf - inf, overflow
                want = bits(nan_first_backward(grad, rois, argmax, shape))
            if kind == "overflow":
                assert np.isinf(want.view(dtype)).any()
            for isa in roipool.supported_isas():
                assert roipool.set_isa(isa) == isa
                for threads in (1, 2):
                    got = roipool.roi_pooling_backward(grad, rois, argmax, shape,
                                                       num_threads=threads)
                    np.testing.assert_array_equal(bits(got), want, err_msg=f"{isa} {threads}")
                    out = np.empty((shape[0], shape[2], shape[3], shape[1]), grad.dtype)
                    out = out.transpose(0, 3, 1, 2)  # channels-last out=
                    roipool.roi_pooling_backward(grad, rois, argmax, shape, out=out,
                                                 num_threads=threads)
                    np.testing.assert_array_equal(bits(out), want, err_msg=f"{isa} {threads}")
    finally:
        roipool.set_isa(before)
