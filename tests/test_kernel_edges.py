"""Empty dimensions reach the compiled kernels as they are (issue 12, item 7).

C == 0, R == 0, H == 0 and W == 0 go through forward (with and without
argmax, default and out= buffers) and backward. The kernels must handle
them themselves: before the guard, C == 0 made the forward kernel divide by
a zero channel-block size (a SIGFPE on x86, and a division by zero that
UBSan reports under tools/asan.sh). Expected values are literals of the
rule: an empty bin is 0 with argmax -1, an empty output has the right shape,
and the ROI checks still run when there is nothing to write.
"""
import numpy as np
import pytest

import roipool

DTYPES = (np.float32, np.float64)
THREADS = (1, 2)
ROIS = np.array([[0, 0, 0, 3, 3], [1, 1, 1, 2, 5]], np.float32)


def _data(shape, dtype):
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("channels_last", (False, True))
def test_zero_channels_forward(dtype, threads, channels_last):
    data = np.zeros((2, 0, 4, 6), dtype)
    if channels_last:
        data = np.zeros((2, 4, 6, 0), dtype).transpose(0, 3, 1, 2)
    out, am = roipool.roi_pooling(data, ROIS, (3, 2), 1.0, return_argmax=True,
                                  num_threads=threads)
    assert out.shape == (2, 0, 3, 2) and out.dtype == dtype
    assert am.shape == (2, 0, 3, 2) and am.dtype == np.int32
    buf = np.empty((2, 0, 3, 2), dtype)
    buf_am = np.empty((2, 0, 3, 2), np.int32)
    got = roipool.roi_pooling(data, ROIS, (3, 2), 1.0, out=buf, argmax=buf_am,
                              num_threads=threads)
    assert got is buf


@pytest.mark.parametrize("threads", THREADS)
def test_zero_channels_still_checks_rois(threads):
    data = np.zeros((2, 0, 4, 6), np.float32)
    with pytest.raises(ValueError, match=r"rois row 1: batch index 2.0 is outside \[0, 2\)"):
        roipool.roi_pooling(data, [[0, 0, 0, 1, 1], [2, 0, 0, 1, 1]], 2, 1.0,
                            num_threads=threads)
    with pytest.raises(ValueError, match="rois row 0: coordinate nan is not finite"):
        roipool.roi_pooling(data, [[0, 0, np.nan, 1, 1]], 2, 1.0, num_threads=threads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", THREADS)
def test_zero_rois_forward(dtype, threads):
    data = _data((2, 3, 4, 6), dtype)
    out, am = roipool.roi_pooling(data, np.zeros((0, 5), dtype), (3, 2), 1.0,
                                  return_argmax=True, num_threads=threads)
    assert out.shape == (0, 3, 3, 2) and am.shape == (0, 3, 3, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape", [(2, 3, 0, 6), (2, 3, 4, 0), (2, 3, 0, 0)])
def test_empty_plane_forward(dtype, threads, shape):
    # every bin is clipped to nothing: 0, argmax -1
    data = np.zeros(shape, dtype)
    out, am = roipool.roi_pooling(data, ROIS, (3, 2), 1.0, return_argmax=True,
                                  num_threads=threads)
    assert out.shape == (2, 3, 3, 2) and out.dtype == dtype
    assert out.tolist() == np.zeros((2, 3, 3, 2)).tolist()
    assert am.tolist() == np.full((2, 3, 3, 2), -1).tolist()
    assert roipool.roi_pooling(data, ROIS, (3, 2), 1.0,
                               num_threads=threads).tolist() == out.tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("data_shape", [(2, 0, 4, 6), (2, 3, 0, 6), (2, 3, 4, 0)])
def test_empty_backward(dtype, threads, data_shape):
    C = data_shape[1]
    grad_out = np.ones((2, C, 3, 2), dtype)
    argmax = np.full((2, C, 3, 2), -1, np.int32)
    grad = roipool.roi_pooling_backward(grad_out, ROIS, argmax, data_shape,
                                        num_threads=threads)
    assert grad.shape == data_shape and grad.dtype == dtype
    out = np.full(data_shape, 7, dtype)
    assert roipool.roi_pooling_backward(grad_out, ROIS, argmax, data_shape, out=out,
                                        num_threads=threads) is out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", THREADS)
def test_zero_rois_backward_zeroes_grad(dtype, threads):
    g = np.zeros((0, 3, 2, 2), dtype)
    am = np.zeros((0, 3, 2, 2), np.int32)
    out = np.full((2, 3, 4, 6), 7, dtype)
    grad = roipool.roi_pooling_backward(g, np.zeros((0, 5)), am, (2, 3, 4, 6), out=out,
                                        num_threads=threads)
    assert grad is out
    assert grad.tolist() == np.zeros((2, 3, 4, 6)).tolist()


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_channel_and_nonempty_after_empty(dtype):
    # the smallest non-empty case next to the empty ones: the kernel's state
    # (tuning, dispatch) is unchanged by the empty calls above
    data = _data((1, 1, 4, 6), dtype)
    out, am = roipool.roi_pooling(data, [[0, 0, 0, 5, 3]], (2, 2), 1.0, return_argmax=True)
    assert out[0, 0].tolist() == [[8, 11], [20, 23]]
    assert am[0, 0].tolist() == [[8, 11], [20, 23]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", THREADS)
def test_kernel_guards_zero_channels_itself(dtype, threads):
    # The compiled entry point, without the Python layer: data with C == 0
    # and a non-empty buffer must still mean "nothing to write" (the ROI
    # scan runs, the buffer is untouched), not a division by a zero block size.
    from roipool import _roi_pool

    data = np.zeros((2, 0, 4, 6), dtype)
    rois = np.ascontiguousarray(ROIS, dtype)
    buf = np.full(6, 7, dtype)
    rule = _roi_pool.Rule(1.0, 1.0, False, _roi_pool.Rounding.RMODE_NONE, 3, 2)
    status = _roi_pool.forward(_roi_pool.Call(data, rois, rule, buf, None, threads))
    assert status == _roi_pool.Status.OK
    assert buf.tolist() == [7] * 6
    bad = np.array([[5, 0, 0, 1, 1]], dtype)
    status = _roi_pool.forward(_roi_pool.Call(data, bad, rule, buf, None, threads))
    assert status == 0 * _roi_pool.ROW_CODES + _roi_pool.RowError.BAD_BATCH_RANGE
