"""Sizes at and beyond what the results can represent (issue 6, "Limits").

Results that cannot be represented get a clear error before any work:
  * H * W beyond the int32 argmax index -> ValueError naming data / data_shape;
  * an output whose size overflows 64 bits or cannot be allocated -> MemoryError
    whose message holds the size (the shape or the byte count);
  * coordinates whose scaled value does not fit a C int -> ValueError naming the row.
Sizes that *can* be represented work, up to the edge (argmax == 2**31 - 1).

"Before any work" is checked without clocks: the kernel entry points are replaced
by ones that fail the test if called.

Nothing here allocates a big array: huge logical arrays are NumPy broadcast views
with zero strides, which cost nothing. Calls that could bring the interpreter down
run in a subprocess (sys.executable, same environment, so the same installed
roipool), and a crash fails one test instead of killing pytest.
"""
import contextlib
import math
import resource
import textwrap
import warnings

import numpy as np
import pytest

import roipool

from helpers import SANITIZED, import_tool, run_python
H_MAX, W_MAX = 2**16, 2**15  # H * W == 2**31: the largest plane an int32 argmax indexes


model = import_tool("fuzzing.model")
check = import_tool("fuzzing.check")


def run_isolated(code, timeout=120, preexec=None):
    """Run `code` in a fresh interpreter (same executable and environment, so the
    same installed roipool)."""
    return run_python(["-c", textwrap.dedent(code)], timeout, preexec_fn=preexec)


def describe(proc):
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
    return f"{how}\n--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-3000:]}"


@contextlib.contextmanager
def before_any_work(monkeypatch, what):
    """The body must fail before any kernel runs: the kernels are replaced by
    tripwires. (tracemalloc cannot tell here: NumPy records a failed 16 TiB
    np.empty as traced memory.)"""
    def tripwire(*a, **k):
        raise AssertionError(f"{what}: the kernel was called (work before the error)")

    with monkeypatch.context() as m:
        m.setattr(roipool._roi_pool, "forward", tripwire)
        m.setattr(roipool._roi_pool, "backward", tripwire)
        yield


def assert_size_in_message(exc, shape, itemsize):
    msg = str(exc)
    nbytes = math.prod(shape) * itemsize
    assert str(nbytes) in msg or all(str(d) in msg for d in shape), \
        f"MemoryError message does not give the size: {msg!r}"


# ----------------------------------------------------------------------------- H * W


def test_plane_larger_than_int32_index_is_rejected(monkeypatch):
    data = np.broadcast_to(np.float32(1), (1, 1, H_MAX, W_MAX + 1))  # 2**31 + 2**16 pixels
    rois = np.array([[0, 0, 0, 1, 1]], np.float32)
    with before_any_work(monkeypatch, "H*W check"):
        with pytest.raises(ValueError, match="data"):
            roipool.roi_pooling(data, rois, 1, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_plane_of_exactly_2_31_pixels_gives_argmax_2_31_minus_1(dtype, num_threads):
    """The last pixel of a 2**31-pixel plane has index 2**31 - 1: no int32 overflow."""
    W = W_MAX
    data = np.broadcast_to(np.arange(W, dtype=dtype), (1, 1, H_MAX, W))  # value = column
    rois = np.array([[0, W - 4, H_MAX - 1, W - 1, H_MAX - 1],     # last row, last 4 columns
                     [0, 0, 0, 3, 0],                               # first row
                     [0, W - 1, H_MAX - 2, W - 1, H_MAX - 1]], dtype)
    out, am = roipool.roi_pooling(data, rois, (1, 2), 1.0, return_argmax=True,
                                  num_threads=num_threads)
    assert out[0, 0].tolist() == [[W - 3, W - 1]]
    assert am[0, 0].tolist() == [[2**31 - 3, 2**31 - 1]]
    assert am[1, 0].tolist() == [[1, 3]]
    # a 2 x 1 ROI in the last column: 1 x 2 bins -> the first bin and a repeat of it
    assert am[2, 0, 0, 0] == (H_MAX - 2) * W + W - 1
    assert am.dtype == np.int32 and am.max() == 2**31 - 1


def test_backward_data_shape_plane_limit():
    g = np.zeros((0, 0, 1, 1), np.float32)
    am = np.zeros((0, 0, 1, 1), np.int32)
    rois = np.zeros((0, 5), np.float32)
    with pytest.raises(ValueError, match="data_shape"):
        roipool.roi_pooling_backward(g, rois, am, (1, 0, H_MAX, W_MAX + 1))
    grad = roipool.roi_pooling_backward(g, rois, am, (1, 0, H_MAX, W_MAX))
    assert grad.shape == (1, 0, H_MAX, W_MAX)


def test_backward_argmax_outside_the_plane_is_rejected():
    g = np.ones((1, 1, 2, 2), np.float32)
    rois = np.array([[0, 0, 0, 3, 3]], np.float32)
    for bad in (16, 17, 2**31 - 1, -2, -(2**31)):
        am = np.full((1, 1, 2, 2), -1, np.int32)
        am[0, 0, 1, 1] = bad
        with pytest.raises(ValueError, match="argmax"):
            roipool.roi_pooling_backward(g, rois, am, (1, 1, 4, 4))
    for dt, bad in ((np.int64, 2**40), (np.int64, -(2**40)), (np.uint64, 2**64 - 1),
                    (np.uint32, 2**32 - 1)):
        am = np.zeros((1, 1, 2, 2), dt)
        am[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="argmax"):
            roipool.roi_pooling_backward(g, rois, am, (1, 1, 4, 4))
    am = np.array([[[[15, -1], [0, 3]]]], np.int64)  # in range, int64 like torchvision's
    grad = roipool.roi_pooling_backward(g, rois, am, (1, 1, 4, 4))
    assert grad.ravel().tolist() == [1, 0, 0, 1] + [0] * 11 + [1]


# ----------------------------------------------------------------------------- outputs


def test_output_whose_size_overflows_64_bits(monkeypatch):
    data = np.zeros((1, 3, 4, 4), np.float32)
    rois = np.array([[0, 0, 0, 3, 3]] * 4, np.float32)
    with before_any_work(monkeypatch, "overflowing output"):
        with pytest.raises(MemoryError) as ei:
            roipool.roi_pooling(data, rois, (2**31 - 1, 2**31 - 1), 1.0)
    assert_size_in_message(ei.value, (4, 3, 2**31 - 1, 2**31 - 1), 4)


def test_product_r_c_ph_pw_overflows_even_a_python_int_budget(monkeypatch):
    """C = 2**40 channels (a zero-stride view) times 2**62 bins: ~2**103 elements."""
    data = np.broadcast_to(np.float32(1), (1, 2**40, 1, 1))
    rois = np.array([[0, 0, 0, 0, 0]] * 3, np.float32)
    with before_any_work(monkeypatch, "overflowing output"):
        with pytest.raises(MemoryError) as ei:
            roipool.roi_pooling(data, rois, (2**31 - 1, 2**31 - 1), 1.0, return_argmax=True)
    assert_size_in_message(ei.value, (3, 2**40, 2**31 - 1, 2**31 - 1), 4)


def test_output_too_big_to_allocate_names_the_size(monkeypatch):
    data = np.broadcast_to(np.float64(1), (1, 2**40, 1, 1))  # 8 TiB of output
    rois = np.array([[0, 0, 0, 0, 0]] * 2, np.float64)
    with before_any_work(monkeypatch, "unallocatable output"):
        with pytest.raises(MemoryError) as ei:
            roipool.roi_pooling(data, rois, 1, 1.0)
    assert_size_in_message(ei.value, (2, 2**40, 1, 1), 8)


def test_empty_output_with_huge_dimensions_is_fine_or_a_clear_memory_error():
    data = np.broadcast_to(np.float32(1), (1, 2**40, 1, 1))
    out = roipool.roi_pooling(data, np.zeros((0, 5), np.float32), (3, 2), 1.0)
    assert out.shape == (0, 2**40, 3, 2)
    out = roipool.roi_pooling(np.zeros((1, 3, 2, 2), np.float32), np.zeros((0, 5)),
                              (2**31 - 1, 1), 1.0)
    assert out.shape == (0, 3, 2**31 - 1, 1)
    # NumPy refuses even an empty array whose non-zero dimensions overflow
    with pytest.raises(MemoryError) as ei:
        roipool.roi_pooling(np.zeros((1, 3, 2, 2), np.float32), np.zeros((0, 5)),
                            (2**31 - 1, 2**31 - 1), 1.0)
    assert "2147483647" in str(ei.value)


def test_backward_gradient_too_big_or_overflowing(monkeypatch):
    g = np.zeros((0, 2**31, 1, 1), np.float32)  # empty: costs nothing
    am = np.zeros((0, 2**31, 1, 1), np.int32)
    rois = np.zeros((0, 5), np.float32)
    for ds in ((2**31, 2**31, 1, 1), (2**20, 2**31, 1, 1), (2**63, 2**31, 1, 1), (2**64, 2**31, 1, 1)):
        with before_any_work(monkeypatch, f"gradient of shape {ds}"):
            with pytest.raises(MemoryError) as ei:
                roipool.roi_pooling_backward(g, rois, am, ds)
        assert_size_in_message(ei.value, ds, 4)


def test_huge_rois_view_is_a_memory_error_not_a_crash():
    rois = np.broadcast_to(np.array([0, 0, 0, 1, 1], np.float32), (2**40, 5))
    with pytest.raises(MemoryError):
        roipool.roi_pooling(np.zeros((1, 1, 2, 2), np.float32), rois, 1, 1.0)


def test_pooled_size_limits():
    data = np.zeros((1, 1, 2, 2), np.float32)
    rois = np.zeros((0, 5), np.float32)
    for bad in (2**31, (1, 2**31), 2**63, 2**64, -(2**31), (0, 1)):
        with pytest.raises(ValueError, match="pooled_size"):
            roipool.roi_pooling(data, rois, bad, 1.0)
    assert roipool.roi_pooling(data, rois, (2**31 - 1, 1), 1.0).shape == (0, 1, 2**31 - 1, 1)
    # a 0-d integer array is an int (it used to fail with "len() of unsized object")
    assert roipool.roi_pooling(data, rois, np.array(3), 1.0).shape == (0, 1, 3, 3)
    for bad in (np.array(0), np.array(2**31), np.array([[2]]), np.array(2.0), np.array([2, 2, 2])):
        with pytest.raises(ValueError, match="pooled_size"):
            roipool.roi_pooling(data, rois, bad, 1.0)


def test_float16_pooled_size_beyond_float16_is_a_clear_error():
    """T(PH) = inf for PH > 65504 in float16: rejected (docs/semantics.md), not divided by inf."""
    data = np.zeros((1, 1, 4, 4), np.float16)
    rois = np.array([[0, 0, 0, 3, 3]], np.float16)
    with pytest.raises(ValueError, match="rois|pooled_size"):
        roipool.roi_pooling(data, rois, (70000, 1), 1.0)
    with pytest.raises(ValueError, match="row 0"):
        roipool.roi_pooling(data, np.array([[0, -60000, 0, 60000, 1]]), 1, 1.0)


# ----------------------------------------------------------------------------- coordinates


def test_scaled_coordinate_limit_is_2_31():
    data = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    ok = np.array([[0, 2**31 - 1, 0, 2**31 - 1, 0],
                   [0, -(2**31 - 1), 0, -(2**31 - 1), 1],
                   [0, 2**31 - 0.5, 0, 2**31 - 0.5, 0]])  # rounds to 2**31: 64-bit inside
    out, am = roipool.roi_pooling(data, ok, 2, 1.0, return_argmax=True)
    assert (out == 0).all() and (am == -1).all()  # wholly outside: empty bins
    for col in (1, 2, 3, 4):
        for v in (2.0**31, -(2.0**31), 1e300, np.finfo(np.float64).max):
            bad = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]], np.float64)
            bad[2, col] = v
            with pytest.raises(ValueError, match=r"rois.*row 2|row 2.*rois"):
                roipool.roi_pooling(data, bad, 2, 1.0)
    # the limit applies to the scaled value: 2**40 * 2**-20 = 2**20 is fine
    out = roipool.roi_pooling(data, np.array([[0, 0, 0, 2.0**40, 2.0**40]]), 2, 2.0**-20)
    assert out[0, 0].tolist() == [[15, 0], [0, 0]]  # bin (0, 0) holds the whole map


def test_widest_roi_widths_in_64_bits():
    """x1 = -(2**31 - 1), x2 = 2**31 - 1: a width of 2**32 - 1 overflows a C int;
    roipool computes it in 64 bits and clips the bins (compared with the model)."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1, 2, 5, 7))
    big = 2**31 - 1
    rois = np.array([[0, -big, -big, big, big], [0, -big, 0, big, 4], [0, 0, -big, 6, big]], np.float64)
    for pooled in ((1, 1), (2, 3), (7, 7), (2**16, 1)):
        if pooled == (2**16, 1):
            rois_ = rois[:1]
        else:
            rois_ = rois
        exp = model.expect_forward(data, rois_, pooled, 1.0, return_argmax=True)
        assert exp.valid
        out, am = roipool.roi_pooling(data, rois_, pooled, 1.0, return_argmax=True)
        assert check.bits_equal(out, exp.results[0]), pooled
        assert np.array_equal(am, exp.results[1]), pooled


def test_extreme_spatial_scales():
    data = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    rois = np.array([[0, 1, 1, 3, 3], [0, 3, 3, 3, 3]], np.float32)
    # 1e-46 and 5e-324 round to 0 as a float32: every ROI becomes pixel (0, 0)
    for s in (1e-46, 5e-324, 1e-40):
        out = roipool.roi_pooling(data, rois, 2, s)
        assert (out[:, 0] == 0).all() and (out[:, 1] == 16).all(), s
    # 3e38 is a float32; only coordinate 0 survives it
    out = roipool.roi_pooling(data, np.zeros((1, 5), np.float32), 1, 3e38)
    assert out[0, :, 0, 0].tolist() == [0, 16]
    with pytest.raises(ValueError, match="row 0"):
        roipool.roi_pooling(data, rois, 1, 3e38)
    # beyond float32: MXNet cannot store it, nor can torchvision for float32
    # data (it holds the scale in the data's dtype); for float64 data it can
    for compat in ("mxnet", "torchvision"):
        with pytest.raises(ValueError, match="spatial_scale"):
            roipool.roi_pooling(data, rois, 1, 1e39, compat=compat)
    out = roipool.roi_pooling(data.astype(np.float64), np.zeros((1, 5)), 1, 1e300,
                              compat="torchvision")
    assert out[0, :, 0, 0].tolist() == [0, 16]
    for bad in (0.0, -0.0, -1e-300, math.inf, math.nan, True):
        with pytest.raises(ValueError, match="spatial_scale"):
            roipool.roi_pooling(data, rois, 1, bad)


def test_out_of_range_values_raise_the_documented_error_under_W_error():
    """Values beyond the data's type become inf when rois and scale are converted
    (docs/semantics.md); that must not surface as NumPy's RuntimeWarning, which `-W error`
    would turn into an exception other than the ValueError naming the row."""
    x32, x16 = np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 4, 4), np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data, rois, scale, row in ((x32, [[0, 0, 0, 1, 1], [0, 0, 0, 1e300, 1]], 1.0, 1),
                                       (x16, [[0, 0, 0, 1e6, 1]], 1.0, 0),
                                       (x16, [[0, 1, 0, 1, 1]], 1e30, 0),
                                       (x32, [[1e300, 0, 0, 1, 1]], 1.0, 0)):
            with pytest.raises(ValueError, match=rf"rois row {row}\b"):
                roipool.roi_pooling(data, np.array(rois), 1, scale)
        with pytest.raises(ValueError, match=r"rois row 0\b"):
            roipool.roi_pooling_backward(np.zeros((1, 1, 1, 1), np.float16), np.array([[1e300, 0, 0, 1, 1]]),
                                         np.zeros((1, 1, 1, 1), np.int32), (1, 1, 4, 4))


def test_batch_index_edges():
    data = np.arange(2 * 16, dtype=np.float32).reshape(2, 1, 4, 4)
    ok = np.array([[-0.99, 0, 0, 0, 0], [1.999, 0, 0, 0, 0], [0, 0, 0, 0, 0]], np.float64)
    out = roipool.roi_pooling(data, ok, 1, 1.0)
    assert out.ravel().tolist() == [0, 16, 0]  # trunc toward zero
    for r, b in enumerate([-1, 2, 2**31, -(2**63), 1e300, math.nan, math.inf, -math.inf]):
        rois = np.zeros((r + 1, 5))
        rois[r, 0] = b
        with pytest.raises(ValueError, match=rf"row {r}\b"):
            roipool.roi_pooling(data, rois, 1, 1.0)
        with pytest.raises(ValueError, match=rf"row {r}\b"):
            roipool.roi_pooling_backward(np.zeros((r + 1, 1, 1, 1), np.float32), rois,
                                         np.zeros((r + 1, 1, 1, 1), np.int32), data.shape)


# ----------------------------------------------------------------------------- huge batch
#
# The kernels group ROIs by image with O(N) tables. A batch far larger than the ROI
# count only exists as a zero-stride view (or with empty images); roipool renumbers
# the images the ROIs use first (_arrays.compact_batch). Before that fix, N near
# 2**61 wrapped `malloc((N + 1) * 8)` to a tiny block (SIGSEGV), and N = 2**31 took
# 16 GiB and ~30 s for a 1-element result.


def test_huge_broadcast_batch_forward_gives_the_result():
    """Near 2**61 images: the table's byte count would wrap 64 bits."""
    proc = run_isolated("""
        import numpy as np, roipool
        N = 2**61 - 1
        data = np.broadcast_to(np.float32(5), (N, 1, 1, 1))
        rois = np.array([[0, 0, 0, 0, 0], [2.0**60, 0, 0, 0, 0], [2.0**61 - 2.0**37, 0, 0, 0, 0]])
        out = roipool.roi_pooling(data, rois, 1, 1.0)
        assert out.ravel().tolist() == [5.0] * 3, out
        print("RESULT")
    """)
    assert proc.returncode == 0 and "RESULT" in proc.stdout, \
        "roi_pooling on a (2**61-1, 1, 1, 1) view: " + describe(proc)


def test_huge_data_shape_batch_backward_gives_the_result():
    """data_shape (2**61 - 1, 0, 1, 1) is an empty, representable gradient; its ROIs
    are still checked against N."""
    proc = run_isolated("""
        import numpy as np, roipool
        N = 2**61 - 1
        g = np.zeros((2, 0, 1, 1), np.float32)
        am = np.zeros((2, 0, 1, 1), np.int32)
        grad = roipool.roi_pooling_backward(g, np.array([[2.0**61 - 2.0**37, 0, 0, 1, 1], [0, 0, 0, 1, 1]]),
                                            am, (N, 0, 1, 1))
        assert grad.shape == (N, 0, 1, 1)
        try:
            roipool.roi_pooling_backward(g, np.array([[1, 0, 0, 1, 1], [2.0**61, 0, 0, 1, 1]]),
                                         am, (N, 0, 1, 1))
        except ValueError as e:
            assert "row 1" in str(e), e
            print("RESULT")
    """)
    assert proc.returncode == 0 and "RESULT" in proc.stdout, \
        "roi_pooling_backward on data_shape (2**61-1, 0, 1, 1): " + describe(proc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_broadcast_batch_gives_the_same_bits_as_one_image(dtype):
    """Renumbering the images is invisible: every ROI of a (2**17, C, H, W) or
    (2**40, ...) zero-stride batch pools the one image that batch repeats."""
    rng = np.random.default_rng(5)
    img = rng.standard_normal((1, 6, 9, 11)).astype(dtype)
    xy = rng.uniform(-3, 14, (40, 4))
    top = float(np.finfo(dtype).max)
    for N in (2**17, 2**40):
        # batch indices as the data's type holds them (rois are converted to it)
        b = rng.uniform(0, min(N, top), 40).astype(dtype)
        b[::7] = np.nextafter(dtype(min(N, top)), dtype(0))  # the last image it can name
        assert (np.trunc(b.astype(np.float64)) < N).all()
        rois = np.column_stack([b, xy])
        data = np.broadcast_to(img, (N,) + img.shape[1:])
        want = roipool.roi_pooling(img, np.column_stack([np.zeros(40), xy]), (3, 2), 0.7,
                                   return_argmax=True)
        got = roipool.roi_pooling(data, rois, (3, 2), 0.7, return_argmax=True)
        assert check.bits_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), N


def test_bad_rows_in_a_huge_batch_are_reported_as_before():
    """The first bad row, its kind and N in the message are the caller's, not
    the renumbered ones."""
    N = 2**40
    data = np.broadcast_to(np.float32(1), (N, 2, 3, 3))
    cases = [(N, 2, "outside"), (-1, 1, "outside"), (np.nan, 3, "not finite"),
             (2.0**41, 0, "outside")]
    for bad, row, words in cases:
        rois = np.array([[N - 2**20, 0, 0, 2, 2]] * 4, np.float64)
        rois[row, 0] = bad
        rois[row + 1:, 2] = np.inf  # later rows are bad too: the first one is named
        with pytest.raises(ValueError, match=rf"rois row {row}\b.*{words}.*{N}|rois row {row}\b.*{words}"):
            roipool.roi_pooling(data, rois, 2, 1.0)
    rois = np.array([[N - 2**20, 0, 0, 2, 2], [1, 0, np.inf, 2, 2]], np.float64)
    with pytest.raises(ValueError, match=r"rois row 1\b.*coordinate"):
        roipool.roi_pooling(data, rois, 2, 1.0)


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer needs an unlimited address space")
def test_work_and_memory_scale_with_rois_not_with_batch():
    """One ROI on a (2**31, 1, 1, 1) zero-stride view -- a 4-byte result -- under a
    1 GiB address-space limit (the O(N) tables alone would be 16 GiB + 64 GiB)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = run_isolated("""
        import numpy as np, roipool
        for N in (2**31, 2**50):
            data = np.broadcast_to(np.float32(5), (N, 1, 1, 1))
            rois = np.array([[N // 2, 0, 0, 0, 0]], np.float64)
            out = roipool.roi_pooling(data, rois, 1, 1.0)
            print("RESULT", out.ravel().tolist())
    """, preexec=limit, timeout=300)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split("\n")[:2] == ["RESULT [5.0]"] * 2, \
        "1 ROI on a huge broadcast batch did not give its 1-element result: " + describe(proc)


# ----------------------------------------------------------------------------- threads


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer needs an unlimited address space")
@pytest.mark.skipif(not roipool.openmp_enabled(), reason="serial build")
def test_thread_count_the_os_cannot_give_is_not_fatal():
    """When the OS cannot create the threads asked for (here: a 4 GiB address-space
    limit and 8 MiB stacks; in a container: a pids limit), libgomp prints "Thread
    creation failed" and exits the whole process. roipool used to pass up to 4096
    threads through; it now uses at most the processors it may run on (or OpenMP's
    default if larger), so the call gives the result."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    proc = run_isolated("""
        import numpy as np, roipool
        data = np.random.default_rng(0).standard_normal((2, 16, 32, 32)).astype(np.float32)
        rois = np.array([[i % 2, 0, 0, 30, 30] for i in range(2000)], np.float32)
        ref = roipool.roi_pooling(data, rois, 7, 1.0, num_threads=1)
        for nt in (1024, 2**31 - 1, 2**70):
            out = roipool.roi_pooling(data, rois, 7, 1.0, num_threads=nt)
            assert np.array_equal(out, ref)
            g = roipool.roi_pooling_backward(np.ones_like(out), rois, np.zeros(out.shape, np.int32),
                                             data.shape, num_threads=nt)
            assert g[:, :, 0, 0].sum() == out.size
        print("RESULT")
    """, preexec=limit)
    assert proc.returncode == 0 and "RESULT" in proc.stdout, \
        "num_threads=1024 under a 4 GiB address-space limit killed the process: " + describe(proc)


@pytest.mark.parametrize("dtype, sample_bytes", [(np.float32, 32), (np.float64, 48)])
def test_roi_align_sample_tables_too_big_name_their_size(dtype, sample_bytes):
    """4096 boxes of 46000 x 46000 with adaptive sampling: 46000**2 samples
    each (under the 2**31 a box may have), 277 TB of tables in all. The
    MemoryError says how many samples of how many bytes; nothing is written."""
    rois = np.tile(np.array([0, 0, 0, 46000, 46000], dtype), (4096, 1))
    samples = 4096 * 46000 ** 2
    data = np.ones((1, 1, 2, 2), dtype)
    out = np.full((4096, 1, 1, 1), 5, dtype)
    with pytest.raises(MemoryError) as ei:
        roipool.roi_align(data, rois, 1, 1.0, 0, out=out)
    assert f"{samples} samples of {sample_bytes} bytes" in str(ei.value)
    assert (out == 5).all()
    with pytest.raises(MemoryError) as ei:
        roipool.roi_align_backward(np.ones((4096, 1, 1, 1), dtype), rois, (1, 1, 2, 2), 1.0, 0)
    assert f"{samples} samples of {sample_bytes} bytes" in str(ei.value)
