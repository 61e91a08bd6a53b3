"""Every row of docs/semantics.md, "Bad input": the exception, the
argument named in its message (and for rois the first offending row), inputs
unchanged, and a preallocated out= left untouched."""
import re

import numpy as np
import pytest

import roipool

N, C, H, W = 2, 3, 8, 6


def good():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((N, C, H, W)).astype(np.float32)
    rois = np.array([[0, 0, 0, 4, 4], [1, 1, 1, 5, 7], [0, 2, 2, 3, 3], [1, 0, 0, 9, 9]],
                    np.float32)
    return data, rois


def call_checked(exc, pattern, data, rois, pooled=(2, 2), scale=1.0, **kw):
    """Call roi_pooling expecting exc; check message, inputs and out= untouched."""
    data_c, rois_c = np.copy(data), np.copy(rois)
    with pytest.raises(exc, match=pattern):
        roipool.roi_pooling(data, rois, pooled, scale, **kw)
    if isinstance(data, np.ndarray) and data.dtype.kind in "fc":
        np.testing.assert_array_equal(data, data_c)
    if isinstance(rois, np.ndarray) and rois.dtype.kind in "fc":
        np.testing.assert_array_equal(rois, rois_c)


# -- data ---------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(C, H, W), (N, C, H, W, 1), (), (H,)])
def test_data_not_4d(shape):
    _, rois = good()
    call_checked(ValueError, r"\bdata\b.*4-D", np.zeros(shape, np.float32), rois)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, bool, np.complex64, object, "U3"])
def test_data_not_real_float(dtype):
    _, rois = good()
    data = np.zeros((N, C, H, W), dtype=dtype)
    with pytest.raises(TypeError, match=r"\bdata\b"):
        roipool.roi_pooling(data, rois, 2, 1.0)


def test_data_not_an_array():
    _, rois = good()
    with pytest.raises((TypeError, ValueError), match=r"\bdata\b"):
        roipool.roi_pooling("not an array", rois, 2, 1.0)
    with pytest.raises((TypeError, ValueError), match=r"\bdata\b"):
        roipool.roi_pooling(None, rois, 2, 1.0)


# -- rois: shape and dtype -------------------------------------------------------

@pytest.mark.parametrize("shape", [(4,), (4, 4), (4, 6), (1, 4, 5), (5,)])
def test_rois_not_r_by_5(shape):
    data, _ = good()
    call_checked(ValueError, r"\brois\b", data, np.zeros(shape, np.float32))


@pytest.mark.parametrize("dtype", [bool, np.complex128, object, "U5"])
def test_rois_of_mismatched_kind(dtype):
    data, _ = good()
    rois = np.zeros((2, 5), dtype=dtype)
    with pytest.raises(TypeError, match=r"\brois\b"):
        roipool.roi_pooling(data, rois, 2, 1.0)


# -- rois: rows ------------------------------------------------------------------

@pytest.mark.parametrize("bad, why", [
    (np.nan, "batch"), (np.inf, "batch"), (-np.inf, "batch"),
    (-1, "batch"), (N, "batch"), (N + 0.5, "batch"), (-1.5, "batch"),
])
def test_bad_batch_index_names_row(bad, why):
    data, rois = good()
    rois[2, 0] = bad
    rois[3, 0] = bad  # the first offending row is named
    call_checked(ValueError, rf"\brois row 2\b.*{why}", data, rois)


def test_batch_index_truncates_towards_zero():
    data, rois = good()
    rois[0, 0] = -0.9  # trunc() is 0: legal
    rois[1, 0] = N - 0.001  # trunc() is N-1: legal
    out = roipool.roi_pooling(data, rois, 2, 1.0)
    assert out.shape == (4, C, 2, 2)


@pytest.mark.parametrize("col", [1, 2, 3, 4])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_coordinate_names_row(col, bad):
    data, rois = good()
    rois[1, col] = bad
    call_checked(ValueError, r"\brois row 1\b", data, rois)


@pytest.mark.parametrize("value, scale, ok", [
    (2.0 ** 31, 1.0, False), (-(2.0 ** 31), 1.0, False), (2.0 ** 31 - 1, 1.0, True),
    (2.0 ** 30, 2.0, False), (2.0 ** 32, 0.5, False), (2.0 ** 32, 0.25, True),
    (1e30, 1e-30, True),
])
def test_coordinate_must_fit_a_c_int_after_scaling(value, scale, ok):
    data = np.ones((1, 1, 4, 4), np.float64)
    rois = np.array([[0, 0, 0, 1, 1], [0, value, 0, 1, 1]], np.float64)
    if ok:
        out = roipool.roi_pooling(data, rois, 1, scale)
        assert out.shape == (2, 1, 1, 1)
    else:
        call_checked(ValueError, r"\brois row 1\b", data, rois, 1, scale)


def test_first_offending_row_across_kinds():
    data, rois = good()
    rois[3, 0] = 99        # bad batch, later row
    rois[1, 4] = np.nan    # bad coordinate, earlier row
    call_checked(ValueError, r"\brois row 1\b", data, rois)


# -- pooled_size -----------------------------------------------------------------

@pytest.mark.parametrize("pooled", [0, -1, (0,), (2, 2, 2), (0, 2), (2, -3), True, (True, 2),
                                    2.0, (2.0, 2), "2", None, (), [2, None], 2 ** 40])
def test_bad_pooled_size(pooled):
    data, rois = good()
    call_checked(ValueError, r"\bpooled_size\b", data, rois, pooled)


@pytest.mark.parametrize("pooled, want", [(3, (3, 3)), ((2, 5), (2, 5)), ([4, 1], (4, 1)),
                                          (np.int64(2), (2, 2)), (np.array([2, 3]), (2, 3)),
                                          ((4,), (4, 4))])  # one integer, as a 1-tuple
def test_good_pooled_size(pooled, want):
    data, rois = good()
    assert roipool.roi_pooling(data, rois, pooled, 1.0).shape[2:] == want


# -- spatial_scale ---------------------------------------------------------------

@pytest.mark.parametrize("scale", [0, 0.0, -1.0, -0.5, np.nan, np.inf, -np.inf, True, None,
                                   "1", 1e39, [1.0]])
def test_bad_spatial_scale(scale):
    data, rois = good()
    call_checked(ValueError, r"\bspatial_scale\b", data, rois, 2, scale)


@pytest.mark.parametrize("scale", [1e-30, 4.0, 2, np.float32(0.5), np.float64(0.25)])
def test_good_spatial_scale(scale):
    data, rois = good()
    assert roipool.roi_pooling(data, rois, 2, scale).shape == (4, C, 2, 2)


# -- other arguments ---------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -1, True, 1.5, "2"])
def test_bad_num_threads(n):
    data, rois = good()
    call_checked(ValueError, r"\bnum_threads\b", data, rois, num_threads=n)


@pytest.mark.parametrize("compat", ["caffe", "", None, "MXNET "])
def test_bad_compat(compat):
    data, rois = good()
    call_checked(ValueError, r"\bcompat\b", data, rois, compat=compat)


# -- bad rows leave out= untouched -----------------------------------------------------

def test_error_writes_nothing_into_out_buffers():
    data, rois = good()
    rois[3, 2] = np.inf
    out = np.full((4, C, 2, 2), 123.0, np.float32)
    am = np.full((4, C, 2, 2), 77, np.int32)
    call_checked(ValueError, r"rois row 3", data, rois, out=out, argmax=am)
    assert (out == 123).all() and (am == 77).all()


# -- backward ------------------------------------------------------------------------

def backward_inputs():
    data, rois = good()
    out, am = roipool.roi_pooling(data, rois, 2, 1.0, return_argmax=True)
    return np.ones_like(out), rois, am, data.shape


def backward_checked(exc, pattern, grad, rois, am, shape, **kw):
    copies = [np.copy(a) for a in (grad, rois, am)]
    with pytest.raises(exc, match=pattern):
        roipool.roi_pooling_backward(grad, rois, am, shape, **kw)
    for a, c in zip((grad, rois, am), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("mutate, exc, pattern", [
    (lambda g, r, a, s: (g[0], r, a, s), ValueError, r"\bgrad_out\b"),
    (lambda g, r, a, s: (g.astype(np.int32), r, a, s), TypeError, r"\bgrad_out\b"),
    (lambda g, r, a, s: (g, r, a.astype(np.float32), s), TypeError, r"\bargmax\b"),
    (lambda g, r, a, s: (g, r, a[:, :, :1], s), ValueError, r"\bargmax\b"),
    (lambda g, r, a, s: (g, r, np.where(a == a.max(), H * W, a), s), ValueError, r"\bargmax\b"),
    (lambda g, r, a, s: (g, r, np.where(a == a.max(), -2, a), s), ValueError, r"\bargmax\b"),
    (lambda g, r, a, s: (g, r, a, (N, C + 1, H, W)), ValueError, r"\bdata_shape\b"),
    (lambda g, r, a, s: (g, r, a, (N, C, H)), ValueError, r"\bdata_shape\b"),
    (lambda g, r, a, s: (g, r, a, (N, C, -1, W)), ValueError, r"\bdata_shape\b"),
    (lambda g, r, a, s: (g, r, a, (N, C, H, W - 1)), ValueError, r"\bargmax\b"),
    (lambda g, r, a, s: (g, r[:2], a, s), ValueError, r"\brois\b"),
    (lambda g, r, a, s: (g, np.where(np.arange(5) == 0, 5, r), a, s), ValueError,
     r"\brois row 0\b"),
    (lambda g, r, a, s: (g, r, a, (1, C, H, W)), ValueError, r"\brois row 1\b"),
])
def test_backward_bad_inputs(mutate, exc, pattern):
    args = mutate(*backward_inputs())
    backward_checked(exc, pattern, *args)


def test_backward_bad_num_threads_and_out():
    g, r, a, s = backward_inputs()
    backward_checked(ValueError, r"\bnum_threads\b", g, r, a, s, num_threads=0)
    backward_checked(ValueError, r"\bout\b", g, r, a, s, out=np.zeros((N, C, H, W), np.float64))
    backward_checked(ValueError, r"\bout\b", g, r, a, s, out=np.zeros((N, C, H, W + 1), np.float32))


def test_messages_are_readable():
    data, rois = good()
    rois[2, 0] = 7
    with pytest.raises(ValueError) as e:
        roipool.roi_pooling(data, rois, 2, 1.0)
    msg = str(e.value)
    # names the row, what is wrong, and the allowed range
    assert re.search(r"rois row 2", msg) and "batch" in msg and str(N) in msg


@pytest.mark.parametrize("bad", [H * W, 2**31 - 1, -2, -2**31])
@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_backward_bad_argmax_found_in_kernel_leaves_out_untouched(bad, where, num_threads):
    """An int32 C-contiguous argmax goes to the kernel unchecked and is checked
    there as it is read: a bad value in the first or the last element, on any
    thread count, still raises the argmax error before out= is written."""
    g, r, a, s = backward_inputs()
    a = a.copy()
    a.flat[0 if where == "first" else -1] = bad
    assert a.dtype == np.int32 and a.flags.c_contiguous
    out = np.full(s, 7.0, np.float32)
    backward_checked(ValueError, r"argmax values must lie in \[-1, H\*W\)", g, r, a, s,
                     out=out, num_threads=num_threads)
    assert (out == 7.0).all()
