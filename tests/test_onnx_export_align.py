"""roipool.torch.roi_align exported to ONNX (issue 25, point 1): one standard
``RoiAlign`` node (opset 16) from the legacy and the dynamo exporter, which
plain ONNX Runtime runs with eager's numbers bit for bit on a second input
with another box count; what ONNX cannot express raises at export."""
import warnings

import pytest

from helpers import import_peer

torch = import_peer("torch")
onnx = import_peer("onnx")
ort = import_peer("onnxruntime")

import roipool.torch as rt  # noqa: E402


class Pool(torch.nn.Module):
    """Only ops ONNX Runtime computes exactly like torch, so eager's numbers are
    the expected ones."""

    def __init__(self, sampling_ratio, aligned, scale=0.7, compat="torchvision"):
        super().__init__()
        self.args = ((3, 2), scale, sampling_ratio, aligned, compat)

    def forward(self, feats, boxes):
        return rt.roi_align(torch.relu(feats) * 2, boxes, *self.args)


def make_boxes(seed, k, size=26.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand((k, 2), generator=g) * size
    wh = torch.rand((k, 2), generator=g) * size * 0.6
    return torch.cat([torch.randint(0, 2, (k, 1), generator=g).float(), xy, xy + wh], 1)


def export(model, args, path, dynamo):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            import_peer("onnxscript")
            torch.onnx.export(model, args, str(path), dynamo=True, verbose=False,
                              dynamic_shapes={"feats": None, "boxes": {0: torch.export.Dim("k")}},
                              custom_translation_table=rt.onnx_translation_table())
        else:
            torch.onnx.export(model, args, str(path), dynamo=False, opset_version=17,
                              input_names=["feats", "boxes"], dynamic_axes={"boxes": {0: "k"}})


def run_onnx(path, feats, boxes):
    nodes = [n for n in onnx.load(str(path)).graph.node if n.op_type == "RoiAlign"]
    assert len(nodes) == 1
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {names[0]: feats.numpy(), names[1]: boxes.numpy()})[0], nodes[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("sampling_ratio,aligned", [(-1, False), (0, True), (2, True),
                                                    (1, False)])
@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_roialign_node_matches_eager(tmp_path, dynamo, sampling_ratio, aligned, dtype):
    g = torch.Generator().manual_seed(4)
    feats = torch.randn((2, 5, 20, 18), generator=g, dtype=dtype)
    # float64: ONNX holds the scale as a float32, which is compat "onnxruntime"
    model = Pool(sampling_ratio, aligned,
                 compat="onnxruntime" if dtype == torch.float64 else "torchvision")
    export(model, (feats, make_boxes(5, 4).to(dtype)), tmp_path / "m.onnx", dynamo)
    feats2, boxes2 = feats * 1.5 - 0.25, make_boxes(6, 11).to(dtype)
    got, node = run_onnx(tmp_path / "m.onnx", feats2, boxes2)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["coordinate_transformation_mode"] == (b"half_pixel" if aligned
                                                       else b"output_half_pixel")
    assert attrs["sampling_ratio"] == max(sampling_ratio, 0)
    with torch.no_grad():
        want = model(feats2, boxes2).numpy()
    assert got.shape == want.shape == (11, 5, 3, 2) and got.dtype == want.dtype
    assert (got == want).all()


def _messages(exc):
    out = []
    while exc is not None:
        out.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


@pytest.mark.parametrize("dtype, compat, match", [
    (torch.float16, "torchvision", "float32 or float64 input"),
    (torch.float64, "torchvision", "holds it as a float32"),
])
@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_export_refuses_what_onnx_cannot_express(tmp_path, dynamo, dtype, compat, match):
    feats = torch.randn((2, 5, 20, 18), dtype=dtype)
    with pytest.raises(Exception) as info:
        export(Pool(2, True, 0.7, compat), (feats, make_boxes(5, 4).to(dtype)),
               tmp_path / "m.onnx", dynamo)
    assert match in _messages(info.value)
    assert not (tmp_path / "m.onnx").exists()
