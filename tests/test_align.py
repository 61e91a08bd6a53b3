"""roipool.roi_align / roi_align_backward against the plain-loop reference
(docs/semantics.md, "RoIAlign"), bit for bit: every ISA path this CPU has,
every dtype, memory layouts and out= buffers, thread counts (identical results
for any), the degenerate answers, and the peers directly (torchvision, ONNX
Runtime; skipped without them outside CI's peer phase). Errors are in
test_align_errors.py."""
import itertools

import numpy as np
import pytest

import roipool
from align_helpers import align_case, ort_run, ort_session, tv_backward, tv_forward
from helpers import bfloat16, bits, import_peer
from roipool._reference import roi_align as ref_align, roi_align_backward as ref_backward

DTYPES = [np.float32, np.float64, np.float16] + ([bfloat16] if bfloat16 is not None else [])
DTYPE_IDS = [np.dtype(d).name for d in DTYPES]
SUPPORTED = roipool.supported_isas()
# (scale, sampling_ratio, aligned, compat, mode): the rule's branches
VARIANTS = [(1.0, -1, False, "torchvision", "avg"), (0.7, 2, False, "torchvision", "avg"),
            (0.5, 0, True, "torchvision", "avg"), (0.3, 3, True, "mxnet", "avg"),
            (1 / 16, 1, False, "onnxruntime", "avg"), (0.7, 2, True, "onnxruntime", "max"),
            (0.7, -1, False, "onnxruntime", "max")]


@pytest.fixture
def restore_isa():
    before = roipool.get_isa()
    yield
    roipool.set_isa(before)


def _cases(dtype, seed, count=3):
    """Channel counts around the vector widths, boxes inside/across/outside and
    flipped, NaN/inf planted (also at a plane's (0, 0), which outside samples read)."""
    rng = np.random.default_rng(seed)
    for C in (1, 5, 8, 17, 33)[:count + 2]:
        data, rois = align_case(rng, np.float64, 0.7, N=2, C=C, H=int(rng.integers(1, 9)),
                                W=int(rng.integers(1, 9)), R=5)
        if rng.random() < 0.5:
            data.flat[rng.integers(0, data.size, 3)] = [np.nan, np.inf, -0.0]
        with np.errstate(over="ignore"):
            yield data.astype(dtype), rois.astype(dtype if dtype != bfloat16 else np.float32)


_WANT = {}  # the plain loops' answers, shared by the ISA paths (they are slow)


def _cached(key, compute):
    if key is None:
        return compute()
    if key not in _WANT:
        _WANT[key] = compute()
    return _WANT[key]


def _check_forward(data, rois, pooled, variant, key=None, **kw):
    scale, ratio, aligned, compat, mode = variant
    want = _cached(key and ("f",) + key, lambda: ref_align(data, rois, pooled, scale, ratio,
                                                          aligned, mode=mode, compat=compat))
    got = roipool.roi_align(data, rois, pooled, scale, ratio, aligned, mode=mode, compat=compat,
                            **kw)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{variant} {kw}")
    return got


def _check_backward(grad_out, rois, shape, variant, key=None, **kw):
    scale, ratio, aligned, compat, _ = variant
    want = _cached(key and ("b",) + key, lambda: ref_backward(grad_out, rois, shape, scale, ratio,
                                                             aligned, compat=compat))
    got = roipool.roi_align_backward(grad_out, rois, shape, scale, ratio, aligned, compat=compat,
                                     **kw)
    assert got.dtype == want.dtype and got.shape == tuple(shape)
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{variant} {kw}")
    return got


@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_forward_every_path_equals_reference(isa, dtype, restore_isa):
    assert roipool.set_isa(isa) == isa
    for i, (data, rois) in enumerate(_cases(dtype, 11)):
        for variant in VARIANTS:
            _check_forward(data, rois, (i % 3 + 1, 2), variant, (np.dtype(dtype).name, i, variant),
                           num_threads=2)


@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_backward_every_path_equals_reference(isa, dtype, restore_isa):
    assert roipool.set_isa(isa) == isa
    rng = np.random.default_rng(12)
    for i, (data, rois) in enumerate(_cases(dtype, 12)):
        pooled = (2, i % 3 + 1)
        grad_out = rng.standard_normal((len(rois), data.shape[1]) + pooled).astype(dtype)
        for variant in VARIANTS:
            if variant[4] == "avg":
                _check_backward(grad_out, rois, data.shape, variant,
                                (np.dtype(dtype).name, i, variant), num_threads=2)


@pytest.fixture
def restore_tuning():
    before = roipool._roi_pool._set_tuning()
    yield
    roipool._roi_pool._set_tuning(*before)


def _map_boxes(rng, N, H, W, R):
    """R boxes of 1-6 rows and columns inside a map of H x W, in map units."""
    side = rng.uniform(1, 6, (R, 2))
    lo = rng.uniform(0, 1, (R, 2)) * (np.array([W, H]) - side)
    return np.column_stack([rng.integers(0, N, R), lo, lo + side])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_ring_of_rows_equals_reference(dtype, restore_tuning):
    """A map block past the cache budget is read through a ring of rows: the
    tasks copy the rows their ROIs read as the ROIs come (by last row), and the
    tables address map row h as h % ring. Small boxes take the ring (with
    boxes outside the map, which read pixel (0, 0): a NaN planted there, and
    boxes reaching the last row and column); a box of every row does not (the
    whole block); both equal the plain loops for every variant and thread
    count, from a contiguous map, a map whose rows are strided, and a
    channels-last one of more channels than one block. ring_plans() shows
    which ran."""
    rng = np.random.default_rng(21)
    N, C, H, W = 2, 70, 40, 45
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    data[1, 3, 0, 0] = np.nan
    wide = np.zeros((N, C, H, 2 * W), dtype)
    wide[..., ::2] = data
    layouts = [data, wide[..., ::2],
               np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)]
    small = _map_boxes(rng, N, H, W, 40)
    edge = [[0, 0, 0, 2, 2], [1, W - 2, H - 2, W, H], [1, -30, -30, -20, -20]]
    tall = [[0, 10, 0, 15, H]]
    itemsize = np.dtype(dtype).itemsize
    # blocks of 16 channels are 16 * H * W elements; rings of at most 20 rows fit
    roipool._roi_pool._set_tuning(cache_budget=16 * 20 * W * itemsize)
    for boxes, ring in [(np.vstack([small, edge]), True), (np.vstack([small, tall]), False)]:
        for variant in VARIANTS:
            rois = boxes / np.array([1] + [variant[0]] * 4)  # image coordinates
            rois = rois.astype(dtype if dtype != bfloat16 else np.float32)
            for threads, layout in itertools.product((1, 2), range(len(layouts))):
                before = roipool._roi_pool.ring_plans()
                _check_forward(layouts[layout], rois, (3, 2), variant,
                               (np.dtype(dtype).name, "ring", ring, variant),
                               num_threads=threads)
                assert roipool._roi_pool.ring_plans() - before == int(ring), (variant, layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_threads_give_identical_bits(dtype):
    """Overlapping boxes on one image: the backward's adds to a shared element
    must come in the contract's order whatever the thread count."""
    rng = np.random.default_rng(13)
    data, rois = align_case(rng, np.float32, 0.5, N=2, C=19, H=12, W=10, R=24)
    rois[:, 0] = 0
    data, rois = data.astype(dtype), rois.astype(np.float32)
    grad_out = rng.standard_normal((24, 19, 3, 3)).astype(dtype)
    for variant in VARIANTS[:4]:
        scale, ratio, aligned, compat, mode = variant
        outs = [roipool.roi_align(data, rois, 3, scale, ratio, aligned, compat=compat,
                                  num_threads=t) for t in (1, 2, 3)]
        grads = [roipool.roi_align_backward(grad_out, rois, data.shape, scale, ratio, aligned,
                                            compat=compat, num_threads=t) for t in (1, 2, 3)]
        for o in outs[1:]:
            np.testing.assert_array_equal(bits(o), bits(outs[0]))
        for g in grads[1:]:
            np.testing.assert_array_equal(bits(g), bits(grads[0]))
        np.testing.assert_array_equal(bits(grads[0]), bits(
            ref_backward(grad_out, rois, data.shape, scale, ratio, aligned, compat=compat)))


def _layouts(data):
    yield "nchw", data
    yield "channels_last", np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    big = np.zeros(data.shape[:3] + (2 * data.shape[3],), data.dtype)
    big[..., ::2] = data
    yield "strided", big[..., ::2]
    yield "reversed", np.ascontiguousarray(data[:, ::-1])[:, ::-1]
    if data.dtype.kind == "f":
        yield "byteswapped", data.astype(data.dtype.newbyteorder())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_layouts_and_out_buffers(dtype):
    rng = np.random.default_rng(14)
    data, rois = align_case(rng, np.float32, 0.5, C=12, H=7, W=9, R=7)
    data = data.astype(dtype)
    variant = (0.5, 2, True, "torchvision", "avg")
    want = ref_align(data, rois, (2, 3), 0.5, 2, True)
    for name, d in _layouts(data):
        np.testing.assert_array_equal(d, data)
        got = _check_forward(d, rois, (2, 3), variant)
        if name == "channels_last":
            assert got.transpose(0, 2, 3, 1).flags.c_contiguous  # the layout carries over
        for order in ("nchw", "channels_last"):
            out = np.full((7, 12, 2, 3), 5, dtype)
            if order == "channels_last":
                out = np.full((7, 2, 3, 12), 5, dtype).transpose(0, 3, 1, 2)
            res = roipool.roi_align(d, rois, (2, 3), 0.5, 2, True, out=out)
            assert res is out
            np.testing.assert_array_equal(bits(out), bits(want), err_msg=f"{name} {order}")
    grad_out = rng.standard_normal(want.shape).astype(dtype)
    want_g = ref_backward(grad_out, rois, data.shape, 0.5, 2, True)
    for name, g in _layouts(grad_out):
        got = roipool.roi_align_backward(g, rois, data.shape, 0.5, 2, True)
        np.testing.assert_array_equal(bits(got), bits(want_g), err_msg=name)
        out = np.full(data.shape, 7, dtype)
        assert roipool.roi_align_backward(g, rois, data.shape, 0.5, 2, True, out=out) is out
        np.testing.assert_array_equal(bits(out), bits(want_g), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [33, 50, 64])
def test_channels_last_in_blocks(dtype, C):
    """Channels-last data of up to 64 channels is read in place, in blocks of at
    most 32 channels (the last one narrower): each block equals the plain loops."""
    rng = np.random.default_rng(15)
    data, rois = align_case(rng, np.float32, 0.5, C=C, H=6, W=7, R=5)
    data = data.astype(dtype)
    cl = np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for threads in (1, 2):
        _check_forward(cl, rois, (2, 2), (0.5, 2, False, "torchvision", "avg"),
                       (np.dtype(dtype).name, "cl", C), num_threads=threads)


def test_rois_dtypes_are_converted_first():
    """rows are converted to the compute type first (float16 data: float16 rows)."""
    rng = np.random.default_rng(15)
    data, rois = align_case(rng, np.float64, 0.3, R=8)
    for dt in DTYPES[:3]:
        d = data.astype(dt)
        for rd in (np.float64, np.float32, np.int64):
            r = np.round(rois).astype(rd) if rd == np.int64 else rois.astype(rd)
            want = ref_align(d, r, 2, 0.3, 2)
            np.testing.assert_array_equal(bits(roipool.roi_align(d, r, 2, 0.3, 2)), bits(want))


def test_inputs_untouched():
    rng = np.random.default_rng(16)
    data, rois = align_case(rng, np.float32, 0.5)
    grad_out = rng.standard_normal((len(rois), 3, 2, 2)).astype(np.float32)
    copies = [a.copy() for a in (data, rois, grad_out)]
    roipool.roi_align(data, rois, 2, 0.5, 2, True)
    roipool.roi_align_backward(grad_out, rois, data.shape, 0.5, 2, True)
    for a, c in zip((data, rois, grad_out), copies):
        np.testing.assert_array_equal(bits(a), bits(c))


# -- degenerate boxes: the contract's table --------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_boxes_without_samples_give_zero(dtype):
    """aligned boxes of size 0 or flipped (on one or both axes), adaptive grid:
    0, where torchvision and ONNX Runtime raise for the one-axis flip."""
    data = np.random.default_rng(17).standard_normal((1, 4, 5, 6)).astype(dtype)
    rows = np.array([[0, 3, 1, 1, 4], [0, 1, 4, 3, 1], [0, 3, 4, 1, 1], [0, 2, 1, 2, 4],
                     [0, 2, 2, 2, 2], [0, 2.5, 1, 2.2, 4]], np.float32)
    for ratio in (-1, 0):
        out = roipool.roi_align(data, rows, (2, 2), 1.0, ratio, True)
        np.testing.assert_array_equal(bits(out), bits(np.zeros_like(out)))
        grad = roipool.roi_align_backward(np.ones(out.shape, dtype), rows, data.shape, 1.0,
                                          ratio, True)
        np.testing.assert_array_equal(bits(grad), bits(np.zeros_like(grad)))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_empty_shapes(dtype):
    rows = np.array([[0, 1, 1, 3, 3], [0, -4, -4, 20, 20]], np.float32)
    for shape in ((1, 2, 0, 6), (1, 2, 6, 0), (1, 2, 0, 0)):
        out = roipool.roi_align(np.zeros(shape, dtype), rows, (2, 3), 1.0, 2)
        assert out.shape == (2, 2, 2, 3) and out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(bits(out), bits(np.zeros_like(out)))
        grad = roipool.roi_align_backward(np.ones((2, 2, 2, 3), dtype), rows, shape, 1.0, 2)
        assert grad.shape == shape
    data = np.ones((1, 0, 4, 4), dtype)
    assert roipool.roi_align(data, rows, 2, 1.0).shape == (2, 0, 2, 2)
    assert roipool.roi_align(np.ones((1, 2, 4, 4), dtype), np.zeros((0, 5)), 2, 1.0).shape == \
        (0, 2, 2, 2)
    g = roipool.roi_align_backward(np.ones((0, 2, 2, 2), dtype), np.zeros((0, 5)), (1, 2, 4, 4),
                                   1.0)
    np.testing.assert_array_equal(bits(g), bits(np.zeros((1, 2, 4, 4), dtype)))


def test_outside_box_reads_plane_origin():
    """Outside samples count as zero weights at (0, 0): an inf there gives NaN."""
    data = np.ones((1, 2, 4, 4), np.float32)
    data[0, 1, 0, 0] = np.inf
    out = roipool.roi_align(data, [[0, 50, 50, 60, 60]], 1, 1.0, 2)
    assert out[0, 0, 0, 0] == 0 and np.isnan(out[0, 1, 0, 0])


def test_worked_example():
    x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    row = np.array([[0, 0, 0, 4, 4]], np.float32)
    assert roipool.roi_align(x, row, (2, 2), 1.0).ravel().tolist() == [7, 9, 19, 21]
    assert roipool.roi_align(x, row, 2, 1.0, 2, True).ravel().tolist() == [3.5, 5.5, 15.5, 17.5]
    assert roipool.roi_align(x, row, 2, 1.0, 2, mode="max", compat="onnxruntime").ravel() \
        .tolist() == [3.5, 4, 6.5, 7]


# -- against the peers directly -----------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=lambda d: np.dtype(d).name)
def test_equals_torchvision(dtype):
    torch = import_peer("torch")
    tv_ops = import_peer("torchvision").ops
    for scale, ratio, aligned in itertools.product((1.0, 0.7, 1 / 16, 0.3), (-1, 0, 2), (False, True)):
        rng = np.random.default_rng(abs(hash((scale, ratio, aligned))) % 2**32)
        data, rois = align_case(rng, dtype, scale, C=9, H=13, W=12, R=16, flips=not aligned)
        want = tv_forward(tv_ops, torch, data, rois, (3, 4), scale, ratio, aligned)
        got = roipool.roi_align(data, rois, (3, 4), scale, ratio, aligned, num_threads=2)
        np.testing.assert_array_equal(bits(got), bits(want))
        grad_out = rng.standard_normal(want.shape).astype(dtype)
        want_g = tv_backward(tv_ops, torch, data, rois, grad_out, (3, 4), scale, ratio, aligned)
        got_g = roipool.roi_align_backward(grad_out, rois, data.shape, scale, ratio, aligned,
                                           num_threads=2)
        np.testing.assert_array_equal(bits(got_g), bits(want_g))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_equals_onnxruntime(dtype, mode):
    import_peer("onnx")
    ort = import_peer("onnxruntime")
    for opset, scale, ratio, aligned in itertools.product((10, 16), (1.0, 0.7, 0.3), (0, 2), (False, True)):
        if opset == 10 and aligned:
            continue
        rng = np.random.default_rng(abs(hash((opset, scale, ratio, aligned, mode))) % 2**32)
        data, rois = align_case(rng, dtype, scale, C=9, H=13, W=12, R=16, flips=False)
        want = ort_run(ort_session(ort, dtype, (3, 4), scale, ratio, aligned, mode, opset), data, rois)
        got = roipool.roi_align(data, rois, (3, 4), scale, ratio, aligned, mode=mode,
                                compat="onnxruntime", num_threads=2)
        np.testing.assert_array_equal(bits(got), bits(want))


@pytest.mark.skipif(bfloat16 is None, reason="ml_dtypes (test extra) not installed")
def test_bfloat16_equals_torchvision_autocast():
    torch = import_peer("torch")
    tv_ops = import_peer("torchvision").ops
    rng = np.random.default_rng(18)
    data, rois = align_case(rng, np.float32, 0.25, C=19, H=20, W=24, R=12, flips=False)
    xb = data.astype(bfloat16)
    x = torch.from_numpy(xb.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
    for ratio, aligned in itertools.product((0, 2), (False, True)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = tv_ops.roi_align(x, torch.from_numpy(rois), (3, 4), 0.25, ratio, aligned)
        got = roipool.roi_align(xb, rois, (3, 4), 0.25, ratio, aligned, num_threads=2)
        np.testing.assert_array_equal(got.view(np.uint16), y.view(torch.int16).numpy().view(np.uint16))
