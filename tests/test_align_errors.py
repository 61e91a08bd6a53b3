"""Every row of docs/semantics.md, "RoIAlign, bad input and degenerate boxes":
the exception type, the argument named in the message (for rois, the first bad
row), inputs unchanged and a preallocated out= untouched."""
import numpy as np
import pytest

import roipool
from roipool._reference import roi_align as ref_align
from test_errors import C, H, N, W, good  # roi_pooling's good call: the same arrays


_GOOD = object()  # "use the good value" (None is a value under test)


def _snap(a):
    """Bytes of an array argument (any strides, also object arrays), to compare after."""
    if not isinstance(a, np.ndarray) or 0 in a.strides:
        return None  # zero-stride views (a huge logical size) are read-only anyway
    return a.copy() if a.dtype.hasobject else np.ascontiguousarray(a).tobytes()


def _same(a, snap):
    if snap is None:
        return True
    if isinstance(snap, np.ndarray):
        return all(x is y for x, y in zip(a.ravel(), snap.ravel()))
    return np.ascontiguousarray(a).tobytes() == snap


def _raises(fn, exc, pattern, args, kw):
    """fn(*args, **kw) raises exc matching pattern; arrays among args and out= unchanged."""
    arrays = [a for a in args if isinstance(a, np.ndarray)] + \
        ([kw["out"]] if isinstance(kw.get("out"), np.ndarray) else [])
    snaps = [_snap(a) for a in arrays]
    with pytest.raises(exc, match=pattern):
        fn(*args, **kw)
    for a, sn in zip(arrays, snaps):
        assert _same(a, sn), "an input or out= was modified by a call that raised"


def forward_raises(exc, pattern, data=_GOOD, rois=_GOOD, pooled=2, scale=0.5, *args, **kw):
    """roi_align must raise exc matching pattern, leaving inputs and out= as they were
    (a good out= is passed unless the test gives one)."""
    d0, r0 = good()
    data = d0 if data is _GOOD else data
    rois = r0 if rois is _GOOD else rois
    if "out" not in kw and pooled == 2 and data is d0 and rois is r0:
        kw["out"] = np.full((len(r0), C, 2, 2), 3.0, np.float32)
    _raises(roipool.roi_align, exc, pattern, (data, rois, pooled, scale) + args, kw)


def backward_raises(exc, pattern, grad_out=_GOOD, rois=_GOOD, data_shape=(N, C, H, W), scale=0.5,
                    *args, **kw):
    _, r0 = good()
    rois = r0 if rois is _GOOD else rois
    grad_out = np.ones((len(r0), C, 2, 2), np.float32) if grad_out is _GOOD else grad_out
    if "out" not in kw and tuple(data_shape) == (N, C, H, W) and rois is r0:
        kw["out"] = np.full((N, C, H, W), 3.0, np.float32)
    _raises(roipool.roi_align_backward, exc, pattern, (grad_out, rois, data_shape, scale) + args,
            kw)


# -- arguments -------------------------------------------------------------------

@pytest.mark.parametrize("data, exc", [
    (np.zeros((C, H, W), np.float32), ValueError), (np.zeros((N, C, H, W), np.int32), TypeError),
    (np.zeros((N, C, H, W), bool), TypeError), (np.zeros((N, C, H, W), np.complex64), TypeError),
    ("text", (TypeError, ValueError)), (None, (TypeError, ValueError))])
def test_bad_data(data, exc):
    forward_raises(exc, r"\bdata\b", data=data)


def test_data_plane_too_large():
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (1, 1, 2**16, 2**15 + 1),
                                          (0, 0, 0, 0))
    forward_raises(ValueError, r"\bdata\b", data=big, rois=np.zeros((0, 5), np.float32))


@pytest.mark.parametrize("compat", ["MXNET", "torch", "", None, 1])
def test_bad_compat(compat):
    forward_raises(ValueError, r"\bcompat\b", compat=compat)
    backward_raises(ValueError, r"\bcompat\b", compat=compat)


@pytest.mark.parametrize("mode, compat", [("mean", "onnxruntime"), ("MAX", "onnxruntime"),
                                          (None, "onnxruntime"), ("max", "torchvision"),
                                          ("max", "mxnet")])
def test_bad_mode(mode, compat):
    forward_raises(ValueError, r"\bmode\b", mode=mode, compat=compat)


@pytest.mark.parametrize("pooled", [0, (0, 2), (2, 0), -1, True, (2, False), 2.0, (2, 2, 2),
                                    2**31, "2", None])
def test_bad_pooled_size(pooled):
    forward_raises(ValueError, r"\bpooled_size\b", pooled=pooled)


@pytest.mark.parametrize("scale", [0.0, -0.5, np.nan, np.inf, True, "1", None, 1j, [0.5]])
def test_bad_spatial_scale(scale):
    forward_raises(ValueError, r"\bspatial_scale\b", scale=scale)
    backward_raises(ValueError, r"\bspatial_scale\b", scale=scale)


def test_spatial_scale_infinite_in_its_type():
    forward_raises(ValueError, r"\bspatial_scale\b", scale=1e39, compat="mxnet")
    forward_raises(ValueError, r"\bspatial_scale\b", scale=1e39, compat="onnxruntime")
    d, r = good()
    forward_raises(ValueError, r"\bspatial_scale\b", data=d.astype(np.float16),
                   rois=r.astype(np.float16), scale=70000.0)


@pytest.mark.parametrize("ratio", [-2, -100, 46341, 2**40, True, False, 2.0, 0.5, "2", None,
                                   np.float32(2)])
def test_bad_sampling_ratio(ratio):
    forward_raises(ValueError, r"\bsampling_ratio\b", _GOOD, _GOOD, 2, 0.5, ratio)
    backward_raises(ValueError, r"\bsampling_ratio\b", _GOOD, _GOOD, (N, C, H, W), 0.5, ratio)


def test_fixed_grid_too_many_samples_per_box():
    forward_raises(ValueError, r"\bsampling_ratio\b", _GOOD, _GOOD, 2, 0.5, 23171)  # 4 bins
    backward_raises(ValueError, r"\bsampling_ratio\b", _GOOD, _GOOD, (N, C, H, W), 0.5, 23171)


def test_sampling_ratio_accepts_numpy_ints_and_large_grids():
    data, rois = good()
    a = roipool.roi_align(data, rois, 2, 0.5, np.int64(2))
    b = roipool.roi_align(data, rois, 2, 0.5, 2)
    np.testing.assert_array_equal(a, b)
    big = roipool.roi_align(data[:, :1], rois[:1], 1, 0.5, 300)  # 90,000 samples in one bin
    np.testing.assert_array_equal(big, ref_align(data[:, :1], rois[:1], 1, 0.5, 300))


@pytest.mark.parametrize("aligned", [0, 1, "True", "False", None, 1.0])
def test_bad_aligned(aligned):
    forward_raises(ValueError, r"\baligned\b", _GOOD, _GOOD, 2, 0.5, 2, aligned)
    backward_raises(ValueError, r"\baligned\b", _GOOD, _GOOD, (N, C, H, W), 0.5, 2, aligned)


def test_aligned_accepts_numpy_bool():
    data, rois = good()
    np.testing.assert_array_equal(roipool.roi_align(data, rois, 2, 0.5, 2, np.bool_(True)),
                                  roipool.roi_align(data, rois, 2, 0.5, 2, True))


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_num_threads(threads):
    forward_raises(ValueError, r"\bnum_threads\b", num_threads=threads)
    backward_raises(ValueError, r"\bnum_threads\b", num_threads=threads)


@pytest.mark.parametrize("rois, exc", [
    (np.zeros((4, 4), np.float32), ValueError), (np.zeros((4,), np.float32), ValueError),
    (np.zeros((1, 4, 5), np.float32), ValueError), (np.zeros((4, 5), bool), TypeError),
    (np.zeros((4, 5), np.complex64), TypeError), (np.zeros((4, 5), object), TypeError)])
def test_bad_rois(rois, exc):
    forward_raises(exc, r"\brois\b", rois=rois)
    backward_raises(exc, r"\brois\b", rois=rois, grad_out=np.ones((len(rois), C, 2, 2),
                                                                  np.float32))


def test_bad_out():
    data, rois = good()
    for out in (np.zeros((4, C, 2, 3), np.float32), np.zeros((4, C, 2, 2), np.float64),
                np.zeros((4, C, 2, 4), np.float32)[..., ::2], [0.0] * 48):
        forward_raises(ValueError, r"\bout\b", out=out)
    ro = np.zeros((4, C, 2, 2), np.float32)
    ro.flags.writeable = False
    forward_raises(ValueError, r"\bout\b", out=ro)
    big = np.zeros(N * C * H * W + 48, np.float32)  # out overlapping data
    forward_raises(ValueError, r"\bout\b", data=big[:N * C * H * W].reshape(N, C, H, W),
                   out=big[-96:-48].reshape(4, C, 2, 2))


def test_bad_backward_shapes():
    backward_raises(ValueError, r"\bdata_shape\b", data_shape=(N, C + 1, H, W))
    backward_raises(ValueError, r"\bdata_shape\b", data_shape=(N, C, -1, W))
    backward_raises(ValueError, r"\bdata_shape\b", data_shape=(N, C, H))
    backward_raises(ValueError, r"\bdata_shape\b", data_shape=(N, C, 2**16, 2**15 + 1))
    backward_raises(ValueError, r"\bgrad_out\b", grad_out=np.ones((4, C, 2), np.float32))
    backward_raises(TypeError, r"\bgrad_out\b", grad_out=np.ones((4, C, 2, 2), np.int32))
    backward_raises(ValueError, r"\brois\b", grad_out=np.ones((3, C, 2, 2), np.float32))
    backward_raises(ValueError, r"\bout\b", out=np.zeros((N, C, H, W), np.float64))
    g = np.ones((4, C, 2, 2), np.float32)
    backward_raises(ValueError, r"\bout\b", grad_out=g, out=g)


# -- rows --------------------------------------------------------------------------

@pytest.mark.parametrize("col, bad", [
    (0, np.nan), (0, np.inf), (0, -1), (0, N), (0, N + 0.5), (0, -1.5),
    (1, np.nan), (2, np.inf), (3, -np.inf), (4, np.nan)])
def test_bad_row_is_named(col, bad):
    _, rois = good()
    rois = rois.astype(np.float64)
    rois[2, col] = bad
    rois[3, col] = bad  # the first bad row is named
    forward_raises(ValueError, r"rois row 2\b", rois=rois)
    forward_raises(ValueError, r"rois row 2\b", rois=rois, sampling_ratio=2)
    backward_raises(ValueError, r"rois row 2\b", rois=rois)


def test_row_not_finite_after_scaling():
    d, rois = good()
    rois = rois.astype(np.float64)
    rois[1, 3] = 1e308
    forward_raises(ValueError, r"rois row 1\b", rois=rois, scale=4.0)  # x * s overflows
    rois = good()[1].astype(np.float16)
    rois[1, 1] = -60000.0
    rois[1, 3] = 60000.0  # finite corners, width infinite in float16
    forward_raises(ValueError, r"rois row 1\b", data=d.astype(np.float16), rois=rois, scale=1.0)
    rois = good()[1].astype(np.float16)
    rois[3, 3] = 60000.0
    forward_raises(ValueError, r"rois row 3\b", data=d.astype(np.float16), rois=rois, scale=2.0)


def test_adaptive_grid_too_large():
    _, rois = good()
    rois = rois.astype(np.float64)
    rois[1, 3:] = 2e5  # 1e5 x 1e5 samples per bin at pooled 1, scale 1
    forward_raises(ValueError, r"rois row 1\b", rois=rois, pooled=1, scale=1.0)
    backward_raises(ValueError, r"rois row 1\b", rois=rois, grad_out=np.ones((4, C, 1, 1),
                                                                             np.float32), scale=1.0)
    d, _ = good()
    out = roipool.roi_align(d, rois, 1, 1.0, 2)  # fixed grid: a valid huge box
    assert np.isfinite(out).all()


def test_row_checks_run_when_output_is_empty():
    data, rois = good()
    rois[1, 0] = 7
    forward_raises(ValueError, r"rois row 1\b", data=data[:, :0], rois=rois)


@pytest.mark.parametrize("later", ["batch", "coordinate"])
def test_rows_are_checked_one_at_a_time(later):
    """A size error in an early row is named before a later row's batch index
    or coordinate error (the sizes are scanned after those two checks)."""
    _, rois = good()
    rois = rois.astype(np.float64)
    rois[1, 3:] = 2e5  # adaptive grid past 2**31 samples per box at pooled 1
    if later == "batch":
        rois[3, 0] = N
    else:
        rois[3, 2] = np.inf
    forward_raises(ValueError, r"rois row 1\b", rois=rois, pooled=1, scale=1.0)
    rois[1, 3:] = rois[0, 3:]
    forward_raises(ValueError, r"rois row 3\b", rois=rois, pooled=1, scale=1.0)
    d, rois = good()
    rois = rois.astype(np.float16)
    rois[0, 0] = N  # bad batch in row 0; row 1's width is infinite in float16
    rois[1, 1], rois[1, 3] = -60000.0, 60000.0
    forward_raises(ValueError, r"rois row 0\b", data=d.astype(np.float16), rois=rois, scale=1.0)


# The default call on arrays the kernel takes as they are (native float32/64,
# C-contiguous rois of data's dtype) skips the generic argument path; it must
# refuse exactly what the generic path (an out= call) refuses, with the same
# message, and its cached rules must not outlive the arguments they came from.
PLAIN_BAD = [
    dict(compat="caffe"), dict(mode="sum"), dict(mode="max"), dict(pooled=0),
    dict(pooled=(2, 2, 2)), dict(scale=0.0), dict(scale=float("nan")), dict(scale=-1.0),
    dict(sampling_ratio=-2), dict(sampling_ratio=2.0), dict(aligned=1), dict(num_threads=0),
    dict(num_threads=-3), dict(rows=[[0, np.nan, 0, 4, 4]]), dict(rows=[[2, 0, 0, 4, 4]]),
    dict(rows=[[0, 0, 0, 4, 4], [-1, 0, 0, 4, 4]]),
    # two bad arguments: the first in docs/semantics.md's order is named
    dict(num_threads=0, compat="caffe"), dict(num_threads=0, sampling_ratio=-2),
    dict(scale=0.0, rows=[[0, np.nan, 0, 4, 4]]), dict(num_threads=0, rows=[[2, 0, 0, 4, 4]]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", PLAIN_BAD, ids=lambda b: repr(b))
def test_default_call_refuses_what_the_out_call_refuses(dtype, bad):
    data, rois = good()
    data = data.astype(dtype)
    rois = np.array(bad.get("rows", rois), dtype)
    args = (data, rois, bad.get("pooled", 2), bad.get("scale", 0.5),
            bad.get("sampling_ratio", -1), bad.get("aligned", False))
    kw = {k: bad[k] for k in ("compat", "mode", "num_threads") if k in bad}
    errors = []
    for out in (None, np.zeros((len(rois), C, 2, 2), dtype)):
        with pytest.raises((ValueError, TypeError)) as e:
            roipool.roi_align(*args, out=out, **kw)
        errors.append((type(e.value), str(e.value)))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_call_rule_follows_every_argument(dtype):
    """Calls that differ in one argument of the rule each give the plain
    loops' answer, also when repeated (the rule objects are cached)."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    rois = np.array([[0, 0.3, 0.6, 4.2, 5.1], [1, 1.5, 0.2, 5.9, 7.7], [0, -2, -2, 3, 1]], dtype)
    base = dict(pooled_size=2, spatial_scale=0.7, sampling_ratio=-1, aligned=False,
                mode="avg", compat="torchvision")
    changes = [{}, dict(pooled_size=(2, 3)), dict(spatial_scale=0.5), dict(sampling_ratio=2),
               dict(aligned=True), dict(compat="mxnet"), dict(compat="onnxruntime"),
               dict(compat="onnxruntime", mode="max")]
    for change in changes + changes:
        kw = dict(base, **change)
        want = ref_align(data, rois, kw.pop("pooled_size"), kw.pop("spatial_scale"),
                         kw.pop("sampling_ratio"), kw.pop("aligned"), **kw)
        got = roipool.roi_align(data, rois, **dict(base, **change))
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=str(change))
