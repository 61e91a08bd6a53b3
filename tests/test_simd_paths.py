"""Every SIMD path this CPU supports gives bit-identical results.

The paths are the same C source built for different instruction sets and
chosen at import (ROIPOOL_ISA forces one). A wrong blend or a lane mix-up
shows as a difference against the baseline path, which is scalar-simple
16-byte vectors, and against the plain-loop reference."""
import os
import subprocess
import sys

import numpy as np
import pytest

import roipool
from roipool._reference import forward as ref_forward

from helpers import bfloat16

# float16/bfloat16 have kernels of their own (loads and stores converting in
# registers) on every path
DTYPES = [np.float32, np.float64, np.float16] + ([bfloat16] if bfloat16 is not None else [])

SUPPORTED = roipool.supported_isas()


@pytest.fixture
def restore_isa():
    before = roipool.get_isa()
    yield
    roipool.set_isa(before)


def _cases():
    rng = np.random.default_rng(11)
    # channel counts around every vector width and unroll boundary
    for C in (1, 3, 4, 7, 8, 9, 16, 31, 32, 33, 64, 65, 100):
        for dtype in DTYPES:
            N, H, W = 2, int(rng.integers(1, 14)), int(rng.integers(1, 14))
            data = rng.integers(-4, 5, (N, C, H, W)).astype(dtype)  # many ties
            data[rng.random(data.shape) < 0.05] = np.nan
            data[rng.random(data.shape) < 0.05] = -np.inf
            data[rng.random(data.shape) < 0.05] = -0.0  # ties with +0.0 keep the first
            R = 9
            xy = rng.uniform(-4, 18, (R, 4))
            rois = np.column_stack([rng.integers(0, N, R), xy]).astype(dtype)
            yield data, rois, (int(rng.integers(1, 5)), int(rng.integers(1, 5)))


@pytest.mark.parametrize("isa", SUPPORTED)
def test_path_equals_baseline_and_reference(isa, restore_isa):
    for data, rois, pooled in _cases():
        roipool.set_isa("baseline")
        base = roipool.roi_pooling(data, rois, pooled, 0.7, return_argmax=True)
        assert roipool.set_isa(isa) == isa
        got = roipool.roi_pooling(data, rois, pooled, 0.7, return_argmax=True, num_threads=2)
        ref = ref_forward(data, rois, pooled, 0.7)
        for g, b, r in zip(got, base, ref):
            np.testing.assert_array_equal(g.view(np.uint8), b.view(np.uint8))
            np.testing.assert_array_equal(g, r)


# Each path falls back to the next one down in its own family.
FALLBACK = {"avx512": "avx2", "avx2": "baseline", "neon": "baseline"}


def _expected_path(name):
    while name not in SUPPORTED:
        name = FALLBACK[name]
    return name


def test_set_isa_falls_back_within_its_family_and_rejects_unknown(restore_isa):
    assert roipool._config.ISA_NAMES == ("baseline", "avx2", "avx512", "neon")
    assert roipool.set_isa("baseline") == "baseline"
    assert roipool.get_isa() == "baseline"
    for name in ("avx512", "avx2", "neon"):
        assert roipool.set_isa(name) == _expected_path(name)
        assert roipool.get_isa() == _expected_path(name)
    with pytest.raises(ValueError, match="isa"):
        roipool.set_isa("sse9")


@pytest.mark.parametrize("value", [None, "", "sse9"])
def test_default_path_is_the_best_supported(value):
    code = "import roipool; print(roipool.get_isa())"
    env = dict(os.environ)
    env.pop("ROIPOOL_ISA", None)
    if value is not None:
        env["ROIPOOL_ISA"] = value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    # one family per CPU: the last supported name is the widest path
    assert out == SUPPORTED[-1]


@pytest.mark.parametrize("isa", SUPPORTED)
def test_environment_forces_path(isa):
    code = "import roipool; print(roipool.get_isa())"
    env = dict(os.environ, ROIPOOL_ISA=isa)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    assert out == isa



@pytest.fixture
def restore_tuning():
    before = roipool._roi_pool._set_tuning()
    yield
    roipool._roi_pool._set_tuning(*before)


@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_channel_block_size_gives_the_reference(isa, dtype, restore_isa, restore_tuning):
    # The block of channels pooled together shrinks with the cache budget
    # (8, 16, ..., 64 channels); each size takes other vector loops and tails.
    rng = np.random.default_rng(5)
    N, C, H, W = 2, 70, 9, 11
    data = rng.integers(-3, 4, (N, C, H, W)).astype(dtype)
    data[rng.random(data.shape) < 0.03] = np.nan
    rois = np.column_stack([rng.integers(0, N, 12), rng.uniform(-3, 14, (12, 4))]).astype(dtype)
    ref = ref_forward(data, rois, (3, 2), 0.9)
    roipool.set_isa(isa)
    for block in range(8, 72, 8):
        roipool._roi_pool._set_tuning(cache_budget=block * H * W * data.itemsize)
        got = roipool.roi_pooling(data, rois, (3, 2), 0.9, return_argmax=True, num_threads=2)
        np.testing.assert_array_equal(got[0], ref[0], err_msg=f"block {block}")
        np.testing.assert_array_equal(got[1], ref[1], err_msg=f"block {block}")


def _sysfs_l2_bytes():
    """The L2 size Linux reports in sysfs (an independent source), else 0."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in sorted(os.listdir(base)):
            with open(os.path.join(base, index, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(base, index, "size")) as f:
                size = f.read().strip()
            return int(size[:-1]) * {"K": 1 << 10, "M": 1 << 20}[size[-1]]
    except (OSError, ValueError, KeyError):
        pass
    return 0


KiB = 1024

# (L2 size the C library reports, channel block budget): half the L2, at least
# 128 KiB, at most 1 MiB, and 256 KiB when the size is unknown (0 or negative).
L2_BUDGETS = [
    (0, 256 * KiB),
    (-1, 256 * KiB),
    (128 * KiB, 128 * KiB),
    (256 * KiB, 128 * KiB),
    (512 * KiB, 256 * KiB),
    (1024 * KiB, 512 * KiB),
    (1280 * KiB, 640 * KiB),
    (2048 * KiB, 1024 * KiB),
    (32768 * KiB, 1024 * KiB),
]


@pytest.mark.parametrize("l2, budget", L2_BUDGETS)
def test_block_budget_from_the_l2_size(l2, budget, monkeypatch):
    monkeypatch.setattr(roipool._roi_pool, "l2_cache_bytes", lambda: l2)
    assert roipool._config.block_budget() == budget


def test_import_sets_the_block_budget_from_this_machines_l2():
    """The import applies block_budget() (whose values the table above pins) to
    the L2 size the C library reports, which is the one sysfs reports."""
    l2 = roipool._roi_pool.l2_cache_bytes()
    if l2 and _sysfs_l2_bytes():  # glibc reports it; musl and others give 0
        assert l2 == _sysfs_l2_bytes()
    code = ("import roipool; print(roipool._roi_pool._set_tuning()[0], "
            "roipool._roi_pool.l2_cache_bytes())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert int(out[1]) == l2
    assert int(out[0]) == roipool._config.block_budget()


# Two-pixel bins whose running max meets a signed-zero tie or a NaN:
# (left, right) -> (result, argmax). "v > b ? v : b" keeps the first of equal
# values, so -0.0 then +0.0 gives -0.0 (FMAXNM, vmaxnmq, would give +0.0) and
# a NaN never wins (FMAX, vmaxq, would let it). Both NaN: nothing beats init.
NAN = float("nan")
TIES = [((-0.0, 0.0), (-0.0, 0)), ((0.0, -0.0), (0.0, 0)), ((NAN, -0.0), (-0.0, 1)),
        ((-0.0, NAN), (-0.0, 0)), ((NAN, 0.0), (0.0, 1)), ((NAN, NAN), (None, -1))]


@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_signed_zero_ties_and_nans_on_every_path(isa, dtype, restore_isa):
    if dtype == "bfloat16":
        from helpers import bfloat16
        if bfloat16 is None:
            pytest.skip("bfloat16 needs ml_dtypes")
        dtype = bfloat16
    C = 37  # 4-, 2- and 1-vector loops and a scalar tail on every path
    pair = np.array([TIES[c % len(TIES)][0] for c in range(C)])
    data = pair.astype(dtype).reshape(1, C, 1, 2)
    rois = np.array([[0, 0, 0, 1, 0]], np.float32)  # one bin: pixels (0, 0), (0, 1)
    assert roipool.set_isa(isa) == isa
    out, arg = roipool.roi_pooling(data, rois, (1, 1), 1.0, return_argmax=True)
    none_ = ref_forward(np.full((1, 1, 1, 2), NAN, dtype), rois, (1, 1), 1.0)[0]  # init
    want = [TIES[c % len(TIES)][1] for c in range(C)]
    got_bits = out.reshape(C).view(f"u{out.itemsize}")
    init_bits = none_.reshape(1).view(f"u{out.itemsize}")[0]
    for c, (value, index) in enumerate(want):
        expect = init_bits if value is None else np.array(value, dtype).view(f"u{out.itemsize}")
        assert got_bits[c] == expect and arg.reshape(C)[c] == index, (c, TIES[c % len(TIES)])


@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("stream", [False, True])
def test_result_transposes_on_every_tile_shape(isa, stream, restore_isa, restore_tuning):
    # The scratch -> out transposes go by tiles (16 x 16 on AVX-512, 8 x 8 on
    # AVX2, 4 x 4 / 8 x 8 on NEON): bin counts a few past a tile (17, 18, 19,
    # 33, 49 = 7 x 7), a tile's worth exactly (16, 32) and channel counts
    # around 16 take the masked, scalar and narrower-tile ends; `stream`
    # forces the staged non-temporal copy that large outputs take.
    rng = np.random.default_rng(17)
    roipool._roi_pool._set_tuning(stream_bytes=0 if stream else 1 << 62)
    roipool.set_isa(isa)
    for C in (15, 16, 17, 33, 48):
        for pooled in ((17, 1), (2, 9), (19, 1), (4, 4), (4, 8), (3, 11), (7, 7)):
            data = rng.standard_normal((1, C, 10, 12)).astype(np.float32)
            xy = rng.uniform(-2, 14, (5, 4))
            rois = np.column_stack([np.zeros(5), xy]).astype(np.float32)
            ref = ref_forward(data, rois, pooled, 1.0)
            got = roipool.roi_pooling(data, rois, pooled, 1.0, num_threads=2)
            np.testing.assert_array_equal(got.view(np.uint32), ref[0].view(np.uint32),
                                          err_msg=f"C {C} pooled {pooled}")
