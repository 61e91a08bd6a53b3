"""roipool.torch on every way a PyTorch model is deployed (issue 10).

A small detector (conv -> RoIPool -> linear) is built with roipool.torch.RoIPool
and run on a second input whose number of boxes differs from the one it was
traced, scripted, compiled or exported with: every path must give eager's
numbers there, which a program that recorded roipool's result as a constant
(what jit.trace and the legacy ONNX exporter did before) cannot.

* eager forward + backward; inference_mode / no_grad; channels-last input;
* torch.compile: 0 graph breaks by default, fullgraph=True, inference and training;
* torch.fx.symbolic_trace: roi_pool stays one leaf node;
* torch.jit.trace (no_grad and grad mode) and torch.jit.script, torch.export
  strict and non-strict with a dynamic box count: saved, then loaded and run in
  a new process after ``import roipool.torch`` (one subprocess for all of them);
* ONNX: the legacy exporter and the dynamo exporter (with
  ``roipool.torch.onnx_translation_table()``) write one MaxRoiPool node that
  onnxruntime runs with roipool's numbers; a dtype MaxRoiPool cannot reproduce
  raises at export;
* service threads under torch.set_num_threads(1), and DataLoader workers
  started with fork.
"""
import json
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import List, Union

import pytest

# torch, onnx, onnxruntime and onnxscript are optional extras: these tests skip
# without them, except in CI's torch phase (helpers.import_peer).
from helpers import asks_argmax, import_peer  # noqa: E402

torch = import_peer("torch")

import roipool.torch as rt  # noqa: E402
from roipool.torch import _ops as _torch_ops  # noqa: E402

from helpers import run_python  # noqa: E402

SCALE = 0.5  # the detector's features have stride 2
SIZE = (3, 2)


class Detector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.pool = rt.RoIPool(SIZE, SCALE)
        self.head = torch.nn.Linear(6 * SIZE[0] * SIZE[1], 4)

    def forward(self, images: torch.Tensor, boxes: Union[torch.Tensor, List[torch.Tensor]]):
        feats = torch.relu(self.conv(images))[:, :, ::2, ::2]
        pooled = self.pool(feats, boxes)
        return pooled, self.head(pooled.flatten(1))


def make_boxes(seed, k, n=2, size=40.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand((k, 2), generator=g) * size * 0.7
    wh = torch.rand((k, 2), generator=g) * size * 0.6 + 1
    b = torch.randint(0, n, (k, 1), generator=g).float()
    return torch.cat([b, xy, xy + wh], dim=1)


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = Detector()
    g = torch.Generator().manual_seed(1)
    images = torch.randn((2, 3, 40, 36), generator=g)
    images2 = torch.randn((2, 3, 40, 36), generator=g)
    return model, (images, make_boxes(2, 5)), (images2, make_boxes(3, 9))


def eager(model, args):
    with torch.no_grad():
        return model(*args)


def assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and torch.equal(a, b)


def train_step(model, args):
    """(outputs, gradients of every parameter) of one weighted loss."""
    model.zero_grad()
    pooled, logits = model(*args)
    (pooled.sum() * 0.5 + (logits * torch.arange(4.0)).sum()).backward()
    return (pooled.detach(), logits.detach()), [p.grad.clone() for p in model.parameters()]


# ----------------------------------------------------------------------------- eager


def test_eager_forward_backward_second_input(case):
    model, first, second = case
    out1, grads1 = train_step(model, first)
    out2, grads2 = train_step(model, second)
    assert out1[0].shape[0] == 5 and out2[0].shape[0] == 9
    assert_same(out2, eager(model, second))
    assert all(g.abs().sum() > 0 for g in grads2)
    assert not torch.equal(grads1[0], grads2[0])


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_inference_modes_skip_argmax(case, mode, monkeypatch):
    """Under no_grad / inference_mode the kernel writes no argmax (nothing needs
    it) and the values equal the training path's."""
    model, _, second = case
    seen = []
    real = _torch_ops.roi_pooling
    monkeypatch.setattr(_torch_ops, "roi_pooling",
                        lambda *a, **kw: seen.append(asks_argmax(kw)) or real(*a, **kw))
    with getattr(torch, mode)():
        got = model(*second)
    assert not got[0].requires_grad and seen == [False]
    want, _ = train_step(model, second)
    assert seen[-1]  # the training call wrote an argmax
    assert_same(got, want)


def test_channels_last_input(case):
    model, _, (images, boxes) = case
    feats = torch.relu(model.conv(images)).detach()
    cl = feats.contiguous(memory_format=torch.channels_last)
    out = rt.roi_pool(cl, boxes, SIZE, 1.0)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, rt.roi_pool(feats, boxes, SIZE, 1.0))
    a, b = cl.clone().requires_grad_(True), feats.clone().requires_grad_(True)
    rt.roi_pool(a, boxes, SIZE, 1.0).sum().backward()
    rt.roi_pool(b, boxes, SIZE, 1.0).sum().backward()
    assert torch.equal(a.grad, b.grad) and a.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- compile, fx


def test_compile_has_no_graph_breaks(case):
    model, first, _ = case
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            explained = torch._dynamo.explain(model)(*first)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
    # list boxes too, and the function form with every argument
    explained = torch._dynamo.explain(
        lambda x, b: rt.roi_pool(x, b, 2, 0.25, "mxnet", 1))(first[0], [first[1][:, 1:]])
    assert explained.graph_break_count == 0, explained.break_reasons


def test_compile_fullgraph_inference_and_training(case):
    model, first, second = case
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert_same(compiled(*first), eager(model, first))
        assert_same(compiled(*second), eager(model, second))
    for args in (first, second):
        got, got_grads = train_step(compiled, args)
        want, want_grads = train_step(model, args)
        assert_same(got, want)
        for a, b in zip(got_grads, want_grads):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        assert_same(got_grads[:1], want_grads[:1])  # conv.weight: through roipool's backward


def test_fx_symbolic_trace_keeps_one_leaf(case):
    model, first, second = case
    gm = torch.fx.symbolic_trace(model)
    calls = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert calls.count(rt.roi_pool) == 1
    assert not any("roipool" in str(getattr(t, "__module__", "")) and t is not rt.roi_pool
                   for t in calls)
    assert_same(eager(gm, second), eager(model, second))


# ----------------------------------------------------------------------------- saved programs

_LOADER = textwrap.dedent("""
    import json, sys, torch
    d = sys.argv[1]
    res = {}
    try:  # before roipool.torch is imported, the operator is unknown
        torch.jit.load(d + "/script.pt")
        res["without_import"] = "loaded"
    except Exception as e:
        res["without_import"] = str(e)[:300]
    import roipool.torch  # registers torch.ops.roipool.*
    data = torch.load(d + "/data.pt")
    args = data["second"]
    for name in ["script", "trace_no_grad", "trace_grad", "export_strict", "export_nonstrict"]:
        try:
            if name.startswith("export"):
                prog = torch.export.load(d + "/" + name + ".pt2").module()
            else:
                prog = torch.jit.load(d + "/" + name + ".pt")
            with torch.no_grad():
                got = prog(*args)
            res[name] = all(torch.equal(a, b) for a, b in zip(got, data["want"]))
            if name == "script":  # scripted: list boxes too, and training
                got = prog(args[0], data["second_list"])
                res["script_list"] = all(torch.equal(a, b) for a, b in zip(got, data["want"]))
                prog.zero_grad()
                got = prog(*args)
                got[0].sum().backward()
                res["script_grad"] = torch.equal(prog.conv.weight.grad, data["grad"])
        except Exception as e:
            res[name] = repr(e)[:2000]
    print(json.dumps(res))
""")


def _to_list(boxes):
    return [boxes[boxes[:, 0] == i, 1:] for i in range(2)]


@pytest.fixture(scope="module")
def loaded(case, tmp_path_factory):
    """Saves every program, loads them all in one new process, and returns
    {path: True when the loaded program gave eager's outputs on the second input}."""
    model, first, second = case
    d = tmp_path_factory.mktemp("saved")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit's deprecation notices
        torch.jit.script(model).save(str(d / "script.pt"))
        with torch.no_grad():
            torch.jit.trace(model, first).save(str(d / "trace_no_grad.pt"))
        torch.jit.trace(model, first).save(str(d / "trace_grad.pt"))
    k = torch.export.Dim("k")
    for strict in (True, False):
        ep = torch.export.export(model, first, strict=strict,
                                 dynamic_shapes={"images": None, "boxes": {0: k}})
        torch.export.save(ep, str(d / f"export_{'strict' if strict else 'nonstrict'}.pt2"))
    boxes2 = second[1][torch.argsort(second[1][:, 0], stable=True)]
    model.zero_grad()
    model(second[0], boxes2)[0].sum().backward()
    want = eager(model, (second[0], boxes2))
    torch.save({"second": (second[0], boxes2), "second_list": _to_list(boxes2), "want": want,
                "grad": model.conv.weight.grad.clone()}, d / "data.pt")
    proc = run_python(["-c", _LOADER, str(d)], timeout=300, what="loading saved programs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["script", "script_list", "script_grad", "trace_no_grad",
                                  "trace_grad", "export_strict", "export_nonstrict"])
def test_saved_program_runs_in_new_process(loaded, path):
    assert loaded[path] is True, loaded[path]


def test_loading_without_import_names_the_operator(loaded):
    assert "roipool::roi_pool" in loaded["without_import"] \
        or "roipool.roi_pool" in loaded["without_import"], loaded["without_import"]


def test_programs_record_the_operator(case):
    """What is saved holds roipool's operator with its arguments, not a constant."""
    model, first, _ = case
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, first)
    assert "roipool::roi_pool" in str(traced.pool.graph)
    ep = torch.export.export(model, first, dynamic_shapes={"images": None,
                                                           "boxes": {0: torch.export.Dim("k")}})
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert "roipool.roi_pool.default" in targets


# ----------------------------------------------------------------------------- ONNX


class _Exact(torch.nn.Module):
    """Only ops onnxruntime computes exactly like torch (a conv would differ in
    the last bits), so the ONNX numbers can be compared with eager's exactly."""

    def __init__(self, scale=0.7):
        super().__init__()
        self.pool = rt.RoIPool(SIZE, scale)

    def forward(self, feats, boxes):
        return self.pool(torch.relu(feats) * 2, boxes)


def _onnx_run(path, feats, boxes):
    ort = import_peer("onnxruntime")
    onnx = import_peer("onnx")
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("MaxRoiPool") == 1, ops
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {names[0]: feats.numpy(), names[1]: boxes.numpy()})[0]


def _onnx_inputs():
    g = torch.Generator().manual_seed(4)
    feats = torch.randn((2, 5, 20, 18), generator=g)
    return (feats, make_boxes(5, 4, size=26)), (feats * 1.5 - 0.25, make_boxes(6, 11, size=26))


def _export(path, dynamo, model=None, args=None, **kw):
    first, _ = _onnx_inputs()
    model = _Exact() if model is None else model
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, first if args is None else args, str(path), dynamo=True,
                              dynamic_shapes={"feats": None, "boxes": {0: torch.export.Dim("k")}},
                              verbose=False, **kw)
        else:
            torch.onnx.export(model, first if args is None else args, str(path), dynamo=False,
                              input_names=["feats", "boxes"], dynamic_axes={"boxes": {0: "k"}},
                              opset_version=17)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_onnx_maxroipool_matches_roipool(tmp_path, dynamo):
    import_peer("onnxruntime")
    if dynamo:
        import_peer("onnxscript")
    kw = {"custom_translation_table": rt.onnx_translation_table()} if dynamo else {}
    _export(tmp_path / "m.onnx", dynamo, **kw)
    _, (feats, boxes) = _onnx_inputs()
    got = _onnx_run(tmp_path / "m.onnx", feats, boxes)
    with torch.no_grad():
        want = _Exact()(feats, boxes).numpy()
    assert got.shape == want.shape == (11, 5) + SIZE
    assert (got == want).all()


def _messages(exc):
    out = []
    while exc is not None:
        out.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_onnx_export_refuses_other_dtypes(tmp_path, dynamo, dtype):
    """MaxRoiPool computes in float32: a float64 or float16 model would get
    other numbers, so the export raises instead of writing it."""
    if dynamo:
        import_peer("onnxscript")
    kw = {"custom_translation_table": rt.onnx_translation_table()} if dynamo else {}
    first, _ = _onnx_inputs()
    args = tuple(t.to(dtype) for t in first)
    with pytest.raises(Exception) as info:
        _export(tmp_path / "m.onnx", dynamo, args=args, **kw)
    assert "MaxRoiPool computes in float32" in _messages(info.value)
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_dynamo_without_table_raises(tmp_path):
    import_peer("onnxscript")
    with pytest.raises(Exception) as info:
        _export(tmp_path / "m.onnx", True)
    assert "roipool" in _messages(info.value)
    assert not (tmp_path / "m.onnx").exists()


# ----------------------------------------------------------------------------- threads, workers


def test_service_threads_with_one_torch_thread(case, monkeypatch):
    """A service sets torch.set_num_threads(1) and serves from a thread pool:
    the kernel runs on 1 thread in each and every result is right."""
    model, _, second = case
    want = [rt.roi_pool(second[0], make_boxes(s, 3 + s, size=80), SIZE, SCALE)
            for s in range(8)]
    used = []
    real = _torch_ops.roi_pooling
    monkeypatch.setattr(_torch_ops, "roi_pooling",
                        lambda *a, **kw: used.append(kw["num_threads"]) or real(*a, **kw))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(rt.roi_pool, second[0], make_boxes(s, 3 + s, size=80), SIZE,
                                   SCALE) for s in range(8)]
            got = [f.result() for f in futures]  # re-raises a thread's exception
    finally:
        torch.set_num_threads(before)
    assert used == [1] * 8
    for a, b in zip(got, want):
        assert torch.equal(a, b)


class _Crops(torch.utils.data.Dataset):
    def __init__(self, feats):
        self.feats = feats

    def __len__(self):
        return 6

    def __getitem__(self, i):
        boxes = make_boxes(i, 2 + i, size=80)
        return (rt.roi_pool(self.feats, boxes, SIZE, SCALE).sum(dim=0),
                _torch_ops.threads(_torch_ops.DEFAULT_THREADS))


def test_dataloader_forked_workers(case):
    _, _, (images, _) = case
    feats = images.clone()
    rt.roi_pool(feats, make_boxes(0, 3, size=80), SIZE, SCALE)  # the parent ran it first
    data = _Crops(feats)
    want = torch.stack([data[i][0] for i in range(len(data))])
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=2,
                                         multiprocessing_context="fork", timeout=120)
    got, threads = zip(*loader)
    assert torch.equal(torch.cat(got), want)
    assert torch.cat(threads).tolist() == [1] * 6  # torch sets 1 thread in a worker


def _scripted_call(x: torch.Tensor, boxes: List[torch.Tensor], rois: torch.Tensor):
    return (rt.roi_pool(x, boxes, [2, 3], 0.5),
            rt.roi_pool(x, rois, 2, 0.25, "mxnet", 1))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_script_function_calling_roi_pool(case):
    _, (images, rois), _ = case
    scripted = torch.jit.script(_scripted_call)
    boxes = _to_list(rois)
    got, want = scripted(images, boxes, rois), _scripted_call(images, boxes, rois)
    assert_same(got, want)
    with pytest.raises(torch.jit.Error, match=r"Tensor\[K, 5\]"):
        scripted(images, boxes, rois[:, 1:])
    with pytest.raises(torch.jit.Error, match=r"boxes\[0\] must be a Tensor\[L, 4\]"):
        scripted(images, [rois], rois)
