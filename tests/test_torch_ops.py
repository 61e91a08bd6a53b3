"""The registered operators torch.ops.roipool.* (issue 10, point 1).

* ``torch.library.opcheck`` (schema, autograd registration, fake tensor,
  aot_dispatch_dynamic) passes for every operator in float32, float64,
  float16 and bfloat16, for contiguous, channels-last and strided inputs.
* The fake kernels give the real kernels' shapes, dtypes and strides, with a
  symbolic number of boxes.
* ``roipool::roi_pool`` writes an argmax only when autograd will need it.
* ``num_threads=-1`` is resolved when the kernel runs, from torch's setting.
"""

import pytest

from helpers import asks_argmax, import_peer  # noqa: E402

torch = import_peer("torch")
import_peer("ml_dtypes")  # bfloat16 tensors reach the kernels through it

import roipool  # noqa: E402
import roipool.torch  # noqa: E402, F401  (registers the operators)
from roipool.torch import _ops as _torch_ops  # noqa: E402

ops = torch.ops.roipool
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
LAYOUTS = ["contiguous", "channels_last", "strided"]


def make_input(dtype, layout, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((2, 4, 9, 11), generator=g).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.zeros((2, 8, 20, 13), dtype=dtype)[:, ::2, 1:19:2, 1:12].copy_(x)
        assert not x.is_contiguous()
    rois = torch.tensor([[0, 1, 1, 12, 9], [1, 0, 0, 30, 40], [1, 8, 6, 3, 2],
                         [0, -5, -4, 6, 7], [1, 10, 3, 20, 15]], dtype=dtype)
    return x.requires_grad_(requires_grad), rois


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_opcheck_forward_ops(dtype, layout):
    # roi_pool_forward is the no-argmax kernel roi_pool uses when nothing
    # needs a gradient: it has no autograd formula, so no input requiring one
    for op, grads in ((ops.roi_pool_with_argmax, (False, True)), (ops.roi_pool_forward, (False,)),
                      (ops.roi_pool, (False, True))):
        for grad in grads:
            x, rois = make_input(dtype, layout, requires_grad=grad)
            torch.library.opcheck(op, (x, rois, 0.5, 3, 2), {"compat": "torchvision"})
        torch.library.opcheck(op, (x, rois, 0.7, 2, 2, "mxnet", 1))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_opcheck_backward_op(dtype):
    x, rois = make_input(dtype, "contiguous")
    out, argmax = ops.roi_pool_with_argmax(x, rois, 0.5, 3, 2)
    grad = torch.randn(out.shape).to(dtype)
    torch.library.opcheck(ops.roi_pool_backward, (grad, rois, argmax, 2, 4, 9, 11))
    # a strided output gradient (a slice of a larger one) is read in place
    wide = torch.randn((5, 8, 3, 2)).to(dtype)[:, ::2]
    torch.library.opcheck(ops.roi_pool_backward, (wide, rois, argmax, 2, 4, 9, 11, 1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fake_kernels_match_real_ones(layout):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    x, rois = make_input(torch.float32, layout)
    real = ops.roi_pool_with_argmax(x, rois, 0.5, 3, 2)
    with FakeTensorMode(shape_env=ShapeEnv()) as mode:
        fx = mode.from_tensor(x)
        fr = mode.from_tensor(rois, symbolic_context=None)
        fake = ops.roi_pool_with_argmax(fx, fr, 0.5, 3, 2)
    for a, b in zip(real, fake):
        assert (a.shape, a.dtype, a.stride()) == (tuple(b.shape), b.dtype, b.stride())
    assert real[0].is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")


def test_fake_kernel_box_count_is_symbolic():
    x, rois = make_input(torch.float32, "contiguous")
    rois = rois[:3]  # not 5 rows: the box count would share the symbol of rois' width
    gm = torch.fx.experimental.proxy_tensor.make_fx(
        lambda a, r: ops.roi_pool(a, r, 0.5, 3, 2), tracing_mode="symbolic")(x, rois)
    (out,) = [n for n in gm.graph.nodes if n.op == "output"][0].args[0:1]
    shape = out.meta["val"].shape
    assert isinstance(shape[0], torch.SymInt) and tuple(shape[1:]) == (4, 3, 2)
    more = torch.cat([rois, rois, rois])
    assert torch.equal(gm(x, more), ops.roi_pool(x, more, 0.5, 3, 2))


def test_argmax_only_when_autograd_needs_it(monkeypatch):
    calls = []
    real = _torch_ops.roi_pooling
    monkeypatch.setattr(_torch_ops, "roi_pooling",
                        lambda *a, **kw: calls.append(asks_argmax(kw)) or real(*a, **kw))
    x, rois = make_input(torch.float32, "contiguous")
    plain = ops.roi_pool(x, rois, 0.5, 3, 2)
    xg = x.clone().requires_grad_(True)
    with_grad = ops.roi_pool(xg, rois, 0.5, 3, 2)
    with torch.no_grad():
        no_grad = ops.roi_pool(xg, rois, 0.5, 3, 2)
    assert calls == [False, True, False]
    assert torch.equal(plain, with_grad) and torch.equal(plain, no_grad)
    with_grad.sum().backward()
    assert xg.grad.abs().sum() > 0


def test_ops_equal_the_numpy_kernels():
    x, rois = make_input(torch.float64, "strided")
    out, argmax = ops.roi_pool_with_argmax(x, rois, 0.7, 3, 2, "mxnet")
    want, want_arg = roipool.roi_pooling(x.numpy(), rois.numpy(), (3, 2), 0.7,
                                         return_argmax=True)
    assert argmax.dtype == torch.int32
    assert (out.numpy() == want).all() and (argmax.numpy() == want_arg).all()
    grad = torch.randn(out.shape, dtype=torch.float64)
    got = ops.roi_pool_backward(grad, rois, argmax, 2, 4, 9, 11)
    assert (got.numpy() == roipool.roi_pooling_backward(grad.numpy(), rois.numpy(), want_arg,
                                                        (2, 4, 9, 11))).all()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_default_thread_count_is_read_when_the_kernel_runs(monkeypatch):
    used = []
    real = _torch_ops.roi_pooling
    monkeypatch.setattr(_torch_ops, "roi_pooling",
                        lambda *a, **kw: used.append(kw["num_threads"]) or real(*a, **kw))
    x, rois = make_input(torch.float32, "contiguous")
    traced = torch.jit.trace(lambda a, r: ops.roi_pool(a, r, 0.5, 3, 2), (x, rois))
    used.clear()  # the trace's own runs
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        traced(x, rois)
        ops.roi_pool(x, rois, 0.5, 3, 2, num_threads=3)
    finally:
        torch.set_num_threads(before)
    traced(x, rois)
    assert used == [1, 3, max(1, min(before, roipool._roi_pool.omp_max_threads()))]
