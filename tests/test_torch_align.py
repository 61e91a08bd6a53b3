"""roipool.torch.roi_align / RoIAlign on every deployment path (issue 25, point 1).

Against the real torchvision: the output and the gradient equal
``torchvision.ops.roi_align``'s CPU ones bit for bit (float32, float64,
float16; aligned and not; sampling ratios -1, 0, 1, 2; several scales). A
small detector (conv -> RoIAlign -> linear) built once with roipool's RoIAlign
and once with torchvision's (same weights) runs eager, under no_grad /
inference_mode, channels-last, torch.compile(fullgraph), FX, and saved with
jit.trace, jit.script and torch.export (dynamic box count): each saved program
is loaded in a new process and run on a second input with another box count,
where it must give torchvision's model's numbers. ``torch.library.opcheck``
passes for the four dtypes.
"""
import json
import warnings
from typing import List, Union

import pytest

from helpers import import_peer, run_python  # noqa: E402

torch = import_peer("torch")
torchvision = import_peer("torchvision")

import roipool.torch as rt  # noqa: E402
from roipool.torch import _ops as _torch_ops  # noqa: E402
# the RoIPool deployment tests' helpers and loader (same program names, data and checks)
from test_torch_deploy import _LOADER, assert_same, eager, make_boxes, train_step  # noqa: E402

SCALE = 0.5
SIZE = (3, 2)
SAMPLING = 2


class Detector(torch.nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.pool = pool
        self.head = torch.nn.Linear(6 * SIZE[0] * SIZE[1], 4)

    def forward(self, images: torch.Tensor, boxes: Union[torch.Tensor, List[torch.Tensor]]):
        feats = torch.relu(self.conv(images))[:, :, ::2, ::2]
        pooled = self.pool(feats, boxes)
        return pooled, self.head(pooled.flatten(1))


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = Detector(rt.RoIAlign(SIZE, SCALE, SAMPLING, aligned=True))
    tv_model = Detector(torchvision.ops.RoIAlign(SIZE, SCALE, SAMPLING, aligned=True))
    tv_model.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(1)
    images = torch.randn((2, 3, 40, 36), generator=g)
    images2 = torch.randn((2, 3, 40, 36), generator=g)
    return model, tv_model, (images, make_boxes(2, 5)), (images2, make_boxes(3, 9))


# ----------------------------------------------------------------------------- torchvision's numbers


def make_case(seed, dtype, scale, N=2, C=3, H=13, W=17, R=24):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((N, C, H, W), generator=g)
    image = max(H, W) / scale
    xy = torch.rand((R, 2), generator=g) * image * 1.2 - image * 0.1
    wh = torch.rand((R, 2), generator=g) * image * 0.5
    wh[: R // 3] *= 0.05  # boxes smaller than a cell
    b = torch.randint(0, N, (R, 1), generator=g).float()
    return x.to(dtype), torch.cat([b, xy, xy + wh], 1).to(dtype)


def run(fn, x, rois, *args):
    a = x.clone().requires_grad_(True)
    out = fn(a, rois, *args)
    w = torch.rand(out.shape, generator=torch.Generator().manual_seed(9)).to(out.dtype)
    (out * w).sum().backward()
    return out.detach(), a.grad


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.7, 1 / 16])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
def test_equals_torchvision_forward_and_gradient(dtype, sampling_ratio, aligned, scale):
    x, rois = make_case(int(scale * 100) + sampling_ratio, dtype, scale)
    args = ((3, 4), scale, sampling_ratio, aligned)
    want = run(torchvision.ops.roi_align, x, rois, *args)
    got = run(rt.roi_align, x, rois, *args)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert torch.equal(g, w)
    assert want[1].abs().sum() > 0
    with torch.no_grad():  # the direct eager path
        assert torch.equal(rt.roi_align(x, rois, *args), want[0])
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.argsort(rois[:, 0], stable=True)
    assert torch.equal(rt.roi_align(x, boxes, *args), want[0][order])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16,
                                   torch.bfloat16], ids=str)
@pytest.mark.parametrize("sampling_ratio,aligned", [(-1, False), (2, True)])
def test_opcheck(dtype, sampling_ratio, aligned):
    if dtype == torch.bfloat16:
        pytest.importorskip("ml_dtypes")
    x, rois = make_case(3, torch.float32, 0.5, H=9, W=11, R=7)
    x = x.to(dtype).requires_grad_(True)
    torch.library.opcheck(torch.ops.roipool.roi_align.default,
                          (x, rois.to(dtype), 0.5, 2, 3, sampling_ratio, aligned,
                           "torchvision", -1))


def test_bfloat16_is_the_float32_rule_rounded_once():
    """docs/semantics.md: bfloat16 = float32 arithmetic on widened data, rounded
    once; torchvision's float32 kernel gives the expected value."""
    pytest.importorskip("ml_dtypes")
    x, rois = make_case(5, torch.bfloat16, 0.5)
    got = rt.roi_align(x, rois, 3, 0.5, 2, True)
    want = torchvision.ops.roi_align(x.float(), rois.float(), 3, 0.5, 2, True).bfloat16()
    assert got.dtype == torch.bfloat16 and torch.equal(got, want)


def test_bad_rows_raise_valueerror_naming_the_row():
    x, rois = make_case(1, torch.float32, 1.0)
    bad = rois.clone()
    bad[4, 2] = float("nan")
    with pytest.raises(ValueError, match="rois row 4"):
        rt.roi_align(x, bad, 2)
    bad = rois.clone()
    bad[2, 0] = 7
    with pytest.raises(ValueError, match="rois row 2"):
        rt.roi_align(x.requires_grad_(True), bad, 2)
    with pytest.raises(ValueError, match="sampling_ratio"):
        rt.roi_align(x, rois, 2, sampling_ratio=-2)
    with pytest.raises(ValueError, match="compat"):
        rt.roi_align(x, rois, 2, compat="caffe")
    with pytest.raises(ValueError, match="Tensor\\[K, 5\\]"):
        rt.roi_align(x, rois[:, 1:], 2)


# ----------------------------------------------------------------------------- eager paths


def test_eager_forward_backward_second_input(case):
    model, tv_model, first, second = case
    for args in (first, second):
        got, got_grads = train_step(model, args)
        want, want_grads = train_step(tv_model, args)
        assert_same(got, want)
        assert_same(got_grads, want_grads)
    assert got[0].shape[0] == 9 and got_grads[0].abs().sum() > 0


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_inference_modes(case, mode):
    model, tv_model, _, second = case
    with getattr(torch, mode)():
        got = model(*second)
    assert not got[0].requires_grad
    assert_same(got, eager(tv_model, second))


def test_channels_last_input(case):
    model, _, _, (images, boxes) = case
    feats = torch.relu(model.conv(images)).detach()
    cl = feats.contiguous(memory_format=torch.channels_last)
    out = rt.roi_align(cl, boxes, SIZE, 1.0, 2)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, torchvision.ops.roi_align(feats, boxes, SIZE, 1.0, 2))
    a, b = cl.clone().requires_grad_(True), feats.clone().requires_grad_(True)
    rt.roi_align(a, boxes, SIZE, 1.0, 2).sum().backward()
    torchvision.ops.roi_align(b, boxes, SIZE, 1.0, 2).sum().backward()
    assert torch.equal(a.grad, b.grad) and a.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- compile, fx


def test_compile_fullgraph_no_graph_breaks(case):
    model, tv_model, first, second = case
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            explained = torch._dynamo.explain(model)(*first)
        assert explained.graph_break_count == 0, explained.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert_same(compiled(*second), eager(tv_model, second))
    got, got_grads = train_step(compiled, second)
    want, want_grads = train_step(tv_model, second)
    assert_same(got, want)
    assert_same(got_grads[:1], want_grads[:1])  # conv.weight: through roipool's backward


def test_fx_symbolic_trace_keeps_one_leaf(case):
    model, tv_model, _, second = case
    gm = torch.fx.symbolic_trace(model)
    calls = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert calls.count(rt.roi_align) == 1
    assert_same(eager(gm, second), eager(tv_model, second))


# ----------------------------------------------------------------------------- saved programs


@pytest.fixture(scope="module")
def loaded(case, tmp_path_factory):
    model, tv_model, first, second = case
    d = tmp_path_factory.mktemp("saved_align")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model).save(str(d / "script.pt"))
        with torch.no_grad():
            torch.jit.trace(model, first).save(str(d / "trace_no_grad.pt"))
        torch.jit.trace(model, first).save(str(d / "trace_grad.pt"))
    k = torch.export.Dim("k")
    for strict in (True, False):
        ep = torch.export.export(model, first, strict=strict,
                                 dynamic_shapes={"images": None, "boxes": {0: k}})
        targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
        assert "roipool.roi_align.default" in targets
        torch.export.save(ep, str(d / f"export_{'strict' if strict else 'nonstrict'}.pt2"))
    boxes2 = second[1][torch.argsort(second[1][:, 0], stable=True)]
    tv_model.zero_grad()
    tv_model(second[0], boxes2)[0].sum().backward()
    want = eager(tv_model, (second[0], boxes2))  # torchvision's model gives the expected numbers
    torch.save({"second": (second[0], boxes2),
                "second_list": [boxes2[boxes2[:, 0] == i, 1:] for i in range(2)],
                "want": want, "grad": tv_model.conv.weight.grad.clone()}, d / "data.pt")
    proc = run_python(["-c", _LOADER, str(d)], timeout=300, what="loading saved programs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["script", "script_list", "script_grad", "trace_no_grad",
                                  "trace_grad", "export_strict", "export_nonstrict"])
def test_saved_program_runs_in_new_process(loaded, path):
    assert loaded[path] is True, loaded[path]


def test_traced_program_records_the_operator(case):
    model, _, first, _ = case
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, first)
    assert "roipool::roi_align" in str(traced.pool.graph)


def _scripted_call(x: torch.Tensor, boxes: List[torch.Tensor], rois: torch.Tensor):
    return (rt.roi_align(x, boxes, [2, 3], 0.5, 2, True),
            rt.roi_align(x, rois, 2, 0.25, -1, False, "onnxruntime", 1))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_script_function_calling_roi_align(case):
    _, _, (images, rois), _ = case
    scripted = torch.jit.script(_scripted_call)
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    got = scripted(images, boxes, rois)
    order = torch.argsort(rois[:, 0], stable=True)
    assert torch.equal(got[0], torchvision.ops.roi_align(images, rois, [2, 3], 0.5, 2, True)[order])
    assert torch.equal(got[1], torchvision.ops.roi_align(images, rois, 2, 0.25, -1, False))


def test_num_threads_reaches_the_kernel(case, monkeypatch):
    _, _, (images, rois), _ = case
    used = []
    real = _torch_ops.roi_align
    monkeypatch.setattr(_torch_ops, "roi_align",
                        lambda *a, **kw: used.append(kw["num_threads"]) or real(*a, **kw))
    rt.roi_align(images, rois, 2, num_threads=1)
    rt.roi_align(images.clone().requires_grad_(True), rois, 2, num_threads=2)
    assert used == [1, 2]
