"""roipool.torch: the PyTorch front end (optional extra ``torch``).

* Forward values, argmax and backward gradients equal ``torchvision.ops.roi_pool``
  bit for bit, at power-of-two scales and at 0.7 (where the default
  ``compat="torchvision"`` matters: MXNet's rule moves a box by one cell there).
* ``torch.autograd.gradcheck`` passes in float64.
* A small model trained with ``RoIPool`` ends with exactly the parameters of the
  same model trained with ``torchvision.ops.RoIPool``.
* Non-CPU tensors and bad arguments raise errors naming the argument.
* Nothing is copied between torch and the kernels: the arrays the kernels get
  are views of the tensors' memory and the result tensor is the kernel's array.

Skipped as a whole when torch is not installed (it is an optional extra);
the torchvision comparisons also need torchvision.
"""
import copy

import numpy as np
import pytest

# torch is an optional extra: these tests skip without it, except where
# ROIPOOL_REQUIRE_TORCH=1 (CI installs it) turns a missing torch into a failure.
from helpers import import_peer  # noqa: E402

torch = import_peer("torch")

import roipool  # noqa: E402
import roipool.torch as rt  # noqa: E402
from roipool.torch import _ops as _torch_ops  # noqa: E402


@pytest.fixture(scope="module")
def tv_ops():
    return import_peer("torchvision").ops


def make_case(seed, scale=1.0, dtype=torch.float32, N=2, C=5, H=19, W=23, R=40):
    """Data with many ties (small integers) and ROIs in image coordinates (the
    map times 1/scale) that are partly outside the map, malformed (x2 < x1) or tiny."""
    image = max(H, W) / scale
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-4, 5, (N, C, H, W), generator=g).to(dtype)
    x += torch.rand((N, C, H, W), generator=g, dtype=dtype) * (torch.rand(
        (N, C, H, W), generator=g) < 0.5)
    b = torch.randint(0, N, (R, 1), generator=g).to(dtype)
    xy = torch.rand((R, 4), generator=g, dtype=dtype) * (image * 1.2) - image * 0.1
    xy[: R // 4, 2:] = xy[: R // 4, :2] + torch.rand((R // 4, 2), generator=g, dtype=dtype) * 6 / scale
    xy[-3:, 2:] = xy[-3:, :2] - 5 / scale  # malformed: become 1 x 1
    return x, torch.cat([b, xy], dim=1)


def run_both(tv_ops, x, rois, size, scale, grad_seed=7, **kw):
    """(out, grad) of roipool.torch and of torchvision for the same weighted loss."""
    res = []
    for fn in (lambda a: rt.roi_pool(a, rois, size, scale, **kw),
               lambda a: tv_ops.roi_pool(a, rois, size, scale)):
        a = x.detach().clone().requires_grad_(True)
        out = fn(a)
        w = torch.rand(out.shape, generator=torch.Generator().manual_seed(grad_seed),
                       dtype=out.dtype)
        (out * w).sum().backward()
        res.append((out.detach(), a.grad))
    return res


# ----------------------------------------------------------------------------- values


def test_seed_example():
    x = torch.arange(48.0).reshape(1, 1, 8, 6)
    box = torch.tensor([[0.0, 0, 0, 4, 4]])
    assert rt.roi_pool(x, box, (2, 2), 1.0)[0, 0].tolist() == [[14, 16], [26, 28]]
    assert rt.roi_pool(x, box, (2, 2), 0.7)[0, 0].tolist() == [[7, 9], [19, 21]]
    assert rt.roi_pool(x, [box[:, 1:]], 2, 0.7)[0, 0].tolist() == [[7, 9], [19, 21]]
    assert rt.RoIPool((2, 2), 0.7)(x, box)[0, 0].tolist() == [[7, 9], [19, 21]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25, 1 / 16, 0.7])
def test_forward_and_backward_equal_torchvision(tv_ops, dtype, scale):
    x, rois = make_case(int(scale * 1000), scale, dtype)
    for size in [(2, 3), 7]:
        (out, grad), (tv_out, tv_grad) = run_both(tv_ops, x, rois, size, scale)
        assert out.dtype == dtype and out.shape == tv_out.shape
        assert torch.equal(out, tv_out)
        assert grad.dtype == dtype
        assert torch.equal(grad, tv_grad)  # bit-identical: same accumulation order
        assert grad.abs().sum() > 0
    # argmax too: both int32
    tv_out, tv_arg = torch.ops.torchvision.roi_pool(x, rois, scale, 3, 4)
    out, arg = roipool.roi_pooling(x.numpy(), rois.numpy(), (3, 4), scale,
                                   return_argmax=True, compat="torchvision")
    assert np.array_equal(out, tv_out.numpy())
    assert np.array_equal(arg, tv_arg.numpy())


def test_boxes_as_list_equal_torchvision(tv_ops):
    x, _ = make_case(3, N=3)
    g = torch.Generator().manual_seed(5)
    boxes = []
    for n in (4, 0, 6):  # image 1 has no boxes
        xy = torch.rand((n, 2), generator=g) * 100
        boxes.append(torch.cat([xy, xy + torch.rand((n, 2), generator=g) * 60], dim=1))
    (out, grad), (tv_out, tv_grad) = run_both(tv_ops, x, boxes, (3, 3), 0.25)
    assert out.shape == (10, 5, 3, 3)
    assert torch.equal(out, tv_out) and torch.equal(grad, tv_grad)
    # image i's boxes are pooled from image i: the same as explicit batch indices
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1)
                      for i, b in enumerate(boxes)])
    assert torch.equal(rt.roi_pool(x, rois, (3, 3), 0.25), out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [0.7, 0.9, 1 / 3, 0.1, 1.3])
def test_coordinate_rounding_equals_torchvision(tv_ops, dtype, scale):
    """Every half-integer box corner over a row of 1200 cells: the cell each lands
    on (the argmax of a 1 x 1 ROI over an increasing row) equals torchvision's."""
    W = 1200
    x = torch.arange(W, dtype=dtype).reshape(1, 1, 1, W)
    xs = torch.arange(0, (W - 2) / scale, 0.5, dtype=dtype)
    rois = torch.zeros((len(xs), 5), dtype=dtype)
    rois[:, 1] = rois[:, 3] = xs
    want = tv_ops.roi_pool(x, rois, 1, scale).flatten()
    assert torch.equal(rt.roi_pool(x, rois, 1, scale).flatten(), want)


def test_compat_default_is_torchvision(tv_ops):
    """torchvision converts spatial_scale to the data's dtype and multiplies in
    it. float32: that is MXNet's rule too (float32 0.7 * 45 -> 32). float64:
    MXNet first rounds the scale to float32 (5 * 0.7 -> 3, torchvision 4)."""
    for dtype, x1, tv_cell, mx_cell in [(torch.float32, 45, 32, 32), (torch.float64, 5, 4, 3)]:
        x = torch.arange(64, dtype=dtype).reshape(1, 1, 1, 64)
        rois = torch.tensor([[0.0, x1, 0, x1, 0]], dtype=dtype)
        assert tv_ops.roi_pool(x, rois, 1, 0.7).item() == tv_cell
        assert rt.roi_pool(x, rois, 1, 0.7).item() == tv_cell
        assert rt.RoIPool(1, 0.7)(x, rois).item() == tv_cell
        assert rt.roi_pool(x, rois, 1, 0.7, compat="mxnet").item() == mx_cell
        assert roipool.roi_pooling(x.numpy(), rois.numpy(), 1, 0.7).item() == mx_cell


def test_reduced_precision_bridges():
    """float16 and bfloat16 tensors reach the kernels and come back in their dtype."""
    x, rois = make_case(11, 0.25)
    for dtype, np_dtype in [(torch.float16, np.float16), (torch.bfloat16, None)]:
        if np_dtype is None:
            np_dtype = pytest.importorskip("ml_dtypes").bfloat16
        a = x.to(dtype).requires_grad_(True)
        out = rt.roi_pool(a, rois, 3, 0.25)
        g = torch.rand(out.shape, generator=torch.Generator().manual_seed(3)).to(dtype)
        out.backward(g)
        assert out.dtype == dtype and a.grad.dtype == dtype
        d = x.numpy().astype(np_dtype)
        want, am = roipool.roi_pooling(d, rois.numpy(), 3, 0.25, return_argmax=True,
                                       compat="torchvision")
        want_grad = roipool.roi_pooling_backward(g.float().numpy().astype(np_dtype),
                                                 rois.numpy(), am, d.shape)
        assert np.array_equal(out.detach().float().numpy(), want.astype(np.float32))
        assert np.array_equal(a.grad.float().numpy(), want_grad.astype(np.float32))
        assert (am >= 0).any() and a.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- autograd


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    # distinct values: no ties, so finite differences see one winner per bin
    x = (torch.randperm(2 * 3 * 7 * 8, generator=g).to(torch.float64) / 10).reshape(2, 3, 7, 8)
    x.requires_grad_(True)
    rois = torch.tensor([[0, 0, 0, 7, 6], [1, 2, 1, 5, 6], [0, 3, 3, 3, 3], [1, -2, -1, 4, 3],
                         [0, 1, 0, 7, 6]], dtype=torch.float64)  # overlaps, 1x1, outside
    assert torch.autograd.gradcheck(lambda a: rt.roi_pool(a, rois, (2, 3), 1.0), (x,),
                                    eps=1e-6, atol=1e-7, nondet_tol=0.0)
    assert torch.autograd.gradcheck(lambda a: rt.RoIPool(3, 0.5)(a, rois), (x,),
                                    eps=1e-6, atol=1e-7, nondet_tol=0.0)


def test_backward_bit_identical_for_any_thread_count():
    x, rois = make_case(21, 0.25, C=16, H=32, W=32, R=200)
    grads = []
    for nt in (1, 2, 3):
        a = x.clone().requires_grad_(True)
        out = rt.roi_pool(a, rois, 7, 0.25, num_threads=nt)
        out.backward(torch.rand(out.shape, generator=torch.Generator().manual_seed(1)))
        grads.append(a.grad)
    assert all(torch.equal(grads[0], g) for g in grads[1:])


def test_no_grad_path_same_values():
    x, rois = make_case(4, 0.5)
    a = x.clone().requires_grad_(True)
    with_graph = rt.roi_pool(a, rois, (4, 2), 0.5)
    assert with_graph.grad_fn is not None
    with torch.no_grad():
        no_graph = rt.roi_pool(a, rois, (4, 2), 0.5)
    assert no_graph.grad_fn is None and not no_graph.requires_grad
    assert torch.equal(with_graph.detach(), no_graph)
    assert torch.equal(rt.roi_pool(x, rois, (4, 2), 0.5), no_graph)


def test_boxes_get_no_gradient(tv_ops):
    x, rois = make_case(8, 0.5)
    a, r = x.clone().requires_grad_(True), rois.clone().requires_grad_(True)
    rt.roi_pool(a, r, 2, 0.5).sum().backward()
    assert r.grad is None and a.grad is not None
    # boxes alone requiring a gradient: as torchvision, a graph whose backward gives none
    for pool in (rt.roi_pool, tv_ops.roi_pool):
        r = rois.clone().requires_grad_(True)
        out = pool(x, r, 2, 0.5)
        assert out.requires_grad
        out.sum().backward()
        assert r.grad is None


class _Net(torch.nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.pool = pool
        self.head = torch.nn.Linear(8 * 3 * 3, 4)

    def forward(self, images, boxes):
        feats = torch.relu(self.conv(images))[:, :, ::2, ::2]  # stride 2: spatial_scale 0.5
        return self.head(self.pool(feats, boxes).flatten(1))


def test_training_matches_torchvision_module(tv_ops):
    torch.manual_seed(0)
    ours = _Net(rt.RoIPool((3, 3), 0.5))
    theirs = copy.deepcopy(ours)
    theirs.pool = tv_ops.RoIPool((3, 3), 0.5)
    g = torch.Generator().manual_seed(1)
    images = torch.randn((2, 3, 24, 20), generator=g)
    boxes = [torch.tensor([[0.0, 0, 15, 15], [4, 6, 19, 23]]), torch.tensor([[2.0, 2, 9, 30]])]
    target = torch.randn((3, 4), generator=g)
    start = copy.deepcopy(ours.state_dict())
    losses = {}
    for name, net in (("ours", ours), ("theirs", theirs)):
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        losses[name] = []
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(images, boxes), target)
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
    assert losses["ours"] == losses["theirs"]
    assert losses["ours"][-1] < losses["ours"][0]
    for k, v in ours.state_dict().items():
        assert torch.equal(v, theirs.state_dict()[k]), k
    assert not torch.equal(ours.conv.weight, start["conv.weight"])  # the conv was trained
    assert "RoIPool(output_size=(3, 3), spatial_scale=0.5" in repr(ours)


# ----------------------------------------------------------------------------- errors


def test_non_cpu_tensors_are_rejected():
    x = torch.empty((1, 1, 4, 4), device="meta")
    with pytest.raises(ValueError, match=r"CPU only; input is on device 'meta'"):
        rt.roi_pool(x, torch.zeros((1, 5)), 2)
    with pytest.raises(ValueError, match=r"boxes is on device 'meta'"):
        rt.roi_pool(torch.zeros((1, 1, 4, 4)), torch.zeros((1, 5), device="meta"), 2)
    with pytest.raises(ValueError, match=r"boxes\[1\] is on device 'meta'"):
        rt.roi_pool(torch.zeros((2, 1, 4, 4)),
                    [torch.zeros((1, 4)), torch.zeros((1, 4), device="meta")], 2)


@pytest.mark.parametrize("call, exc, match", [
    (lambda x, r: rt.roi_pool(x.detach().numpy(), r, 2), TypeError, "input must be a torch.Tensor"),
    (lambda x, r: rt.roi_pool(x.int(), r, 2), TypeError, "input must be a float32"),
    (lambda x, r: rt.roi_pool(x.to_sparse(), r, 2), ValueError, "input must be a dense"),
    (lambda x, r: rt.roi_pool(x, r[:, :4], 2), ValueError, r"boxes must be a Tensor\[K, 5\]"),
    (lambda x, r: rt.roi_pool(x, r.numpy(), 2), TypeError, "boxes must be a Tensor"),
    (lambda x, r: rt.roi_pool(x, [r], 2), ValueError, r"boxes\[0\] must be a Tensor\[L, 4\]"),
    (lambda x, r: rt.roi_pool(x, r, 0), ValueError, "output_size"),
    (lambda x, r: rt.roi_pool(x, r, (2, 2, 2)), ValueError, "output_size"),
    (lambda x, r: rt.roi_pool(x, r, 2, 0.0), ValueError, "spatial_scale"),
    (lambda x, r: rt.roi_pool(x, r, 2, compat="caffe"), ValueError, "compat"),
    (lambda x, r: rt.roi_pool(x, r, 2, num_threads=0), ValueError, "num_threads"),
    (lambda x, r: rt.roi_pool(x, r.bool(), 2), TypeError, "rois"),
    (lambda x, r: rt.roi_pool(x, r + torch.tensor([5.0, 0, 0, 0, 0]), 2), ValueError, "row 0"),
    (lambda x, r: rt.roi_pool(x[0], r, 2), ValueError, "input must be 4-D"),
])
def test_bad_arguments(call, exc, match):
    x = torch.zeros((2, 3, 8, 8), requires_grad=True)
    r = torch.tensor([[0.0, 1, 1, 4, 4], [1, 0, 0, 2, 2]])
    with pytest.raises(exc, match=match):
        call(x, r)


# ----------------------------------------------------------------------------- no copies


def _ptr(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def spy(monkeypatch):
    """Records the arrays roipool.torch hands to the kernels and gets back."""
    calls = []

    def wrap(fn):
        def inner(*args, **kw):
            res = fn(*args, **kw)
            calls.append((fn.__name__, args, kw, res))
            return res
        return inner

    monkeypatch.setattr(_torch_ops, "roi_pooling", wrap(roipool.roi_pooling))
    monkeypatch.setattr(_torch_ops, "roi_pooling_backward", wrap(roipool.roi_pooling_backward))
    return calls


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_tensors_are_not_copied(spy, layout):
    x, rois = make_case(9, 0.25, C=8, H=16, W=16)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = torch.zeros((2, 8, 40, 40))[:, :, 3:35:2, 5:37:2].copy_(x)
    a = x.clone(memory_format=torch.preserve_format).requires_grad_(True)
    out = rt.roi_pool(a, rois, 3, 0.25)
    (name, args, kw, res), = spy
    data, r = args[0], args[1]
    assert name == "roi_pooling"
    # the kernel read the tensor's own memory, with its strides
    assert _ptr(data) == a.data_ptr()
    assert data.strides == tuple(s * a.element_size() for s in a.stride())
    assert _ptr(r) == rois.data_ptr()
    # the kernel wrote into the result tensor (and into the argmax autograd
    # keeps): roipool's own outputs (contiguous input) or the out= it was given
    if kw.get("return_argmax"):
        res, res_argmax = res
    else:
        assert _ptr(res) == _ptr(kw["out"])
        res_argmax = kw["argmax"]
    assert out.data_ptr() == _ptr(res)
    assert res_argmax.dtype == np.int32 and res_argmax.shape == res.shape
    assert out.stride() == tuple(s // res.itemsize for s in res.strides)
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    seen = []
    a.register_hook(seen.append)  # the gradient autograd gets, before it accumulates it
    g = torch.rand(out.shape)
    out.backward(g)
    (name, args, _, grad), = spy[1:]
    assert name == "roi_pooling_backward"
    assert _ptr(args[0]) == g.data_ptr()  # grad_output read in place
    assert seen[0].data_ptr() == _ptr(grad)  # the gradient is the kernel's array
    assert torch.equal(a.grad, seen[0])


def test_default_threads_follow_torch(spy):
    x, rois = make_case(2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        rt.roi_pool(x, rois, 2)
        assert spy[-1][2]["num_threads"] == 1
        rt.roi_pool(x, rois, 2, num_threads=3)
        assert spy[-1][2]["num_threads"] == 3
    finally:
        torch.set_num_threads(before)
    rt.roi_pool(x, rois, 2)
    assert spy[-1][2]["num_threads"] == min(before, roipool._roi_pool.omp_max_threads())


# ----------------------------------------------------------------------------- drop-in errors

_MALFORMED = {
    "boxes [K, 4]": lambda x, r: (x, r[:, 1:]),
    "boxes 1-D": lambda x, r: (x, r[0]),
    "boxes 3-D": lambda x, r: (x, r[None]),
    "list holding [L, 5]": lambda x, r: (x, [r]),
    "list holding 1-D": lambda x, r: (x, [r[0, 1:]]),
    "boxes ndarray": lambda x, r: (x, r.numpy()),
    "boxes int": lambda x, r: (x, 5),
    "list holding ndarray": lambda x, r: (x, [r[:, 1:].numpy()]),
    "input 3-D": lambda x, r: (x[0], r),
    "input int": lambda x, r: (x.int(), r.int()),
    "input ndarray": lambda x, r: (x.numpy(), r),
}


@pytest.mark.parametrize("case", list(_MALFORMED))
def test_malformed_input_raises_torchvisions_exception_type(tv_ops, case):
    """Code that catches what torchvision raises catches roipool's error too,
    which is also roipool's own ValueError / TypeError with its message."""
    x = torch.zeros((2, 3, 8, 8))
    r = torch.tensor([[0.0, 1, 1, 4, 4], [1, 0, 0, 2, 2]])
    args = _MALFORMED[case](x, r)
    with pytest.raises(Exception) as tv_info:
        tv_ops.roi_pool(*args, 2)
    tv_type = type(tv_info.value)
    assert tv_type in (AssertionError, IndexError, RuntimeError, TypeError), tv_type
    with pytest.raises(tv_type) as info:
        rt.roi_pool(*args, 2)
    assert isinstance(info.value, (ValueError, TypeError))
    assert any(name in str(info.value) for name in ("boxes", "input")), info.value


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("scale", [1.0, 0.7, 0.3, 1 / 16])
def test_numpy_compat_torchvision_equals_torchvision(tv_ops, dtype, scale):
    """roipool.roi_pooling(..., compat="torchvision") on NumPy arrays is
    torchvision's CPU roi_pool, bit for bit, argmax included: random boxes, and
    every half-integer corner over a row (where the scale's rounding shows)."""
    x, rois = make_case(int(scale * 1000) + 1, scale, dtype)
    W = 600
    row = torch.arange(W, dtype=torch.float32).to(dtype).reshape(1, 1, 1, W)
    xs = torch.arange(0, (W - 2) / scale, 0.5, dtype=torch.float64)
    corners = torch.zeros((len(xs), 5), dtype=torch.float64)
    corners[:, 1] = corners[:, 3] = xs
    corners = corners.to(dtype)
    for data, boxes, size in [(x, rois, (3, 4)), (row, corners, 1)]:
        ph, pw = (size, size) if isinstance(size, int) else size
        tv_out, tv_arg = torch.ops.torchvision.roi_pool(data, boxes, scale, ph, pw)
        out, arg = roipool.roi_pooling(data.numpy(), boxes.numpy(), size, scale,
                                       return_argmax=True, compat="torchvision")
        assert out.dtype == data.numpy().dtype
        assert np.array_equal(out.view(np.uint8), tv_out.numpy().view(np.uint8))
        assert np.array_equal(arg, tv_arg.numpy())
        assert (arg >= 0).sum() > arg.size // 2
