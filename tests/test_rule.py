"""The seed example and every consequence docs/semantics.md lists, with hand-computed answers.

Expected values here are worked out by hand from the rule (the comments show the
arithmetic), not produced by roipool; each case is also checked against the
plain-loop reference, roipool._reference.
"""
import numpy as np
import pytest

import roipool
from roipool._reference import FLT_MAX, forward as ref_forward

SEED = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
SEED_ROI = np.array([[0, 0, 0, 4, 4]], np.float32)


def pool(data, rois, pooled, scale, **kw):
    out, am = roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True, **kw)
    ref = ref_forward(data, rois, pooled, scale, kw.get("compat", "mxnet"))
    np.testing.assert_array_equal(out, ref[0])
    np.testing.assert_array_equal(am, ref[1])
    return out, am


@pytest.mark.parametrize("scale, want", [
    # scale 1: ROI 5x5 at the origin, bins rows [0,3),[2,5), cols [0,3),[2,5):
    # maxima at (2,2)=14, (2,4)=16, (4,2)=26, (4,4)=28
    (1.0, [[14, 16], [26, 28]]),
    # scale 0.7: 4*0.7 = 2.8 rounds to 3, ROI 4x4, bins [0,2),[2,4): maxima 7, 9, 19, 21
    (0.7, [[7, 9], [19, 21]]),
])
def test_seed_example(scale, want):
    out, am = pool(SEED, SEED_ROI, (2, 2), scale)
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32 and am.dtype == np.int32
    np.testing.assert_array_equal(out[0, 0], want)
    np.testing.assert_array_equal(am[0, 0], want)  # arange: value == h*W + w


def test_seed_example_float64_and_int_pooled_size():
    out = roipool.roi_pooling(SEED.astype(np.float64), SEED_ROI.astype(np.int64), 2, 1.0)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[0, 0], [[14, 16], [26, 28]])


def test_ties_go_to_first_in_row_major_order():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 2] = x[0, 0, 2, 1] = x[0, 0, 3, 3] = 5.0  # three equal maxima
    out, am = pool(x, [[0, 0, 0, 3, 3]], 1, 1.0)
    assert out[0, 0, 0, 0] == 5 and am[0, 0, 0, 0] == 1 * 4 + 2
    # all equal: the very first element
    out, am = pool(np.ones((1, 1, 3, 3), np.float32), [[0, 1, 1, 2, 2]], 1, 1.0)
    assert am[0, 0, 0, 0] == 1 * 3 + 1


def test_nan_is_never_selected():
    x = np.full((1, 1, 2, 3), np.nan, np.float32)
    x[0, 0, 1, 1] = -7.0
    out, am = pool(x, [[0, 0, 0, 2, 1]], 1, 1.0)
    assert out[0, 0, 0, 0] == -7 and am[0, 0, 0, 0] == 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fill", [np.nan, -np.inf, -FLT_MAX, "mixed"])
def test_bin_of_nan_or_lowest_gives_minus_flt_max(dtype, fill):
    x = np.full((1, 2, 3, 3), 1.0, dtype)
    if fill == "mixed":
        x[0, 0, :2, :2] = [[np.nan, -np.inf], [-FLT_MAX, np.nan]]
    else:
        x[0, 0, :2, :2] = fill
    out, am = pool(x, [[0, 0, 0, 1, 1]], 1, 1.0)
    # -FLT_MAX is the float32 limit, also for float64 data
    assert out[0, 0, 0, 0] == dtype(-FLT_MAX) and out[0, 0, 0, 0] == np.float32(-FLT_MAX)
    assert am[0, 0, 0, 0] == -1
    assert out[0, 1, 0, 0] == 1 and am[0, 1, 0, 0] == 0  # the other channel is normal


def test_float64_value_below_minus_flt_max_loses():
    x = np.full((1, 1, 1, 2), -1e300, np.float64)
    x[0, 0, 0, 1] = -3.5e38  # below -FLT_MAX too
    out, am = pool(x, [[0, 0, 0, 1, 0]], 1, 1.0)
    assert out[0, 0, 0, 0] == np.float64(np.float32(-FLT_MAX)) and am[0, 0, 0, 0] == -1


def test_partly_outside_roi_is_clipped():
    # x 3..9 on a width-6 map: columns 3..5 remain; y -2..1: rows 0..1
    out, am = pool(SEED, [[0, 3, -2, 9, 1]], 1, 1.0)
    assert out[0, 0, 0, 0] == 1 * 6 + 5 and am[0, 0, 0, 0] == 11


def test_roi_wholly_outside_gives_zeros_and_minus_one():
    for roi in ([0, 10, 10, 20, 20], [0, -30, -30, -10, -10], [0, 0, 9, 5, 12]):
        out, am = pool(SEED + 100, [roi], (2, 3), 1.0)
        assert (out == 0).all() and (am == -1).all()


def test_roi_partly_outside_has_empty_bins():
    # ROI rows 6..9 (4 rows, 2 bins of 2): bin 0 rows 6-7, bin 1 rows 8-9 off the map
    out, am = pool(SEED, [[0, 0, 6, 5, 9]], (2, 1), 1.0)
    assert out[0, 0, 0, 0] == 47 and am[0, 0, 0, 0] == 47
    assert out[0, 0, 1, 0] == 0 and am[0, 0, 1, 0] == -1


def test_reversed_corners_give_a_one_by_one_roi():
    # x2 < x1 and y2 < y1: roi_w = roi_h = 1 at (x1, y1) = (4, 3)
    out, am = pool(SEED, [[0, 4, 3, 1, 0]], (2, 2), 1.0)
    # bin_h = 1/2: bins [floor(0), ceil(0.5)) = [0,1) and [floor(0.5), ceil(1)) = [0,1)
    assert (out == 3 * 6 + 4).all() and (am == 22).all()


def test_negative_coordinates_round_half_away_from_zero():
    # -0.5 * 1 rounds to -1 (C round), not -0 (numpy's half-to-even gives -0)
    out, am = pool(SEED, [[0, -0.5, -0.5, 0.5, 0.5]], 1, 1.0)
    # x -1..1, y -1..1, clipped to 0..1: max at (1, 1)
    assert out[0, 0, 0, 0] == 7
    # 2.5 rounds to 3, not 2: the single column 3
    out, _ = pool(SEED, [[0, 2.5, 0, 2.5, 0]], 1, 1.0)
    assert out[0, 0, 0, 0] == 3


def test_bins_overlap_by_at_most_one_row():
    # ROI height 5 into 3 bins: bin_h = 5/3, bins [0,2), [1,4), [3,5): row 1 and 3 shared
    x = np.zeros((1, 1, 5, 1), np.float32)
    x[0, 0, 1, 0], x[0, 0, 3, 0] = 9, 8
    out, am = pool(x, [[0, 0, 0, 0, 4]], (3, 1), 1.0)
    np.testing.assert_array_equal(out[0, 0, :, 0], [9, 9, 8])
    np.testing.assert_array_equal(am[0, 0, :, 0], [1, 1, 3])


def test_more_bins_than_rows_repeat_rows():
    # ROI height 2 into 4 bins: bin_h = 0.5, bins [0,1),[0,1),[1,2),[1,2)
    out, am = pool(SEED, [[0, 0, 0, 0, 1]], (4, 1), 1.0)
    np.testing.assert_array_equal(out[0, 0, :, 0], [0, 0, 6, 6])


@pytest.mark.parametrize("shape, rois, pooled, want_shape", [
    ((1, 3, 4, 4), np.zeros((0, 5)), (2, 2), (0, 3, 2, 2)),   # R = 0
    ((1, 0, 4, 4), [[0, 0, 0, 3, 3]], (2, 2), (1, 0, 2, 2)),  # C = 0
    ((1, 2, 0, 4), [[0, 0, 0, 3, 3]], (2, 2), (1, 2, 2, 2)),  # H = 0: empty bins
    ((1, 2, 4, 0), [[0, 0, 0, 3, 3]], (2, 2), (1, 2, 2, 2)),  # W = 0: empty bins
])
def test_empty_dimensions(shape, rois, pooled, want_shape):
    out, am = pool(np.ones(shape, np.float32), np.asarray(rois, np.float32), pooled, 1.0)
    assert out.shape == want_shape and am.shape == want_shape
    assert (out == 0).all() and (am == -1).all()


def test_empty_batch_with_no_rois():
    out = roipool.roi_pooling(np.ones((0, 2, 3, 3), np.float32), np.zeros((0, 5)), 2, 1.0)
    assert out.shape == (0, 2, 2, 2)


def test_spatial_scale_above_one():
    # scale 2: x 0..1 -> 0..2, y 1..2 -> 2..4; one bin: rows 2..4, cols 0..2 -> max 4*6+2
    out, am = pool(SEED, [[0, 0, 1, 1, 2]], 1, 2.0)
    assert out[0, 0, 0, 0] == 26 and am[0, 0, 0, 0] == 26


def test_batch_index_is_truncated():
    x = np.stack([SEED[0], SEED[0] + 100])  # N = 2
    out, _ = pool(x, [[1.9, 0, 0, 1, 1], [0.99, 0, 0, 1, 1]], 1, 1.0)
    assert out[0, 0, 0, 0] == 107 and out[1, 0, 0, 0] == 7


def test_scale_is_a_c_float_and_products_are_in_t():
    # 45 * 0.7: float32(0.7) = 0.699999988 -> 31.4999995 in float64, but the float32
    # product rounds to 31.5 -> 32 (MXNet). compat="torchvision" on float32 data is
    # the same arithmetic (torchvision holds the scale as a float32 and multiplies
    # in float32), so also 32 (docs/semantics.md, "Where frameworks differ").
    x = np.arange(64, dtype=np.float32).reshape(1, 1, 1, 64)
    out, am = pool(x, [[0, 45, 0, 45, 0]], 1, 0.7)
    assert am[0, 0, 0, 0] == 32
    out, am = pool(x, [[0, 45, 0, 45, 0]], 1, 0.7, compat="torchvision")
    assert am[0, 0, 0, 0] == 32
    # float64 data: MXNet rounds the scale to float32 first (5 * 0.699999988 ->
    # 3.4999999 -> 3); torchvision multiplies by the double 0.7 (3.5 -> 4)
    x = x.astype(np.float64)
    assert pool(x, [[0, 5, 0, 5, 0]], 1, 0.7)[1][0, 0, 0, 0] == 3
    assert pool(x, [[0, 5, 0, 5, 0]], 1, 0.7, compat="torchvision")[1][0, 0, 0, 0] == 4


def test_float64_data_computes_in_float64():
    # in float64 the product 45 * float64(float32(0.7)) = 31.4999995 -> 31
    x = np.arange(64, dtype=np.float64).reshape(1, 1, 1, 64)
    out, am = pool(x, [[0, 45, 0, 45, 0]], 1, 0.7)
    assert am[0, 0, 0, 0] == 31 and out[0, 0, 0, 0] == 31.0


def test_rois_are_converted_to_the_data_dtype_first():
    # float16 has no 2049: the ROI column 2049 becomes 2048 before anything else
    x = np.zeros((1, 1, 1, 2050), np.float16)
    x[0, 0, 0, 2048:] = [1, 2]
    rois = np.array([[0, 2049, 0, 2049, 0]], np.float64)
    out, am = pool(x, rois, 1, 1.0)
    assert am[0, 0, 0, 0] == 2048 and out[0, 0, 0, 0] == 1
    # the same ROI on float32 data keeps column 2049
    out, am = pool(x.astype(np.float32), rois, 1, 1.0)
    assert am[0, 0, 0, 0] == 2049 and out[0, 0, 0, 0] == 2
