"""roipool.torch.patch_torchvision() / unpatch_torchvision() (issue 10, point 4).

Against the real torchvision: with the patch, torchvision's own operator
(``torchvision.ops.roi_pool``, ``RoIPool``, ``torch.ops.torchvision.*``, and
scripted, traced, exported and compiled programs that call it) runs roipool's
kernel, proven by a counter on roipool's kernel entry, and gives torchvision's
CPU output, argmax and gradient bit for bit for every dtype and scale
torchvision's CPU kernel takes. Unpatching brings torchvision's kernel back
(the counter stops). Patching twice, unpatching twice and patching from many
threads at once are safe; a missing torchvision or an unexpected operator
schema raises and patches nothing; devices other than the CPU keep
torchvision's kernels.
"""
import sys
import threading
import warnings

import pytest

from helpers import import_peer  # noqa: E402

torch = import_peer("torch")
torchvision = import_peer("torchvision")

import roipool.torch as rt  # noqa: E402
from roipool.torch import _ops as _torch_ops, _patch as _torch_patch  # noqa: E402

tv_ops = torch.ops.torchvision


@pytest.fixture
def kernel_calls(monkeypatch):
    """How many times roipool's forward and backward kernels ran."""
    calls = {"forward": 0, "backward": 0}
    fwd, bwd = _torch_ops.roi_pooling, _torch_ops.roi_pooling_backward

    def counted(name, fn):
        def inner(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return inner

    monkeypatch.setattr(_torch_ops, "roi_pooling", counted("forward", fwd))
    monkeypatch.setattr(_torch_ops, "roi_pooling_backward", counted("backward", bwd))
    yield calls
    rt.unpatch_torchvision()


def make_case(seed, dtype, scale, N=2, C=3, H=13, W=17, R=30):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randint(-3, 4, (N, C, H, W), generator=g)
         + torch.rand((N, C, H, W), generator=g) * (torch.rand((N, C, H, W), generator=g) < .5))
    image = max(H, W) / scale
    xy = torch.rand((R, 4), generator=g) * image * 1.2 - image * 0.1
    xy[: R // 3, 2:] = xy[: R // 3, :2] + torch.rand((R // 3, 2), generator=g) * 5 / scale
    b = torch.randint(0, N, (R, 1), generator=g).float()
    return x.to(dtype), torch.cat([b, xy], 1).to(dtype)


def run_tv(x, rois, scale, size=(3, 4)):
    """torchvision's operator: (out, argmax, grad of input) for a weighted loss."""
    a = x.clone().requires_grad_(True)
    out, argmax = tv_ops.roi_pool(a, rois, scale, *size)
    w = torch.rand(out.shape, generator=torch.Generator().manual_seed(9)).to(out.dtype)
    (out * w).sum().backward()
    return out.detach(), argmax, a.grad


@pytest.mark.parametrize("scale", [1.0, 0.5, 1 / 16, 0.7, 1 / 3, 1.3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
def test_patched_operator_is_bit_identical(kernel_calls, dtype, scale):
    x, rois = make_case(int(scale * 100), dtype, scale)
    want = run_tv(x, rois, scale)
    assert kernel_calls == {"forward": 0, "backward": 0}
    rt.patch_torchvision()
    got = run_tv(x, rois, scale)
    assert kernel_calls == {"forward": 1, "backward": 1}
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape and g.stride() == w.stride()
        assert torch.equal(g, w)
    assert want[1].dtype == torch.int32 and (want[1] >= 0).any() and want[2].abs().sum() > 0
    # channels-last and strided inputs: the same numbers, torchvision's contiguous layout
    for x2 in (x.contiguous(memory_format=torch.channels_last),
               torch.zeros((2, 3, 26, 17), dtype=dtype)[:, :, ::2].copy_(x)):
        got = run_tv(x2, rois, scale)
        for g, w in zip(got[:2], want[:2]):
            assert g.is_contiguous() and torch.equal(g, w)
        assert torch.equal(got[2], want[2])
    rt.unpatch_torchvision()
    assert all(torch.equal(g, w) for g, w in zip(run_tv(x, rois, scale), want))
    assert kernel_calls == {"forward": 3, "backward": 3}  # torchvision's kernel again


def test_unmodified_torchvision_calls_run_on_roipool(kernel_calls):
    x, rois = make_case(1, torch.float32, 0.25)
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    pool = torchvision.ops.RoIPool((2, 2), 0.25)
    want = (torchvision.ops.roi_pool(x, boxes, 7, 0.25), pool(x, rois))
    rt.patch_torchvision()
    got = (torchvision.ops.roi_pool(x, boxes, 7, 0.25), pool(x, rois))
    assert kernel_calls["forward"] == 2
    assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_saved_and_compiled_torchvision_programs_run_on_roipool(kernel_calls, tmp_path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = torchvision.ops.RoIPool((3, 3), 0.5)

        def forward(self, x, rois):
            return self.pool(x * 2, rois)

    net = Net()
    x, rois = make_case(2, torch.float32, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(net).save(str(tmp_path / "s.pt"))
        torch.jit.trace(net, (x, rois)).save(str(tmp_path / "t.pt"))
    torch.export.save(torch.export.export(net, (x, rois)), str(tmp_path / "e.pt2"))
    programs = [torch.jit.load(str(tmp_path / "s.pt")), torch.jit.load(str(tmp_path / "t.pt")),
                torch.export.load(str(tmp_path / "e.pt2")).module(),
                torch.compile(net, backend="aot_eager", fullgraph=True)]
    want = net(x, rois)
    rt.patch_torchvision()
    for i, prog in enumerate(programs):
        before = kernel_calls["forward"]
        assert torch.equal(prog(x, rois), want)
        assert kernel_calls["forward"] == before + 1, i


def test_patch_and_unpatch_are_idempotent(kernel_calls):
    x, rois = make_case(3, torch.float32, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the "overriding a kernel" notice is expected, not shown
        rt.patch_torchvision()
        rt.patch_torchvision()
    tv_ops.roi_pool(x, rois, 1.0, 2, 2)
    assert kernel_calls["forward"] == 1
    rt.unpatch_torchvision()
    tv_ops.roi_pool(x, rois, 1.0, 2, 2)
    rt.unpatch_torchvision()
    tv_ops.roi_pool(x, rois, 1.0, 2, 2)
    assert kernel_calls["forward"] == 1
    rt.patch_torchvision()
    tv_ops.roi_pool(x, rois, 1.0, 2, 2)
    assert kernel_calls["forward"] == 2


def test_patching_from_many_threads(kernel_calls):
    x, rois = make_case(4, torch.float32, 0.5)
    want = tv_ops.roi_pool(x, rois, 0.5, 3, 3)
    errors, barrier = [], threading.Barrier(8)

    def work(i):
        try:
            barrier.wait()
            for _ in range(20):
                (rt.patch_torchvision if i % 2 else rt.unpatch_torchvision)()
                out = tv_ops.roi_pool(x, rois, 0.5, 3, 3)
                assert torch.equal(out[0], want[0]) and torch.equal(out[1], want[1])
        except BaseException as exc:  # collected, re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    rt.patch_torchvision()
    rt.patch_torchvision()
    before = kernel_calls["forward"]
    tv_ops.roi_pool(x, rois, 0.5, 3, 3)
    rt.unpatch_torchvision()
    tv_ops.roi_pool(x, rois, 0.5, 3, 3)
    assert kernel_calls["forward"] == before + 1  # one registration, removed by one unpatch


def _dispatch_table():
    return {line.split(":")[0]: line for line in
            torch._C._dispatch_dump("torchvision::roi_pool").splitlines()
            + torch._C._dispatch_dump("torchvision::_roi_pool_backward").splitlines()
            if ": registered at" in line}


_BEFORE = _dispatch_table()  # at collection, before any test patched


def test_other_devices_keep_torchvision_kernels(kernel_calls):
    before = _BEFORE
    rt.patch_torchvision()
    after = _dispatch_table()
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {"CPU"}, changed  # roi_pool's and _roi_pool_backward's CPU kernels
    x, rois = make_case(5, torch.float32, 1.0)
    out, argmax = tv_ops.roi_pool(x.to("meta"), rois.to("meta"), 1.0, 2, 2)
    assert out.device.type == "meta" and argmax.dtype == torch.int32
    assert kernel_calls["forward"] == 0


def test_unexpected_schema_patches_nothing(kernel_calls, monkeypatch):
    monkeypatch.setitem(_torch_patch.SCHEMAS, "roi_pool",
                        _torch_patch.SCHEMAS["roi_pool"].replace("float spatial_scale",
                                                                 "float scale"))
    with pytest.raises(RuntimeError, match=r"torchvision::roi_pool\(Tensor input.*expected"):
        rt.patch_torchvision()
    x, rois = make_case(6, torch.float32, 1.0)
    tv_ops.roi_pool(x, rois, 1.0, 2, 2)
    assert kernel_calls["forward"] == 0


def test_missing_torchvision_is_a_clear_error(kernel_calls, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision fails
    with pytest.raises(ImportError, match="patch_torchvision.. needs torchvision"):
        rt.patch_torchvision()
    monkeypatch.undo()
    x, rois = make_case(6, torch.float32, 1.0)
    tv_ops.roi_pool(x, rois, 1.0, 2, 2)
    assert kernel_calls["forward"] == 0


@pytest.mark.parametrize("call", [
    lambda x, r: tv_ops.roi_pool(x.bfloat16(), r.bfloat16(), 1.0, 2, 2),  # not in torchvision
    lambda x, r: tv_ops.roi_pool(x, r.double(), 1.0, 2, 2),  # dtypes differ
    lambda x, r: tv_ops.roi_pool(x.int(), r.int(), 1.0, 2, 2),
])
def test_patched_kernel_refuses_what_torchvision_refuses(kernel_calls, call):
    x, rois = make_case(7, torch.float32, 1.0)
    with pytest.raises(RuntimeError):
        call(x, rois)
    rt.patch_torchvision()
    with pytest.raises(RuntimeError):
        call(x, rois)
    assert kernel_calls["forward"] == 0


@pytest.mark.parametrize("scale, size", [(1.0, (0, 3)), (0.0, (2, 2)), (-0.5, (2, 2)),
                                         (float("inf"), (2, 2))])
def test_patched_leaves_odd_calls_to_torchvision(kernel_calls, scale, size):
    """An empty grid or a scale roipool refuses: torchvision's kernel answers."""
    x, rois = make_case(8, torch.float32, 1.0)
    rois[:, 1:] = rois[:, 1:].clamp(0, 12)
    want = tv_ops.roi_pool(x, rois, scale, *size)
    rt.patch_torchvision()
    got = tv_ops.roi_pool(x, rois, scale, *size)
    assert kernel_calls["forward"] == 0
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert torch.equal(g, w) or g.numel() == 0


@pytest.mark.parametrize("row, match", [([5.0, 0, 0, 4, 4], "batch index"),
                                        ([0.0, float("nan"), 0, 4, 4], "row 0")])
def test_patched_rejects_rois_torchvision_would_read_out_of_bounds_with(kernel_calls, row,
                                                                         match):
    x = torch.zeros((2, 3, 8, 8))
    rt.patch_torchvision()
    with pytest.raises(ValueError, match=match):
        tv_ops.roi_pool(x, torch.tensor([row]), 1.0, 2, 2)
    assert kernel_calls["forward"] == 1
