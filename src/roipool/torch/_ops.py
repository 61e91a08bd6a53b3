"""roipool's kernels as torch operators (``torch.ops.roipool.*``), defined with
``torch.library`` from Python so the compiled extension never links torch.

* ``roipool::roi_pool(input, rois, spatial_scale, pooled_height, pooled_width,
  compat="torchvision", num_threads=-1) -> Tensor``: what ``roipool.torch.roi_pool``
  calls and what traced, scripted and exported programs record. It is
  CompositeImplicitAutograd, as ``aten::max_pool2d`` is: when autograd will need
  the argmax it runs ``roi_pool_with_argmax``, otherwise ``roi_pool_forward``,
  which skips the argmax (writing it takes 2-4x the time of the values alone).
  The choice is made at run time in eager, TorchScript and traced programs, and
  at trace time (with guards) by torch.compile and torch.export.
* ``roipool::roi_pool_forward(...) -> Tensor`` and
  ``roipool::roi_pool_with_argmax(...) -> (Tensor, Tensor)`` (argmax int32, the
  kernel's own), with fake kernels for symbolic shapes; the second has roipool's
  deterministic backward registered as its autograd formula.
* ``roipool::roi_pool_backward(grad, rois, argmax, batch_size, channels,
  height, width, num_threads=-1) -> Tensor``.
* ``roipool::roi_align(input, rois, spatial_scale, pooled_height, pooled_width,
  sampling_ratio=-1, aligned=False, compat="torchvision", num_threads=-1) -> Tensor``
  with a fake kernel and roipool's deterministic backward,
  ``roipool::roi_align_backward(grad, rois, spatial_scale, pooled_height,
  pooled_width, batch_size, channels, height, width, sampling_ratio, aligned,
  compat, num_threads) -> Tensor``, as its autograd formula.

``num_threads=-1`` is resolved inside the kernels (``torch.get_num_threads()``
capped by roipool's OpenMP default), so traced programs hold no thread count
and a DataLoader worker, where torch sets 1 thread, runs roipool on one.
"""
import numpy as np
import torch
from torch import Tensor

from roipool import _roi_pool
from roipool._arrays import bfloat16, new_output
from roipool._ops import roi_align, roi_align_backward, roi_pooling, roi_pooling_backward
from roipool._validate import check_num_threads

FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
DEFAULT_THREADS = -1  # resolved in the kernel, at run time


def _bfloat16():
    return bfloat16("roipool.torch: bfloat16 tensors")


def to_numpy(t):
    """A NumPy view of a CPU tensor's memory (strides kept, no copy)."""
    if t.dtype == torch.bfloat16:
        t = t.detach().resolve_neg().resolve_conj()
        return t.view(torch.int16).numpy().view(_bfloat16())
    try:  # the common tensor, in one step
        return t.numpy()
    except RuntimeError:  # it requires grad, or is a negative or conjugate view
        return t.detach().resolve_neg().resolve_conj().numpy()


def from_numpy(a, dtype):
    """A tensor sharing a's memory (strides kept, no copy)."""
    if dtype == torch.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def threads(num_threads):
    """DEFAULT_THREADS is roipool's resolver capped by torch.get_num_threads()."""
    if num_threads == DEFAULT_THREADS:
        return check_num_threads(None, limit=torch.get_num_threads())
    return num_threads


def out_format(input):
    """The output follows a channels-last input (read in place), as conv does
    and as roi_pooling does for arrays (the same layout rule)."""
    if input.dim() == 4 and not input.is_contiguous() \
            and _roi_pool.channels_last(input.shape[1], input.stride(1), 1, False):
        return torch.channels_last
    return torch.contiguous_format


def check_shapes(input, rois, pooled_height, pooled_width):
    """What the fake kernels can check without values (the kernel checks the rest)."""
    if pooled_height < 1 or pooled_width < 1:
        raise ValueError(f"output_size must be positive, got ({pooled_height}, {pooled_width})")
    if input.dim() != 4:
        raise ValueError(f"input must be 4-D [N, C, H, W], got shape {tuple(input.shape)}")
    if input.dtype not in FLOATS:
        raise TypeError(
            f"input must be a float32, float64, float16 or bfloat16 tensor, got {input.dtype}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be a Tensor[K, 5], got shape {tuple(rois.shape)}")


# NumPy's storage type for each torch dtype the kernels write (bfloat16 as its bits)
_STORAGE = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
            torch.bfloat16: np.int16, torch.int32: np.int32}


def empty_pooled(input, rois, pooled_height, pooled_width, dtype, fmt):
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    return torch.empty(shape, dtype=dtype, device=input.device, memory_format=fmt)


def numpy_pooled(input, rois, pooled_height, pooled_width, dtype, fmt):
    """empty_pooled's tensor in memory roipool allocates (new_output, as the
    NumPy call does): a large output is a recycled block of roipool's output
    cache, or else NumPy memory on transparent huge pages; either makes the
    kernel's writes several times faster than into torch.empty's fresh pages.
    The tensor references the block, so it is never handed out while alive."""
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    a = new_output(shape, _STORAGE[dtype], "out", fmt == torch.channels_last)
    t = torch.from_numpy(a)
    return t.view(dtype) if dtype == torch.bfloat16 else t


def forward(input, rois, spatial_scale, pooled_height, pooled_width, compat, num_threads,
            with_argmax, fmt=None):
    """roi_pooling on the tensors' memory, into (or as) the returned tensors."""
    check_shapes(input, rois, pooled_height, pooled_width)
    if input.is_contiguous():
        # out_format is contiguous, as roi_pooling's own outputs are for such
        # data: let it allocate them (its fast path; no out= checks to pass)
        res = roi_pooling(to_numpy(input), to_numpy(rois), (pooled_height, pooled_width), spatial_scale,
                          argmax=None, return_argmax=with_argmax, compat=compat,
                          num_threads=threads(num_threads))
        out, argmax = res if with_argmax else (res, None)
        return from_numpy(out, input.dtype), None if argmax is None else torch.from_numpy(argmax)
    fmt = out_format(input) if fmt is None else fmt
    out = numpy_pooled(input, rois, pooled_height, pooled_width, input.dtype, fmt)
    argmax = numpy_pooled(input, rois, pooled_height, pooled_width, torch.int32, fmt) \
        if with_argmax else None
    roi_pooling(to_numpy(input), to_numpy(rois), (pooled_height, pooled_width), spatial_scale,
                out=to_numpy(out), argmax=None if argmax is None else argmax.numpy(),
                compat=compat, num_threads=threads(num_threads))
    return out, argmax


def backward(grad, rois, argmax, data_shape, num_threads):
    g = roi_pooling_backward(to_numpy(grad), to_numpy(rois), argmax.numpy(), data_shape,
                             num_threads=threads(num_threads))
    return from_numpy(g, grad.dtype)


def align_forward(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio,
                  aligned, compat, num_threads, fmt=None):
    """roi_align on the tensors' memory, into (or as) the returned tensor."""
    check_shapes(input, rois, pooled_height, pooled_width)
    args = ((pooled_height, pooled_width), spatial_scale, sampling_ratio, aligned)
    fmt = out_format(input) if fmt is None else fmt
    if fmt == out_format(input) and input.is_contiguous():
        out = roi_align(to_numpy(input), to_numpy(rois), *args, compat=compat,
                        num_threads=threads(num_threads))
        return from_numpy(out, input.dtype)
    out = numpy_pooled(input, rois, pooled_height, pooled_width, input.dtype, fmt)
    roi_align(to_numpy(input), to_numpy(rois), *args, out=to_numpy(out), compat=compat,
              num_threads=threads(num_threads))
    return out


def align_backward(grad, rois, spatial_scale, sampling_ratio, aligned, data_shape, compat,
                   num_threads):
    g = roi_align_backward(to_numpy(grad), to_numpy(rois), data_shape, spatial_scale,
                           sampling_ratio, aligned, compat=compat,
                           num_threads=threads(num_threads))
    return from_numpy(g, grad.dtype)


# ----------------------------------------------------------------------------- operators


@torch.library.custom_op("roipool::roi_pool_forward", mutates_args=(), device_types="cpu")
def roi_pool_forward(input: Tensor, rois: Tensor, spatial_scale: float, pooled_height: int,
                     pooled_width: int, compat: str = "torchvision",
                     num_threads: int = DEFAULT_THREADS) -> Tensor:
    return forward(input, rois, spatial_scale, pooled_height, pooled_width, compat,
                   num_threads, False)[0]


@torch.library.custom_op("roipool::roi_pool_with_argmax", mutates_args=(), device_types="cpu")
def roi_pool_with_argmax(input: Tensor, rois: Tensor, spatial_scale: float, pooled_height: int,
                         pooled_width: int, compat: str = "torchvision",
                         num_threads: int = DEFAULT_THREADS) -> tuple[Tensor, Tensor]:
    return forward(input, rois, spatial_scale, pooled_height, pooled_width, compat,
                   num_threads, True)


@torch.library.custom_op("roipool::roi_pool_backward", mutates_args=(), device_types="cpu")
def roi_pool_backward(grad: Tensor, rois: Tensor, argmax: Tensor, batch_size: int,
                      channels: int, height: int, width: int,
                      num_threads: int = DEFAULT_THREADS) -> Tensor:
    return backward(grad, rois, argmax, (batch_size, channels, height, width), num_threads)


@roi_pool_forward.register_fake
def _(input, rois, spatial_scale, pooled_height, pooled_width, compat="torchvision",
      num_threads=DEFAULT_THREADS):
    check_shapes(input, rois, pooled_height, pooled_width)
    return empty_pooled(input, rois, pooled_height, pooled_width, input.dtype,
                        out_format(input))


@roi_pool_with_argmax.register_fake
def _(input, rois, spatial_scale, pooled_height, pooled_width, compat="torchvision",
      num_threads=DEFAULT_THREADS):
    check_shapes(input, rois, pooled_height, pooled_width)
    fmt = out_format(input)
    return (empty_pooled(input, rois, pooled_height, pooled_width, input.dtype, fmt),
            empty_pooled(input, rois, pooled_height, pooled_width, torch.int32, fmt))


@roi_pool_backward.register_fake
def _(grad, rois, argmax, batch_size, channels, height, width, num_threads=DEFAULT_THREADS):
    return grad.new_empty((batch_size, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois, *_, num_threads = inputs
    # argmax has no gradient: without this autograd fills a zero one as large as
    # the output for every backward (half of the backward's time)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(rois, output[1])
    ctx.data_shape = tuple(input.shape)
    ctx.num_threads = num_threads


def _backward(ctx, grad_out, _grad_argmax):
    if grad_out is None:  # only argmax was used
        return None, None, None, None, None, None, None
    rois, argmax = ctx.saved_tensors
    grad = torch.ops.roipool.roi_pool_backward(grad_out, rois, argmax, *ctx.data_shape,
                                               ctx.num_threads)
    return grad, None, None, None, None, None, None


roi_pool_with_argmax.register_autograd(_backward, setup_context=_setup_context)

_lib = torch.library.Library("roipool", "FRAGMENT")
_lib.define("roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
            "SymInt pooled_width, str compat=\"torchvision\", int num_threads=-1) -> Tensor")


@torch.library.impl(_lib, "roi_pool", "CompositeImplicitAutograd")
def _roi_pool_composite(input, rois, spatial_scale, pooled_height, pooled_width, compat="torchvision",
              num_threads=DEFAULT_THREADS):
    if torch.is_grad_enabled() and (input.requires_grad or rois.requires_grad):
        return torch.ops.roipool.roi_pool_with_argmax(
            input, rois, spatial_scale, pooled_height, pooled_width, compat, num_threads)[0]
    return torch.ops.roipool.roi_pool_forward(
        input, rois, spatial_scale, pooled_height, pooled_width, compat, num_threads)


@torch.library.custom_op("roipool::roi_align", mutates_args=(), device_types="cpu")
def roi_align_op(input: Tensor, rois: Tensor, spatial_scale: float, pooled_height: int,
                 pooled_width: int, sampling_ratio: int = -1, aligned: bool = False,
                 compat: str = "torchvision", num_threads: int = DEFAULT_THREADS) -> Tensor:
    return align_forward(input, rois, spatial_scale, pooled_height, pooled_width,
                         sampling_ratio, aligned, compat, num_threads)


@torch.library.custom_op("roipool::roi_align_backward", mutates_args=(), device_types="cpu")
def roi_align_backward_op(grad: Tensor, rois: Tensor, spatial_scale: float,
                          pooled_height: int, pooled_width: int, batch_size: int,
                          channels: int, height: int, width: int, sampling_ratio: int = -1,
                          aligned: bool = False, compat: str = "torchvision",
                          num_threads: int = DEFAULT_THREADS) -> Tensor:
    return align_backward(grad, rois, spatial_scale, sampling_ratio, aligned,
                          (batch_size, channels, height, width), compat, num_threads)


@roi_align_op.register_fake
def _(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio=-1,
      aligned=False, compat="torchvision", num_threads=DEFAULT_THREADS):
    check_shapes(input, rois, pooled_height, pooled_width)
    return empty_pooled(input, rois, pooled_height, pooled_width, input.dtype,
                        out_format(input))


@roi_align_backward_op.register_fake
def _(grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height,
      width, sampling_ratio=-1, aligned=False, compat="torchvision",
      num_threads=DEFAULT_THREADS):
    return grad.new_empty((batch_size, channels, height, width))


def _align_setup_context(ctx, inputs, output):
    input, rois, spatial_scale, ph, pw, sampling_ratio, aligned, compat, num_threads = inputs
    ctx.save_for_backward(rois)
    ctx.args = (spatial_scale, ph, pw) + tuple(input.shape) + (sampling_ratio, aligned,
                                                               compat, num_threads)


def _align_backward(ctx, grad_out):
    (rois,) = ctx.saved_tensors
    grad = torch.ops.roipool.roi_align_backward(grad_out, rois, *ctx.args)
    return grad, None, None, None, None, None, None, None, None


roi_align_op.register_autograd(_align_backward, setup_context=_align_setup_context)
