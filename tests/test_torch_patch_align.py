"""patch_torchvision() and torchvision's roi_align (issue 25, points 2 and 3).

Against the real torchvision: with the patch, ``torchvision.ops.roi_align``,
``RoIAlign``, ``MultiScaleRoIAlign``, ``torch.ops.torchvision.roi_align`` and
saved or compiled programs calling it run roipool's kernels (a counter on the
kernel entries proves it) and give torchvision's CPU output and gradient bit
for bit; calls roipool does not take go to torchvision's kernel; boxes on
which torchvision reads out of bounds get roipool's ValueError. Whole
detectors (Faster R-CNN and Mask R-CNN with FPN, random weights, eval mode,
eager and scripted) give the same boxes, scores, labels and masks patched and
unpatched.
"""
import warnings

import pytest

from helpers import import_peer

torch = import_peer("torch")
torchvision = import_peer("torchvision")

import roipool.torch as rt  # noqa: E402
from roipool.torch import _ops as _torch_ops  # noqa: E402

tv_ops = torch.ops.torchvision


@pytest.fixture
def calls(monkeypatch):
    """How many times roipool's RoIAlign forward and backward kernels ran."""
    calls = {"forward": 0, "backward": 0}

    def counted(name, fn):
        def inner(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return inner

    monkeypatch.setattr(_torch_ops, "roi_align", counted("forward", _torch_ops.roi_align))
    monkeypatch.setattr(_torch_ops, "roi_align_backward",
                        counted("backward", _torch_ops.roi_align_backward))
    yield calls
    rt.unpatch_torchvision()


def make_case(seed, dtype, scale, N=2, C=3, H=13, W=17, R=24):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((N, C, H, W), generator=g)
    image = max(H, W) / scale
    xy = torch.rand((R, 2), generator=g) * image * 1.2 - image * 0.1
    wh = torch.rand((R, 2), generator=g) * image * 0.5
    b = torch.randint(0, N, (R, 1), generator=g).float()
    return x.to(dtype), torch.cat([b, xy, xy + wh], 1).to(dtype)


def run_tv(x, rois, scale, sampling_ratio, aligned):
    a = x.clone().requires_grad_(True)
    out = torchvision.ops.roi_align(a, rois, (3, 4), scale, sampling_ratio, aligned)
    w = torch.rand(out.shape, generator=torch.Generator().manual_seed(9)).to(out.dtype)
    (out * w).sum().backward()
    return out.detach(), a.grad


@pytest.mark.parametrize("scale", [1.0, 0.7, 1 / 16])
@pytest.mark.parametrize("sampling_ratio,aligned", [(-1, False), (0, True), (2, False),
                                                    (2, True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
def test_patched_operator_is_bit_identical(calls, dtype, sampling_ratio, aligned, scale):
    x, rois = make_case(int(scale * 10) + sampling_ratio, dtype, scale)
    want = run_tv(x, rois, scale, sampling_ratio, aligned)
    assert calls == {"forward": 0, "backward": 0}
    rt.patch_torchvision()
    got = run_tv(x, rois, scale, sampling_ratio, aligned)
    assert calls == {"forward": 1, "backward": 1}
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.stride() == w.stride() and torch.equal(g, w)
    assert want[1].abs().sum() > 0
    cl = x.contiguous(memory_format=torch.channels_last)
    got = run_tv(cl, rois, scale, sampling_ratio, aligned)
    assert got[0].is_contiguous() and torch.equal(got[0], want[0])
    assert torch.equal(got[1], want[1])
    rt.unpatch_torchvision()
    assert all(torch.equal(g, w)
               for g, w in zip(run_tv(x, rois, scale, sampling_ratio, aligned), want))
    assert calls == {"forward": 2, "backward": 2}  # torchvision's kernel again


def test_modules_and_programs_run_on_roipool(calls, tmp_path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = torchvision.ops.RoIAlign((3, 3), 0.5, 2, aligned=True)

        def forward(self, x, rois):
            return self.pool(x * 2, rois)

    net = Net()
    x, rois = make_case(2, torch.float32, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(net).save(str(tmp_path / "s.pt"))
        torch.jit.trace(net, (x, rois)).save(str(tmp_path / "t.pt"))
        programs = [torch.jit.load(str(tmp_path / "s.pt")),
                    torch.jit.load(str(tmp_path / "t.pt"))]
    torch.export.save(torch.export.export(net, (x, rois)), str(tmp_path / "e.pt2"))
    programs += [torch.export.load(str(tmp_path / "e.pt2")).module(),
                 torch.compile(net, backend="aot_eager", fullgraph=True), net]
    want = net(x, rois)
    rt.patch_torchvision()
    for i, prog in enumerate(programs):
        before = calls["forward"]
        assert torch.equal(prog(x, rois), want)
        assert calls["forward"] == before + 1, i


def test_multiscale_roi_align_runs_on_roipool(calls):
    g = torch.Generator().manual_seed(3)
    feats = {"0": torch.randn(2, 4, 32, 40, generator=g), "1": torch.randn(2, 4, 16, 20, generator=g),
             "2": torch.randn(2, 4, 8, 10, generator=g)}
    xy = torch.rand(30, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 4 + torch.rand(30, 2, generator=g) * 100], 1)
    boxes = [boxes[:12], boxes[12:]]
    sizes = [(128, 160), (128, 160)]
    pool = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2"], 7, 2)
    want = pool(feats, boxes, sizes)
    rt.patch_torchvision()
    got = pool(feats, boxes, sizes)
    assert calls["forward"] == 3  # one call per level
    assert torch.equal(got, want) and want.abs().sum() > 0


@pytest.mark.parametrize("call", [
    lambda x, r: tv_ops.roi_align(x.bfloat16(), r.bfloat16(), 1.0, 2, 2, 2, False),
    lambda x, r: tv_ops.roi_align(x, r.double(), 1.0, 2, 2, 2, False),
    lambda x, r: tv_ops.roi_align(x.int(), r.int(), 1.0, 2, 2, 2, False),
])
def test_patched_kernel_refuses_what_torchvision_refuses(calls, call):
    x, rois = make_case(7, torch.float32, 1.0)
    with pytest.raises(RuntimeError):
        call(x, rois)
    rt.patch_torchvision()
    with pytest.raises(RuntimeError):
        call(x, rois)
    assert calls["forward"] == 0


@pytest.mark.parametrize("scale, size, sampling_ratio", [
    (1.0, (0, 3), 2), (-0.5, (2, 2), 2), (0.0, (2, 2), -1), (1.0, (2, 2), -3)])
def test_patched_leaves_odd_calls_to_torchvision(calls, scale, size, sampling_ratio):
    """An empty grid, a scale or sampling_ratio roipool refuses: torchvision answers."""
    x, rois = make_case(8, torch.float32, 1.0)
    want = tv_ops.roi_align(x, rois, scale, *size, sampling_ratio, False)
    rt.patch_torchvision()
    got = tv_ops.roi_align(x, rois, scale, *size, sampling_ratio, False)
    assert calls["forward"] == 0
    assert got.shape == want.shape and torch.equal(got, want)


@pytest.mark.parametrize("row, match", [([5.0, 0, 0, 4, 4], "batch index"),
                                        ([0.0, float("nan"), 0, 4, 4], "row 0")])
def test_patched_rejects_rois_torchvision_reads_out_of_bounds_with(calls, row, match):
    x = torch.zeros((2, 3, 8, 8))
    rt.patch_torchvision()
    with pytest.raises(ValueError, match=match):
        tv_ops.roi_align(x, torch.tensor([row]), 1.0, 2, 2, 2, False)
    assert calls["forward"] == 1


def test_patched_answers_where_torchvision_raises(calls):
    """An aligned box flipped on one axis with adaptive sampling: torchvision
    raises (a negative vector size), roipool's contract says 0."""
    x = torch.randn((1, 2, 8, 8))
    rois = torch.tensor([[0.0, 6, 1, 2, 5], [0.0, 1, 1, 5, 5]])
    with pytest.raises(Exception, match="vector"):
        tv_ops.roi_align(x, rois, 1.0, 2, 2, -1, True)
    want = tv_ops.roi_align(x, rois[1:], 1.0, 2, 2, -1, True)
    rt.patch_torchvision()
    got = tv_ops.roi_align(x, rois, 1.0, 2, 2, -1, True)
    assert torch.equal(got[0], torch.zeros_like(got[0])) and torch.equal(got[1:], want)


# ----------------------------------------------------------------------------- whole detectors


def _detector(name):
    torch.manual_seed(0)
    build = getattr(torchvision.models.detection, name)
    # a small image keeps it fast; a score threshold of 0 keeps every detection
    model = build(weights=None, weights_backbone=None, min_size=160, max_size=200,
                  box_score_thresh=0.0, box_detections_per_img=10)
    return model.eval()


def _images():
    g = torch.Generator().manual_seed(5)
    return [torch.rand((3, 150, 190), generator=g), torch.rand((3, 170, 160), generator=g)]


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn"])
def test_detectors_give_the_same_detections(calls, name, scripted):
    model = _detector(name)
    if scripted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torch.jit.script(model)
    images = _images()

    def detect():
        with torch.no_grad():
            out = model(images)
        return out[1] if scripted else out  # scripted: (losses, detections)

    want = detect()
    assert calls["forward"] == 0
    rt.patch_torchvision()
    got = detect()
    # one call per FPN level (4) and pooler (boxes; masks)
    assert calls["forward"] == (8 if name.startswith("mask") else 4)
    keys = ["boxes", "scores", "labels"] + (["masks"] if name.startswith("mask") else [])
    for g, w in zip(got, want):
        assert sorted(g) == sorted(keys)
        assert w["boxes"].shape[0] > 0
        for k in keys:
            assert g[k].shape == w[k].shape and torch.equal(g[k], w[k]), k
