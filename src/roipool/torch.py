"""PyTorch front end: ``roipool.torch.roi_pool`` is a drop-in for ``torchvision.ops.roi_pool``.

>>> import torch, roipool.torch
>>> x = torch.arange(48.0).reshape(1, 1, 8, 6)
>>> roipool.torch.roi_pool(x, torch.tensor([[0.0, 0, 0, 4, 4]]), (2, 2), 0.7)[0, 0]
tensor([[ 7.,  9.],
        [19., 21.]])

Differences from calling :func:`roipool.roi_pooling` on the tensors' arrays:

* ``compat="torchvision"`` is the default. torchvision converts
  ``spatial_scale`` to the input's dtype and multiplies each box coordinate by
  it in that dtype. For float32 that is MXNet's rule too; for float64 MXNet
  first rounds the scale to float32, so the two can differ by one cell
  (float64, scale 0.7, x1 = 5: torchvision 4, MXNet 3). With this default the
  result equals ``torchvision.ops.roi_pool`` element by element at every
  scale. Pass ``compat="mxnet"`` for MXNet's numbers.
* ``num_threads=None`` uses ``torch.get_num_threads()``, further limited by
  roipool's OpenMP default (``OMP_NUM_THREADS``, threadpoolctl).

Tensors are CPU only (another device raises ValueError naming it). Nothing is
copied between torch and the kernels: the input, the boxes and the output
gradient are passed as NumPy views of the tensors' memory (``Tensor.numpy()``),
and the result is wrapped with ``torch.from_numpy`` (float32, float64 and
float16 directly, bfloat16 through ``ml_dtypes``, imported only when a
bfloat16 tensor comes). Boxes given as a list are concatenated into one
[K, 5] tensor first, as torchvision does.
A channels-last input is read in place and gives a channels-last output
(torchvision returns a contiguous one; the values are the same). Boxes of
another dtype are converted to the input's dtype (torchvision raises).

The backward pass is :func:`roipool.roi_pooling_backward`: deterministic,
bit-identical for any thread count, and equal to torchvision's CPU backward.
Boxes get no gradient. Importing ``roipool`` never imports torch; only this
module does.
"""
import numpy as np
import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from roipool import _roi_pool
from roipool._ops import roi_pooling, roi_pooling_backward
from roipool._validate import check_pooled_size

__all__ = ["roi_pool", "RoIPool"]

_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(
            "roipool.torch: bfloat16 tensors need the ml_dtypes package "
            "(pip install ml_dtypes)"
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def _numpy_dtype(dtype):
    if dtype == torch.bfloat16:
        return _bfloat16()
    return {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}[dtype]


def _to_numpy(t):
    """A NumPy view of a CPU tensor's memory (strides kept, no copy)."""
    t = t.detach().resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_bfloat16())
    return t.numpy()


def _from_numpy(a, dtype):
    """A tensor sharing a's memory (strides kept, no copy)."""
    if dtype == torch.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _check_cpu(t, name):
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(
            f"roipool.torch runs on the CPU only; {name} is on device '{t.device}' "
            f"(use torchvision.ops.roi_pool there, or move it with .cpu())"
        )
    if t.layout != torch.strided:
        raise ValueError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")


def _rois(boxes, input):
    """Tensor[K, 5], or torchvision's List[Tensor[L, 4]] converted as its
    convert_boxes_to_roi_format does: batch index i in front of image i's boxes."""
    if isinstance(boxes, Tensor):
        _check_cpu(boxes, "boxes")
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                f"boxes must be a Tensor[K, 5] or a list of Tensor[L, 4], "
                f"got a tensor of shape {tuple(boxes.shape)}"
            )
        return boxes
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(
            f"boxes must be a Tensor[K, 5] or a list of Tensor[L, 4], got {type(boxes).__name__}"
        )
    parts = []
    for i, b in enumerate(boxes):
        _check_cpu(b, f"boxes[{i}]")
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes[{i}] must be a Tensor[L, 4], got shape {tuple(b.shape)}")
        parts.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))
    if not parts:
        return input.new_zeros((0, 5))
    return torch.cat(parts, dim=0)


def _scale_rule(compat, spatial_scale, dtype):
    """(core compat, scale) that give torchvision's CPU arithmetic for this dtype.

    torchvision 0.29's CPU kernel takes ``const T spatial_scale``: the scale
    is rounded to the tensor's dtype T and each coordinate is multiplied in T.
    For float64 that is roipool's "torchvision" rule (a double product). For
    the other dtypes, rounding the scale to T here and using the "mxnet" rule
    (scale -> float32 -> T, exact for a T value, product in T) is the same.
    """
    if compat != "torchvision" or dtype == torch.float64:
        return compat, spatial_scale
    if isinstance(spatial_scale, (bool, np.bool_)) or not isinstance(
            spatial_scale, (int, float, np.integer, np.floating)):
        return "mxnet", spatial_scale  # not a number: roi_pooling names it
    with np.errstate(over="ignore", under="ignore"):
        t = _numpy_dtype(dtype)
        return "mxnet", float(np.asarray(float(spatial_scale)).astype(t))


class _RoIPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, compat, num_threads):
        out, argmax = roi_pooling(_to_numpy(input), _to_numpy(rois), output_size,
                                  spatial_scale, return_argmax=True, compat=compat,
                                  num_threads=num_threads)
        ctx.save_for_backward(rois, torch.from_numpy(argmax))
        ctx.data_shape = tuple(input.shape)
        ctx.num_threads = num_threads
        return _from_numpy(out, input.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        rois, argmax = ctx.saved_tensors
        grad = roi_pooling_backward(_to_numpy(grad_output), _to_numpy(rois), argmax.numpy(),
                                    ctx.data_shape, num_threads=ctx.num_threads)
        return _from_numpy(grad, grad_output.dtype), None, None, None, None, None


def roi_pool(input, boxes, output_size, spatial_scale=1.0, *, compat="torchvision",
             num_threads=None):
    """ROI max pooling with torchvision's signature, on CPU tensors.

    Parameters
    ----------
    input : Tensor[N, C, H, W]
        float32, float64, float16 or bfloat16, on the CPU; any strides.
    boxes : Tensor[K, 5] or list of Tensor[L, 4]
        Rows ``(batch_index, x1, y1, x2, y2)``, or per image ``(x1, y1, x2, y2)``.
    output_size : int or (int, int)
        (PH, PW) of each pooled region.
    spatial_scale : float
        Feature-map size / image size.
    compat : {"torchvision", "mxnet"}
        Whose coordinate rounding to follow (see the module docstring).
    num_threads : int, optional
        Threads for this call; None is ``torch.get_num_threads()`` capped by
        roipool's OpenMP default.

    Returns
    -------
    Tensor[K, C, PH, PW] of input's dtype. Differentiable with respect to input.
    """
    _check_cpu(input, "input")
    if input.dtype not in _FLOATS:
        raise TypeError(
            f"input must be a float32, float64, float16 or bfloat16 tensor, got {input.dtype}"
        )
    rois = _rois(boxes, input)
    try:
        output_size = check_pooled_size(output_size)
    except ValueError as exc:
        raise ValueError(str(exc).replace("pooled_size", "output_size")) from None
    if num_threads is None:
        num_threads = max(1, min(torch.get_num_threads(), _roi_pool.omp_max_threads()))
    compat, spatial_scale = _scale_rule(compat, spatial_scale, input.dtype)
    if torch.is_grad_enabled() and input.requires_grad:
        return _RoIPoolFunction.apply(input, rois, output_size, spatial_scale, compat,
                                      num_threads)
    # No graph to record: skip the argmax, which halves the output traffic.
    out = roi_pooling(_to_numpy(input), _to_numpy(rois), output_size, spatial_scale,
                      compat=compat, num_threads=num_threads)
    return _from_numpy(out, input.dtype)


class RoIPool(nn.Module):
    """Module form of :func:`roi_pool`, like ``torchvision.ops.RoIPool``.

    ``RoIPool(output_size, spatial_scale)(input, boxes)`` equals
    ``roi_pool(input, boxes, output_size, spatial_scale)``; ``compat`` and
    ``num_threads`` are passed through.
    """

    def __init__(self, output_size, spatial_scale, *, compat="torchvision", num_threads=None):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.compat = compat
        self.num_threads = num_threads

    def forward(self, input, rois):
        return roi_pool(input, rois, self.output_size, self.spatial_scale, compat=self.compat,
                        num_threads=self.num_threads)

    def __repr__(self):
        extra = "" if self.num_threads is None else f", num_threads={self.num_threads}"
        return (f"{self.__class__.__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, compat={self.compat!r}{extra})")
