"""roipool.onnx.InferenceSession cuts at RoiAlign (issue 25, point 4), against
the real onnxruntime: a pool-only model (opset 10 and 16; avg and max;
half_pixel and output_half_pixel; float32 and float64), a Mask R-CNN-style
head (Conv -> RoiAlign -> Conv) and a model exported from
``roipool.torch.roi_align`` give plain ONNX Runtime's outputs bit for bit on
several box counts, with a spy proving roipool computed the pools; calls
roipool does not take the way ONNX Runtime does go to ONNX Runtime's kernel."""
import numpy as np
import pytest

from helpers import bits, import_peer

ort = import_peer("onnxruntime")
onnx = import_peer("onnx")
import roipool  # noqa: E402
import roipool.onnx as ro  # noqa: E402
from roipool.onnx import _session  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

CPU = ["CPUExecutionProvider"]
BOX_COUNTS = (0, 1, 7, 40)
roi_align = roipool.roi_align


@pytest.fixture
def align_calls(monkeypatch):
    calls = []

    def spy(*args, **kw):
        calls.append(kw)
        return roi_align(*args, **kw)

    monkeypatch.setattr(_session.roipool, "roi_align", spy)
    return calls


def assert_same(want, got):
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert np.array_equal(bits(a), bits(b))


def pool_model(opset, elem=TensorProto.FLOAT, head=False, **attrs):
    nodes = [helper.make_node("RoiAlign", ["F" if head else "X", "rois", "batch"], ["Y"],
                              **attrs)]
    inits = []
    if head:  # Mask R-CNN's shape: conv features -> RoiAlign -> conv on the crops
        rng = np.random.default_rng(1)
        dt = helper.tensor_dtype_to_np_dtype(elem)
        inits = [helper.make_tensor("W1", elem, [4, 4, 3, 3],
                                    rng.standard_normal(144).astype(dt).tolist()),
                 helper.make_tensor("W2", elem, [2, 4, 1, 1],
                                    rng.standard_normal(8).astype(dt).tolist())]
        nodes = ([helper.make_node("Conv", ["X", "W1"], ["C"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["C"], ["F"])] + nodes
                 + [helper.make_node("Conv", ["Y", "W2"], ["Z"])])
    graph = helper.make_graph(
        nodes, "align",
        [helper.make_tensor_value_info("X", elem, [2, 4, 20, 17]),
         helper.make_tensor_value_info("rois", elem, ["R", 4]),
         helper.make_tensor_value_info("batch", TensorProto.INT64, ["R"])],
        [helper.make_tensor_value_info("Z" if head else "Y", elem, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=8).SerializeToString()


def feeds(dtype=np.float32, scale=0.5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 4, 20, 17)).astype(dtype)
    out = []
    for k in BOX_COUNTS:
        xy = rng.uniform(-4, 40, (k, 2))
        wh = rng.uniform(0, 24, (k, 2))
        wh[: k // 4] *= 0.05
        out.append({"X": x, "rois": np.concatenate([xy, xy + wh], 1).astype(dtype),
                    "batch": rng.integers(0, 2, k).astype(np.int64)})
    return out


CASES = [(10, {}), (10, {"sampling_ratio": 2, "spatial_scale": 0.5}),
         (16, {}), (16, {"coordinate_transformation_mode": "output_half_pixel",
                         "sampling_ratio": 3, "spatial_scale": 0.7}),
         (16, {"coordinate_transformation_mode": "half_pixel", "spatial_scale": 0.3,
               "output_height": 3, "output_width": 5}),
         (16, {"mode": "max", "sampling_ratio": 2, "spatial_scale": 0.5})]


# ONNX Runtime's CPU Conv has no float64 kernel for every opset: the head is float32
@pytest.mark.parametrize("elem,head", [(TensorProto.FLOAT, False), (TensorProto.DOUBLE, False),
                                       (TensorProto.FLOAT, True)],
                         ids=["f32-pool", "f64-pool", "f32-head"])
@pytest.mark.parametrize("opset,attrs", CASES)
def test_equals_plain_onnxruntime(align_calls, opset, attrs, elem, head):
    model = pool_model(opset, elem, head, **attrs)
    plain, ours = ort.InferenceSession(model, providers=CPU), ro.InferenceSession(model,
                                                                                 providers=CPU)
    assert ours.uses_roipool
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    for feed in feeds(dtype, seed=opset):
        assert_same(plain.run(None, feed), ours.run(None, feed))
    assert len(align_calls) == len(BOX_COUNTS)
    assert all(c["compat"] == "onnxruntime" for c in align_calls)
    assert ours.get_outputs()[0].type == ("tensor(float)" if elem == TensorProto.FLOAT
                                          else "tensor(double)")


def test_flipped_aligned_adaptive_boxes_go_to_onnxruntime(align_calls):
    model = pool_model(16)
    plain, ours = ort.InferenceSession(model, providers=CPU), ro.InferenceSession(model,
                                                                                 providers=CPU)
    feed = feeds()[2]
    feed["rois"][3] = [10, 2, 4, 9]  # x2 < x1
    with pytest.raises(Exception) as want:
        plain.run(None, feed)
    with pytest.raises(Exception) as got:
        ours.run(None, feed)
    assert type(got.value) is type(want.value) and not align_calls


def test_bad_rows_raise_valueerror(align_calls):
    sess = ro.InferenceSession(pool_model(16), providers=CPU)
    feed = feeds()[2]
    feed["batch"][4] = 5
    with pytest.raises(ValueError, match="rois row 4"):
        sess.run(None, feed)
    feed = feeds()[2]
    with pytest.raises(Exception, match="Unexpected input data type"):
        sess.run(None, dict(feed, batch=feed["batch"].astype(np.int32)))


def test_model_exported_from_roipool_torch(tmp_path, align_calls):
    torch = import_peer("torch")
    import roipool.torch as rt
    import warnings

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, feats, boxes):
            return rt.roi_align(torch.relu(self.conv(feats)), boxes, 7, 0.5, 2, True)

    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    rows = torch.tensor([[0.0, 1, 1, 20, 20], [1, 3, 4, 11, 30]])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net(), (torch.randn(2, 4, 20, 17), rows), str(path), dynamo=False,
                          opset_version=17, input_names=["feats", "boxes"],
                          dynamic_axes={"boxes": {0: "k"}})
    plain, ours = ort.InferenceSession(str(path), providers=CPU), ro.InferenceSession(
        str(path), providers=CPU)
    assert ours.uses_roipool
    rng = np.random.default_rng(3)
    for k in BOX_COUNTS:
        xy = rng.uniform(0, 30, (k, 2))
        boxes = np.concatenate([rng.integers(0, 2, (k, 1)), xy, xy + rng.uniform(1, 20, (k, 2))],
                               1).astype(np.float32)
        feed = {"feats": rng.standard_normal((2, 4, 20, 17)).astype(np.float32),
                "boxes": boxes}
        assert_same(plain.run(None, feed), ours.run(None, feed))
    assert len(align_calls) == len(BOX_COUNTS)
