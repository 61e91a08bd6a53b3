"""roipool against the real OpenVINO (CPU plugin, one opset-2 ROIPooling node,
method "max"): equal bit for bit except where docs/semantics.md ("Where
frameworks differ", OpenVINO) says it differs, the bin bounds, which OpenVINO
takes in integer arithmetic (floor(k * roi_w / PW), ceil((k + 1) * roi_w / PW))
and the rule in float32 (floor(k * bin_w), ceil((k + 1) * bin_w), bin_w =
roi_w / PW rounded). Skipped without openvino, except in CI's peer phase
(ROIPOOL_REQUIRE_PEERS=1)."""
import numpy as np
import pytest

from helpers import SANITIZED, bits, import_peer, load_script

if SANITIZED:  # tools/asan.sh: OpenVINO cannot load there (bench peers, _import_openvino)
    pytest.skip("OpenVINO under AddressSanitizer; CI's peer phase runs these tests",
                allow_module_level=True)
ov = import_peer("openvino", required_by="ROIPOOL_REQUIRE_PEERS")

import roipool  # noqa: E402
from roipool import _workloads  # noqa: E402

peers = load_script("bench/roipool_bench/peers.py", "bench_peers")


def openvino(data, rois, pooled, scale, precision="f32"):
    compiled, runs_in = peers.openvino_model(ov, data.shape, rois.shape, pooled, scale,
                                             precision, 1)
    return peers.openvino_run(compiled, data, rois), runs_in


def test_the_last_bin_of_a_57_wide_roi():
    """roi_w = 57, PW = 7: 7 * float32(57 / 7) = 57.000004, so the rule's last
    bin ends at ceil(57.000004) = 58 and holds column 57; OpenVINO's ends at
    7 * 57 / 7 = 57. The other six bins are the same in both."""
    data = np.arange(2 * 3 * 64, dtype=np.float32).reshape(1, 2, 3, 64)
    data[0, 0, :, 57] = 1000.0  # only the rule's last bin reaches it
    rois = np.array([[0, 0, 0, 56, 2]], np.float32)  # x 0..56, y 0..2: 57 x 3
    mine = roipool.roi_pooling(data, rois, (1, 7), 1.0)
    theirs, _ = openvino(data, rois, (1, 7), 1.0)
    assert mine[0, 0, 0, 6] == 1000.0 and mine[0, 1, 0, 6] == data[0, 1, 2, 57]
    assert theirs[0, 0, 0, 6] == data[0, 0, 2, 56] and theirs[0, 1, 0, 6] == data[0, 1, 2, 56]
    assert (bits(mine[..., :6]) == bits(theirs[..., :6])).all()
    # the first six bins end at column ceil(8.142858 (k + 1)) - 1, row 2 wins
    assert mine[0, 1, 0, :6].tolist() == data[0, 1, 2, [8, 16, 24, 32, 40, 48]].tolist()


def test_first_element_starts_the_max_and_batch_minus_one_ends_the_list():
    data = np.zeros((1, 1, 2, 4), np.float32)
    data[0, 0, :, :2] = -np.inf  # bin 0: all -inf
    data[0, 0, 0, 2:] = [np.nan, 1.0]  # bin 1: NaN first, then 1 and 2
    data[0, 0, 1, 2] = 2.0
    rois = np.array([[0, 0, 0, 3, 1], [-1, 0, 0, 3, 1], [0, 0, 0, 3, 1]], np.float32)
    theirs, _ = openvino(data, rois, (1, 2), 1.0)
    mine = roipool.roi_pooling(data, rois[:1], (1, 2), 1.0)
    assert mine[0, 0, 0].tolist() == [-np.finfo(np.float32).max, 2.0]
    assert theirs[0, 0, 0, 0] == -np.inf and np.isnan(theirs[0, 0, 0, 1])
    assert (theirs[1:] == 0).all()  # the rows from the -1 on
    with pytest.raises(ValueError, match="batch index"):
        roipool.roi_pooling(data, rois, (1, 2), 1.0)


def _bins(rois, scale, pooled, H, W):
    """Both rules' bin bounds, written out here: (OpenVINO's, the rule's), each
    ((hstart, hend), (wstart, wend)) of shape [R, P]. The corners are the same
    in both: C round() of the float32 product."""
    prod = (rois[:, 1:5] * np.float32(scale)).astype(np.float64)
    x1, y1, x2, y2 = (np.sign(prod) * np.floor(np.abs(prod) + 0.5)).astype(np.int64).T

    def integer(start, end, P, size):
        ext = np.maximum(end - start + 1, 1)[:, None]
        k = np.arange(P)[None, :]
        return (np.clip(k * ext // P + start[:, None], 0, size),
                np.clip(-(-(k + 1) * ext // P) + start[:, None], 0, size))

    def rule(start, end, P, size):
        b = (np.maximum(end - start + 1, 1).astype(np.float32) / np.float32(P))[:, None]
        k = np.arange(P, dtype=np.float32)[None, :]
        return (np.clip(np.floor(k * b).astype(np.int64) + start[:, None], 0, size),
                np.clip(np.ceil((k + 1) * b).astype(np.int64) + start[:, None], 0, size))

    return ((integer(y1, y2, pooled[0], H), integer(x1, x2, pooled[1], W)),
            (rule(y1, y2, pooled[0], H), rule(x1, x2, pooled[1], W)))


@pytest.mark.parametrize("name", ["batch4", "vgg16-frcnn-300", "tiny-0.7"])
def test_workloads_differ_only_where_the_bounds_do(name):
    """On the shared workloads every element is the same except in bins whose
    bounds the two rules compute differently, and there OpenVINO's value is
    the maximum over its integer bin. batch4 has such bins (64 x 64 maps at
    scale 1/8: ROIs 57 cells wide or high), the others none."""
    data, rois, pooled, scale = _workloads.make(name)
    mine = roipool.roi_pooling(data, rois, pooled, scale)
    theirs, _ = openvino(data, rois, pooled, scale)
    differ = np.argwhere(mine.view(np.uint32) != theirs.view(np.uint32))
    ((hs, he), (ws, we)), ((rhs, rhe), (rws, rwe)) = _bins(rois, scale, pooled, *data.shape[2:])
    for r, c, ph, pw in differ:
        assert (hs[r, ph], he[r, ph], ws[r, pw], we[r, pw]) != \
            (rhs[r, ph], rhe[r, ph], rws[r, pw], rwe[r, pw])
        window = data[int(rois[r, 0]), c, hs[r, ph]:he[r, ph], ws[r, pw]:we[r, pw]]
        assert theirs[r, c, ph, pw] == window.max()
    if name == "batch4":
        assert len(differ) > 1000  # 1,125 of 12.8 million
        assert len({(r, ph, pw) for r, _, ph, pw in differ}) < 100  # in a few dozen bins
    else:
        assert len(differ) == 0


def test_bfloat16_mode_is_the_float32_rule_on_rounded_inputs():
    """INFERENCE_PRECISION_HINT bf16 rounds data and rois to bfloat16 and runs
    the same kernel (max in bfloat16 is exact), widening the result: it equals
    roipool's float32 call on the rounded inputs, not roipool's bfloat16 call,
    whose every intermediate of the bin arithmetic is rounded to bfloat16 as
    MXNet's half_t does (docs/semantics.md, "Reduced precision"). A CPU without
    bfloat16 runs the model in float32."""
    ml_dtypes = import_peer("ml_dtypes", required_by="ROIPOOL_REQUIRE_PEERS")
    data, rois, pooled, scale = _workloads.make("vgg16-frcnn-300")
    theirs, runs_in = openvino(data, rois, pooled, scale, "bf16")
    if runs_in == "bf16":
        bf = ml_dtypes.bfloat16
        d16, r16 = data.astype(bf).astype(np.float32), rois.astype(bf).astype(np.float32)
        assert (bits(roipool.roi_pooling(d16, r16, pooled, scale)) == bits(theirs)).all()
        mine16 = roipool.roi_pooling(data.astype(bf), rois, pooled, scale).astype(np.float32)
        assert (bits(mine16) != bits(theirs)).any()
    else:
        assert runs_in == "f32"
        assert (bits(roipool.roi_pooling(data, rois, pooled, scale)) == bits(theirs)).all()
