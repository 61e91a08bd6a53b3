"""The export round trip (issue 18, item 4): a torch module using
roipool.torch.roi_pool, exported with torch.onnx.export (both exporters, as
docs/pytorch.md describes), run by
roipool.onnx.InferenceSession, gives the module's outputs bit for bit, on
other box counts than the export's. Skips without torch/onnxruntime (and
onnxscript for the dynamo exporter), fails without them in CI's peer phase."""
import warnings

import numpy as np
import pytest

from helpers import bits, import_peer

torch = import_peer("torch")
import_peer("onnx")
import_peer("onnxruntime")
import roipool.onnx as ro  # noqa: E402
import roipool.torch as rt  # noqa: E402

SIZE, SCALE = (3, 2), 0.7


class Pooler(torch.nn.Module):
    """Only operations ONNX Runtime computes exactly as torch does (a matrix
    product would differ in the last bits), so eager's numbers are the target."""

    def forward(self, feats, boxes):
        y = rt.roi_pool(torch.relu(feats) * 2 - 1, boxes, SIZE, SCALE)
        return y.flatten(1), y.amax(dim=(2, 3))


def boxes(k, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand((k, 2), generator=g) * 30
    wh = torch.rand((k, 2), generator=g) * 25 - 2  # some inverted
    b = torch.randint(0, 2, (k, 1), generator=g).float()
    return torch.cat([b, torch.round((xy) * 4) / 4, torch.round((xy + wh) * 4) / 4], dim=1)


def export(path, dynamo):
    g = torch.Generator().manual_seed(0)
    args = (torch.randn((2, 5, 20, 18), generator=g), boxes(4, 1))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(Pooler(), args, str(path), dynamo=True,
                              dynamic_shapes={"feats": None, "boxes": {0: torch.export.Dim("k")}},
                              custom_translation_table=rt.onnx_translation_table(),
                              verbose=False)
        else:
            torch.onnx.export(Pooler(), args, str(path), dynamo=False,
                              input_names=["feats", "boxes"], output_names=["flat", "peak"],
                              dynamic_axes={"boxes": {0: "k"}}, opset_version=17)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_exported_module_runs_with_its_own_numbers(tmp_path, dynamo, monkeypatch):
    if dynamo:
        import_peer("onnxscript")
    export(tmp_path / "m.onnx", dynamo)
    sess = ro.InferenceSession(str(tmp_path / "m.onnx"))
    assert sess.uses_roipool
    calls = []
    real = ro._session.roipool.roi_pooling
    monkeypatch.setattr(ro._session.roipool, "roi_pooling",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    names = [a.name for a in sess.get_inputs()]
    g = torch.Generator().manual_seed(2)
    feats = torch.randn((2, 5, 20, 18), generator=g)
    for i, k in enumerate((1, 9, 40)):
        b = boxes(k, 10 + k)
        with torch.no_grad():
            want = Pooler()(feats, b)
        got = sess.run(None, {names[0]: feats.numpy(), names[1]: b.numpy()})
        assert len(calls) == i + 1  # roipool computed the pool, not ORT's kernel
        assert len(got) == len(want)
        for w, o in zip(want, got):
            assert o.shape == tuple(w.shape) and o.dtype == np.float32
            assert np.array_equal(bits(o), bits(w.numpy()))
