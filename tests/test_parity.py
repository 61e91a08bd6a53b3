"""Property tests: roipool equals the plain-loop reference exactly, out and argmax.

Random shapes (including empty ones), ROIs inside, outside and degenerate, scales
(powers of two, 0.7, arbitrary, above 1), both compat rules, every dtype, memory
layouts and thread counts. "Exactly" means bit for bit: no tolerance.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import roipool
from roipool._reference import FLT_MAX, backward as ref_backward, forward as ref_forward
from helpers import bfloat16, bits

DTYPES = [np.float32, np.float64, np.float16] + ([bfloat16] if bfloat16 is not None else [])
SCALES = [1.0, 0.5, 0.25, 0.0625, 0.125, 0.7, 0.9, 1 / 3, 1.3, 2.0, 3.0]

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def cases(draw, dtypes=DTYPES):
    dtype = draw(st.sampled_from(dtypes))
    N = draw(st.integers(1, 3))
    C = draw(st.sampled_from([0, 1, 2, 3, 5, 8, 9, 17]))
    H = draw(st.integers(0, 11))
    W = draw(st.integers(0, 11))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    # small integers make ties common; sprinkle NaN, -inf, -FLT_MAX, +inf
    data = rng.integers(-3, 4, (N, C, H, W)).astype(np.float64)
    specials = np.array([np.nan, -np.inf, -FLT_MAX, np.inf, -0.0])
    mask = rng.random(data.shape) < draw(st.sampled_from([0.0, 0.05, 0.3]))
    data[mask] = rng.choice(specials, mask.sum())
    if draw(st.booleans()):
        data += rng.standard_normal(data.shape)
    with np.errstate(over="ignore"):  # -FLT_MAX is -inf in float16/bfloat16
        data = data.astype(dtype)
    R = draw(st.integers(0, 7))
    scale = draw(st.one_of(st.sampled_from(SCALES), st.floats(0.05, 4.0)))
    span = max(H, W, 1) / scale
    kind = draw(st.sampled_from(["inside", "anywhere", "integer", "degenerate"]))
    if kind == "integer":
        xy = rng.integers(int(-span), int(2 * span) + 2, (R, 4)).astype(np.float64)
    elif kind == "inside":
        lo = rng.uniform(0, span, (R, 2))
        xy = np.concatenate([lo, lo + rng.uniform(0, span, (R, 2))], axis=1)
    else:
        xy = rng.uniform(-span, 2 * span, (R, 4))
        if kind == "degenerate":  # x2 < x1, y2 < y1, halves
            xy[:, 2:] = xy[:, :2] - rng.integers(0, 3, (R, 2))
            xy = np.round(xy * 2) / 2
    b = rng.integers(0, N, R) + rng.uniform(0, 0.99, R)  # trunc()
    rois = np.column_stack([b, xy])
    rois_dtype = draw(st.sampled_from([np.float32, np.float64, "data"]))
    rois = rois.astype(dtype if rois_dtype == "data" else rois_dtype)
    pooled = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    compat = draw(st.sampled_from(["mxnet", "torchvision"]))
    threads = draw(st.sampled_from([1, 2, 3]))
    layout = draw(st.sampled_from(["nchw", "channels_last", "strided"]))
    return data, rois, pooled, scale, compat, threads, layout


def relayout(data, layout):
    if layout == "channels_last":
        return np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "strided":
        big = np.zeros(data.shape[:3] + (2 * data.shape[3],), data.dtype)
        big[..., ::2] = data
        return big[..., ::2]
    return data


@SETTINGS
@given(cases())
def test_forward_equals_reference(case):
    data, rois, pooled, scale, compat, threads, layout = case
    want_out, want_am = ref_forward(data, rois, pooled, scale, compat)
    d = relayout(data, layout)
    out, am = roipool.roi_pooling(d, rois, pooled, scale, return_argmax=True,
                                  num_threads=threads, compat=compat)
    assert out.dtype == data.dtype and am.dtype == np.int32
    assert out.shape == want_out.shape
    np.testing.assert_array_equal(bits(out), bits(want_out))
    np.testing.assert_array_equal(am, want_am)
    # without argmax the values are the same
    out2 = roipool.roi_pooling(d, rois, pooled, scale, num_threads=threads, compat=compat)
    np.testing.assert_array_equal(bits(out2), bits(want_out))


@SETTINGS
@given(cases(), st.integers(0, 2 ** 32 - 1))
def test_backward_equals_reference(case, seed):
    data, rois, pooled, scale, compat, threads, _ = case
    _, am = ref_forward(data, rois, pooled, scale, compat)
    rng = np.random.default_rng(seed)
    grad_out = rng.standard_normal(am.shape).astype(data.dtype)
    want = ref_backward(grad_out, rois, am, data.shape)
    got = roipool.roi_pooling_backward(grad_out, rois, am, data.shape, num_threads=threads)
    assert got.dtype == data.dtype and got.shape == data.shape
    np.testing.assert_array_equal(bits(got), bits(want))


def test_reference_agrees_with_itself_on_the_seed():
    """The oracle is only an oracle if it gets the hand-computed seed right."""
    x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    out, am = ref_forward(x, [[0, 0, 0, 4, 4]], (2, 2), 0.7)
    np.testing.assert_array_equal(out[0, 0], [[7, 9], [19, 21]])
    out, am = ref_forward(x, [[0, 0, 0, 4, 4]], (2, 2), 1.0)
    np.testing.assert_array_equal(am[0, 0], [[14, 16], [26, 28]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_realistic_shapes_equal_reference(dtype):
    """A detector-like shape: many channels, ROIs from tiny to the whole map."""
    rng = np.random.default_rng(3)
    N, C, H, W = 2, 70, 19, 25
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    R = 24
    wh = np.exp(rng.uniform(np.log(16), np.log(16 * np.array([W, H])), (R, 2)))
    x1 = rng.uniform(0, 16 * W - wh[:, 0])
    y1 = rng.uniform(0, 16 * H - wh[:, 1])
    rois = np.column_stack([rng.integers(0, N, R), x1, y1, x1 + wh[:, 0] - 1,
                            y1 + wh[:, 1] - 1]).astype(np.float32)
    want = ref_forward(data, rois, (7, 7), 1 / 16)
    got = roipool.roi_pooling(data, rois, (7, 7), 1 / 16, return_argmax=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
