"""Layouts, input kinds, out=/argmax= buffers, reduced precision and compat modes."""
import tracemalloc

import numpy as np
import pytest

import roipool
from roipool._reference import FLT_MAX, forward as ref_forward
from helpers import bfloat16

needs_bf16 = pytest.mark.skipif(bfloat16 is None, reason="ml_dtypes not installed")


def case(dtype=np.float32, N=2, C=24, H=10, W=12, R=30, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    x1, y1 = rng.uniform(-10, 90, R), rng.uniform(-10, 70, R)
    rois = np.column_stack([rng.integers(0, N, R), x1, y1, x1 + rng.uniform(0, 60, R),
                            y1 + rng.uniform(0, 50, R)]).astype(np.float32)
    return data, rois


def channels_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# -- out= / argmax= --------------------------------------------------------------

def test_buffers_are_filled_in_place_and_returned():
    data, rois = case()
    want_out, want_am = ref_forward(data, rois, (3, 2), 0.125)
    out = np.full(want_out.shape, np.nan, np.float32)
    am = np.full(want_am.shape, -7, np.int32)
    res_out, res_am = roipool.roi_pooling(data, rois, (3, 2), 0.125, out=out, argmax=am,
                                          return_argmax=True)
    assert res_out is out and res_am is am
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(am, want_am)
    # argmax= alone fills argmax even when it is not returned
    am2 = np.zeros_like(am)
    res = roipool.roi_pooling(data, rois, (3, 2), 0.125, argmax=am2)
    np.testing.assert_array_equal(am2, want_am)
    np.testing.assert_array_equal(res, want_out)


def test_buffers_reused_in_a_loop():
    out = np.empty((30, 24, 2, 2), np.float32)
    for seed in range(3):
        data, rois = case(seed=seed)
        roipool.roi_pooling(data, rois, 2, 0.125, out=out)
        np.testing.assert_array_equal(out, ref_forward(data, rois, 2, 0.125)[0])


def test_channels_last_buffers_accepted():
    data, rois = case()
    want_out, want_am = ref_forward(data, rois, 2, 0.125)
    out = channels_last(np.zeros(want_out.shape, np.float32))
    am = channels_last(np.zeros(want_am.shape, np.int32))
    roipool.roi_pooling(data, rois, 2, 0.125, out=out, argmax=am)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(am, want_am)


def bad_buffers(data, rois, shape):
    ro = np.zeros(shape, np.float32)
    ro.flags.writeable = False
    big = np.zeros(shape[:3] + (2 * shape[3],), np.float32)
    return {
        "shape": np.zeros(shape[:3] + (shape[3] + 1,), np.float32),
        "dtype": np.zeros(shape, np.float64),
        "strided": big[..., ::2],
        "readonly": ro,
        "list": np.zeros(shape).tolist(),
    }


@pytest.mark.parametrize("kind", ["shape", "dtype", "strided", "readonly", "list"])
def test_wrong_out_rejected(kind):
    data, rois = case()
    shape = (30, 24, 2, 2)
    buf = bad_buffers(data, rois, shape)[kind]
    before = np.copy(buf)
    with pytest.raises(ValueError, match=r"\bout\b"):
        roipool.roi_pooling(data, rois, 2, 0.125, out=buf)
    np.testing.assert_array_equal(np.asarray(buf), before)


@pytest.mark.parametrize("kind", ["shape", "dtype", "strided", "readonly"])
def test_wrong_argmax_rejected(kind):
    data, rois = case()
    shape = (30, 24, 2, 2)
    buf = bad_buffers(data, rois, shape)[kind]
    if kind == "dtype":
        buf = np.zeros(shape, np.int64)
    elif buf.dtype != np.int32:
        buf = buf.astype(np.int32) if kind != "strided" else \
            np.zeros(shape[:3] + (4,), np.int32)[..., ::2]
        if kind == "readonly":
            buf.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bargmax\b"):
        roipool.roi_pooling(data, rois, 2, 0.125, argmax=buf)


def test_overlapping_buffers_rejected():
    # out that is a view of data, of rois, and argmax sharing out's memory
    data = np.zeros((1, 2, 4, 4), np.float32)
    rois = np.zeros((2, 5), np.float32)
    alias = data.reshape(-1)[:2 * 2 * 2 * 2].reshape(2, 2, 2, 2)
    with pytest.raises(ValueError, match=r"\bout\b.*data"):
        roipool.roi_pooling(data, rois, 2, 1.0, out=alias)
    store = np.zeros(20, np.float32)
    rois2 = store[:10].reshape(2, 5)
    out2 = store[4:20].reshape(2, 2, 2, 2)
    with pytest.raises(ValueError, match=r"\bout\b.*rois"):
        roipool.roi_pooling(data, rois2, 2, 1.0, out=out2)
    out = np.zeros((2, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"\bargmax\b"):
        roipool.roi_pooling(data, rois, 2, 1.0, out=out, argmax=out.view(np.int32))
    assert (data == 0).all() and (rois == 0).all()


# -- layouts and input kinds ------------------------------------------------------

@pytest.mark.parametrize("layout", ["nchw", "channels_last", "sliced", "reversed", "fortran"])
def test_any_strides_give_the_same_result(layout):
    data, rois = case()
    want = ref_forward(data, rois, 3, 0.125)
    d = {
        "nchw": data,
        "channels_last": channels_last(data),
        "sliced": np.repeat(data, 2, axis=1)[:, ::2],
        "reversed": np.ascontiguousarray(data[..., ::-1])[..., ::-1],
        "fortran": np.asfortranarray(data),
    }[layout]
    before = d.copy()
    out, am = roipool.roi_pooling(d, rois, 3, 0.125, return_argmax=True)
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(am, want[1])
    np.testing.assert_array_equal(d, before)
    # the output follows the input's memory format
    if layout == "channels_last":
        assert out.transpose(0, 2, 3, 1).flags.c_contiguous
    else:
        assert out.flags.c_contiguous


@pytest.mark.parametrize("rows", [3, 1024])  # outputs below / above the recycled size
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_new_outputs_follow_the_input_memory_format(rows, dtype):
    # small outputs come from the extension's allocation, large ones from
    # roipool's recycled blocks: the same layouts and values either way
    data, rois = case(dtype, N=1, C=256, H=6, W=7, R=1)
    rois = np.repeat(rois.astype(dtype), rows, axis=0)
    want_out, want_am = ref_forward(data, rois[:1], 2, 0.125)
    for d in (data, channels_last(data)):
        out, am = roipool.roi_pooling(d, rois, 2, 0.125, return_argmax=True)
        assert out.dtype == dtype and am.dtype == np.int32
        assert out.shape == am.shape == (rows, 256, 2, 2)
        for a in (out, am):
            assert a.flags.writeable and a.flags.aligned
            if d is data:
                assert a.flags.c_contiguous
            else:
                assert a.transpose(0, 2, 3, 1).flags.c_contiguous
        np.testing.assert_array_equal(out, np.broadcast_to(want_out, out.shape))
        np.testing.assert_array_equal(am, np.broadcast_to(want_am, am.shape))


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_fast_layouts_do_not_copy_data(layout):
    # 16 MiB of data, a tiny output: a copy of data would show in the traced peak
    data = np.zeros((1, 256, 128, 128), np.float32)
    if layout == "channels_last":
        data = channels_last(data)
    rois = np.array([[0, 0, 0, 10, 10]], np.float32)
    out = np.empty((1, 256, 2, 2), np.float32)
    peak = peak_bytes(lambda: roipool.roi_pooling(data, rois, 2, 1.0, out=out))
    assert peak < data.nbytes // 8
    # non-native byte order is converted once: the same probe sees that copy
    swapped = data.astype(">f4")
    peak = peak_bytes(lambda: roipool.roi_pooling(swapped, rois, 2, 1.0, out=out))
    assert peak >= data.nbytes


class ArrayLike:
    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


def test_array_likes_lists_buffers_and_dlpack():
    data, rois = case(C=3, R=4)
    want = roipool.roi_pooling(data, rois, 2, 0.125)
    for d in (ArrayLike(data), data.tolist()):
        np.testing.assert_array_equal(roipool.roi_pooling(d, rois.tolist(), 2, 0.125), want)
    np.testing.assert_array_equal(roipool.roi_pooling(memoryview(data), memoryview(rois), 2, 0.125),
                                  want)

    class DL:  # only the DLPack protocol
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    res = roipool.roi_pooling(DL(data), rois, 2, 0.125)
    assert isinstance(res, np.ndarray)
    np.testing.assert_array_equal(res, want)


def test_big_endian_data_and_rois():
    data, rois = case(C=5, R=6)
    want = ref_forward(data, rois, 2, 0.7)
    out, am = roipool.roi_pooling(data.astype(">f4"), rois.astype(">f8"), 2, 0.7,
                                  return_argmax=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(am, want[1])


@pytest.mark.parametrize("rdtype", [np.int16, np.int64, np.uint8, np.float16, np.float64])
def test_rois_of_any_real_dtype(rdtype):
    data, _ = case(C=4, H=20, W=20)
    rois = np.array([[1, 3, 2, 17, 15], [0, 0, 0, 5, 9]], rdtype)
    want = ref_forward(data, rois.astype(np.float32), (3, 3), 1.0)
    out, am = roipool.roi_pooling(data, rois, (3, 3), 1.0, return_argmax=True)
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(am, want[1])


# -- reduced precision (docs/semantics.md, "Reduced precision") -------------------------

REDUCED = [np.float16] + ([bfloat16] if bfloat16 is not None else [])


@pytest.mark.parametrize("dtype", REDUCED, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fill", [np.nan, -np.inf])
def test_reduced_all_nan_or_minus_inf_bin_gives_minus_inf(dtype, fill):
    # -FLT_MAX rounds to -inf in float16 and bfloat16
    x = np.ones((1, 1, 2, 2), dtype)
    x[0, 0, 0, :] = fill
    out, am = roipool.roi_pooling(x, [[0, 0, 0, 1, 0]], 1, 1.0, return_argmax=True)
    assert out.dtype == np.dtype(dtype)
    assert np.isneginf(np.float32(out[0, 0, 0, 0])) and am[0, 0, 0, 0] == -1
    # float32 gives -FLT_MAX for the same bin
    out32 = roipool.roi_pooling(x.astype(np.float32), [[0, 0, 0, 1, 0]], 1, 1.0)
    assert out32[0, 0, 0, 0] == -FLT_MAX


@pytest.mark.parametrize("dtype, x, scale, col16, col32", [
    # float16: scale 0.7 -> 0.7001953125; 192 * that = 134.4375, rounded to float16
    # (spacing 0.125) -> 134.5 -> C round 135. float32: 192 * 0.69999999 = 134.4 -> 134.
    (np.float16, 192, 0.7, 135, 134),
    # bfloat16: 0.7 -> 0.69921875; 92 * that = 64.328125 -> bfloat16 (spacing 0.5) 64.5 -> 65
    ("bfloat16", 92, 0.7, 65, 64),
])
def test_reduced_rounds_each_product(dtype, x, scale, col16, col32):
    if dtype == "bfloat16":
        if bfloat16 is None:
            pytest.skip("ml_dtypes not installed")
        dtype = bfloat16
    data = np.arange(200, dtype=np.float32).reshape(1, 1, 1, 200)
    rois = np.array([[0, x, 0, x, 0]], np.float32)
    _, am = roipool.roi_pooling(data.astype(dtype), rois, 1, scale, return_argmax=True)
    assert am[0, 0, 0, 0] == col16
    _, am = roipool.roi_pooling(data, rois, 1, scale, return_argmax=True)
    assert am[0, 0, 0, 0] == col32


@needs_bf16
def test_bfloat16_matches_reference_and_keeps_dtype():
    data, rois = case(C=9)
    d = data.astype(bfloat16)
    out, am = roipool.roi_pooling(d, rois, (2, 3), 0.3, return_argmax=True)
    want = ref_forward(d, rois, (2, 3), 0.3)
    assert out.dtype == bfloat16
    np.testing.assert_array_equal(out.view(np.uint16), want[0].view(np.uint16))
    np.testing.assert_array_equal(am, want[1])


def test_float16_roi_size_that_overflows_is_rejected():
    data = np.zeros((1, 1, 4, 4), np.float16)
    # 60000 * 2 overflows float16 (max 65504): the scaled corner is not a number
    with pytest.raises(ValueError, match=r"rois row 0"):
        roipool.roi_pooling(data, [[0, 0, 0, 60000, 1]], 1, 2.0)


# -- compat ---------------------------------------------------------------------

@pytest.mark.parametrize("compat", ["mxnet", "torchvision"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_compat_modes_equal_their_reference(compat, dtype):
    data, rois = case(dtype=dtype, C=5)
    rois[:, 1:] *= 5.6  # scale 0.7 below maps them back onto the map
    want = ref_forward(data, rois, 3, 0.7, compat)
    out, am = roipool.roi_pooling(data, rois, 3, 0.7, return_argmax=True, compat=compat)
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(am, want[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compat_modes_differ_only_in_float64_off_powers_of_two(dtype):
    # the rules differ only in how the scale reaches T: through float32
    # (MXNet) or directly (torchvision); for float32 data that is the same
    data, rois = case(C=3, R=200, H=40, W=40, dtype=dtype)
    rng = np.random.default_rng(1)
    rois[:, 1:] = rng.integers(0, 57, (200, 4))  # integers: x * 0.7 near .5 is common
    a = roipool.roi_pooling(data, rois, 2, 0.7, return_argmax=True)[1]
    b = roipool.roi_pooling(data, rois, 2, 0.7, return_argmax=True, compat="torchvision")[1]
    assert (a != b).any() == (dtype == np.float64)
    a = roipool.roi_pooling(data, rois, 2, 0.125, return_argmax=True)[1]
    b = roipool.roi_pooling(data, rois, 2, 0.125, return_argmax=True, compat="torchvision")[1]
    np.testing.assert_array_equal(a, b)
