"""PyTorch front end: ``roipool.torch.roi_pool`` and ``roi_align`` are drop-ins for
``torchvision.ops.roi_pool`` and ``roi_align``.

>>> import torch, roipool.torch
>>> x = torch.arange(48.0).reshape(1, 1, 8, 6)
>>> roipool.torch.roi_pool(x, torch.tensor([[0.0, 0, 0, 4, 4]]), (2, 2), 0.7)[0, 0]
tensor([[ 7.,  9.],
        [19., 21.]])

Importing this module registers roipool's operators with torch
(``torch.ops.roipool.roi_pool`` and ``roi_align`` and their forward/backward
kernels, see ``roipool.torch._ops``) and their ONNX translations to
``MaxRoiPool`` and ``RoiAlign``, so it
must be imported before loading a TorchScript, ``torch.export`` or compiled
program that uses them. ``roi_pool`` is scriptable (``torch.jit.script``) and
stays one node under ``torch.fx.symbolic_trace``; nothing in it breaks a
``torch.compile`` graph. A plain eager call that autograd need not record
(float32/float64 CPU tensors, no tracing, compiling, functorch, mode or
profiler active) runs the operator's kernel without going through the
dispatcher, which would cost more than a small call's kernel; every other call,
and every program that records operators, goes through
``torch.ops.roipool.roi_pool``.

Differences from calling :func:`roipool.roi_pooling` on the tensors' arrays:

* ``compat="torchvision"`` is the default (``roi_pooling``'s is "mxnet"; the
  name means the same in both). torchvision converts ``spatial_scale`` to the
  input's dtype and multiplies each box coordinate by it in that dtype. For
  float32 that is MXNet's rule too; for float64 MXNet first rounds the scale
  to float32, so the two can differ by one cell (float64, scale 0.7, x1 = 5:
  torchvision 4, MXNet 3). With this default the result equals
  ``torchvision.ops.roi_pool`` element by element at every scale. Pass
  ``compat="mxnet"`` for MXNet's numbers.
* ``num_threads=None`` uses ``torch.get_num_threads()``, further limited by
  roipool's OpenMP default (``OMP_NUM_THREADS``, threadpoolctl), read when the
  kernel runs.

Tensors are CPU only (another device raises ValueError naming it). Nothing is
copied between torch and the kernels: the input, the boxes and the output
gradient are passed as NumPy views of the tensors' memory, and the kernel
writes into the output tensor (bfloat16 goes through ``ml_dtypes``, imported
only when a bfloat16 tensor comes). Boxes given as a list are concatenated
into one [K, 5] tensor first, as torchvision does. A channels-last input is
read in place and gives a channels-last output (torchvision returns a
contiguous one; the values are the same). Boxes of another dtype are converted
to the input's dtype (torchvision raises).

Malformed boxes raise the exception type torchvision raises (AssertionError
for a wrong shape, IndexError for a tensor with fewer than 2 dimensions),
through a subclass that is also roipool's ValueError or TypeError.

The backward pass is :func:`roipool.roi_pooling_backward`: deterministic,
bit-identical for any thread count, and equal to torchvision's CPU backward.
Boxes get no gradient. Importing ``roipool`` never imports torch; only this
module does.

:func:`patch_torchvision` makes roipool the CPU kernel of torchvision's own
operator, so unmodified torchvision code and saved programs run on it.
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.fx
from torch import Tensor, nn
from torch.jit.annotations import BroadcastingList2

from roipool._validate import check_num_threads, check_pooled_size
from roipool.torch import _onnx
from roipool.torch import _ops  # registers torch.ops.roipool.*
from roipool.torch._patch import patch_torchvision, unpatch_torchvision

__all__ = ["roi_pool", "RoIPool", "roi_align", "RoIAlign", "patch_torchvision", "unpatch_torchvision",
           "onnx_translation_table"]

_onnx.register_legacy_symbolic()
onnx_translation_table = _onnx.onnx_translation_table


# torchvision checks boxes with torch._assert (AssertionError) and indexes
# size(1) (IndexError for a 1-D tensor); these carry roipool's message and
# are both roipool's error type and torchvision's.
class BoxesShapeError(ValueError, AssertionError):
    pass


class BoxesTypeError(TypeError, AssertionError):
    pass


class BoxesDimError(ValueError, IndexError):
    pass


# torchvision's kernel raises RuntimeError for an input it cannot take.
class InputShapeError(ValueError, RuntimeError):
    pass


class InputTypeError(TypeError, RuntimeError):
    pass


_BOXES = "boxes must be a Tensor[K, 5] or a list of Tensor[L, 4]"


def _check_tensor(t: Tensor, name: str):
    if t.device.type != "cpu":
        raise ValueError(
            f"roipool.torch runs on the CPU only; {name} is on device '{t.device}' "
            f"(use torchvision.ops.roi_pool there, or move it with .cpu())")
    if t.layout != torch.strided:
        raise ValueError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")


def _check_box_tensor(b: Tensor, name: str, width: int, what: str):
    _check_tensor(b, name)
    if b.dim() < 2:
        raise BoxesDimError(f"{name} must be a {what}, got shape {list(b.shape)}")
    if b.dim() != 2 or b.shape[1] != width:
        raise BoxesShapeError(f"{name} must be a {what}, got shape {list(b.shape)}")


def _check_eager_args(input, spatial_scale):
    if not isinstance(input, Tensor):
        raise InputTypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float)):
        raise TypeError(f"spatial_scale must be a float, got {type(spatial_scale).__name__}")


def _check_input(input: Tensor):
    _check_tensor(input, "input")
    if input.dtype not in [torch.float32, torch.float64, torch.float16, torch.bfloat16]:
        raise InputTypeError(
            f"input must be a float32, float64, float16 or bfloat16 tensor, got {input.dtype}")
    if input.dim() != 4:
        raise InputShapeError(f"input must be 4-D [N, C, H, W], got shape {list(input.shape)}")


def _rois(boxes: Union[Tensor, List[Tensor]], input: Tensor) -> Tensor:
    """Tensor[K, 5], or torchvision's List[Tensor[L, 4]] converted as its
    convert_boxes_to_roi_format does: batch index i in front of image i's boxes."""
    if isinstance(boxes, Tensor):
        _check_box_tensor(boxes, "boxes", 5, "Tensor[K, 5] (or a list of Tensor[L, 4])")
        return boxes
    if not torch.jit.is_scripting():
        if not isinstance(boxes, (list, tuple)):
            raise BoxesTypeError(f"{_BOXES}, got {type(boxes).__name__}")
        for b in boxes:
            if not isinstance(b, Tensor):
                raise BoxesTypeError(f"{_BOXES}, got a list holding {type(b).__name__}")
    parts: List[Tensor] = []
    for i, b in enumerate(boxes):
        _check_box_tensor(b, f"boxes[{i}]", 4, "Tensor[L, 4]")
        parts.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))
    if len(parts) == 0:
        return input.new_zeros((0, 5))
    return torch.cat(parts, dim=0)


def _eager_output_size(output_size):
    try:
        return check_pooled_size(output_size)
    except ValueError as exc:
        raise ValueError(str(exc).replace("pooled_size", "output_size")) from None


def _output_size(output_size: List[int]) -> Tuple[int, int]:
    if not torch.jit.is_scripting():
        return _eager_output_size(output_size)
    if len(output_size) != 2 or output_size[0] < 1 or output_size[1] < 1:
        raise ValueError(f"output_size must be a positive int or a pair of positive ints, "
                         f"got {output_size}")
    return output_size[0], output_size[1]


def _num_threads(num_threads: Optional[int]) -> int:
    if num_threads is None:
        return -1  # the kernel reads torch.get_num_threads() when it runs
    if not torch.jit.is_scripting():
        check_num_threads(num_threads)
    elif num_threads < 1:
        raise ValueError(f"num_threads must be None or an int >= 1, got {num_threads}")
    return num_threads


def _plain_eager(input: Tensor, boxes, compat, compats=("torchvision", "mxnet")) -> bool:
    """Whether this call can run the operator's CPU kernel directly: the
    checks roi_pool makes first (CPU strided tensors, a dtype of _ops.FLOATS,
    4-D input, Tensor[K, 5] boxes, a known compat) all pass, in eager mode
    with no gradient to record and nothing that observes or transforms
    operators (tracing, torch.compile, export's fake tensors, functorch,
    modes, the profiler). The operator's dispatch and composite layer cost
    more than a small call's kernel, and there they would only pick that
    kernel. It says nothing about the arrays: roi_pooling's one rule
    (_roi_pool.plain_arrays, before roipool._ops._plain_call) decides whether
    they take its short path."""
    return (not torch.compiler.is_compiling()
            and type(input) is Tensor and type(boxes) is Tensor
            and input.dtype in _ops.FLOATS
            and input.is_cpu and input.layout == torch.strided
            and input.dim() == 4 and boxes.dim() == 2 and boxes.shape[1] == 5
            and boxes.is_cpu and boxes.layout == torch.strided
            and compat in compats
            and not (torch.is_grad_enabled() and (input.requires_grad or boxes.requires_grad))
            and torch._C._get_tracing_state() is None
            and not torch._C._are_functorch_transforms_active()
            and not torch._C._is_torch_function_mode_enabled()
            and torch._C._len_torch_dispatch_stack() == 0
            and not torch.autograd._profiler_enabled())


@torch.fx.wrap
def roi_pool(input: Tensor, boxes: Union[Tensor, List[Tensor]],
             output_size: BroadcastingList2[int], spatial_scale: float = 1.0,
             compat: str = "torchvision", num_threads: Optional[int] = None) -> Tensor:
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
        roipool's OpenMP default, read when the kernel runs.

    Returns
    -------
    Tensor[K, C, PH, PW]
        Of input's dtype, channels-last when input is. Differentiable with
        respect to input (the gradient is :func:`roipool.roi_pooling_backward`).

    Raises
    ------
    TypeError
        input is not a tensor, or of another dtype; spatial_scale is not a
        number.
    ValueError
        A tensor not on the CPU, a bad output_size, compat or num_threads, a
        batch index outside the batch, a non-finite coordinate: the
        contract's bad input (``docs/semantics.md``, "Bad input").
    AssertionError, IndexError
        Malformed boxes raise what torchvision raises, through subclasses that
        are also ValueError or TypeError.

    Examples
    --------
    >>> import torch
    >>> from roipool.torch import roi_pool
    >>> x = torch.arange(48.0).reshape(1, 1, 8, 6)
    >>> roi_pool(x, torch.tensor([[0.0, 0, 0, 4, 4]]), (2, 2), 1.0)[0, 0]
    tensor([[14., 16.],
            [26., 28.]])
    >>> roi_pool(x, [torch.tensor([[0.0, 0, 4, 4]])], 2, 0.7)[0, 0]  # boxes per image
    tensor([[ 7.,  9.],
            [19., 21.]])
    """
    if not torch.jit.is_scripting():
        _check_eager_args(input, spatial_scale)
        if _plain_eager(input, boxes, compat):
            # what torch.ops.roipool.roi_pool would run, without the dispatcher
            return _ops.forward(input, boxes, float(spatial_scale),
                                *_eager_output_size(output_size), compat,
                                _num_threads(num_threads), False)[0]
    _check_input(input)
    if compat not in ["torchvision", "mxnet"]:
        raise ValueError(f"compat must be 'torchvision' or 'mxnet', got '{compat}'")
    rois = _rois(boxes, input)
    ph, pw = _output_size(output_size)
    return torch.ops.roipool.roi_pool(input, rois, float(spatial_scale), ph, pw, compat,
                                      _num_threads(num_threads))


class RoIPool(nn.Module):
    """Module form of :func:`roi_pool`, like ``torchvision.ops.RoIPool``.

    ``RoIPool(output_size, spatial_scale)(input, boxes)`` equals
    ``roi_pool(input, boxes, output_size, spatial_scale)``; ``compat`` and
    ``num_threads`` are passed through. Scriptable.

    Parameters
    ----------
    output_size : int or (int, int)
        (PH, PW) of each pooled region.
    spatial_scale : float
        Feature-map size / image size.
    compat : {"torchvision", "mxnet"}, keyword only
        As for :func:`roi_pool`.
    num_threads : int, optional, keyword only
        As for :func:`roi_pool`.

    Raises
    ------
    TypeError, ValueError
        When called, what :func:`roi_pool` raises (``docs/semantics.md``,
        "Bad input").

    Examples
    --------
    >>> import torch
    >>> from roipool.torch import RoIPool
    >>> pool = RoIPool((2, 2), 1.0)
    >>> pool
    RoIPool(output_size=(2, 2), spatial_scale=1.0, compat='torchvision')
    >>> pool(torch.arange(48.0).reshape(1, 1, 8, 6), torch.tensor([[0.0, 0, 0, 4, 4]]))[0, 0]
    tensor([[14., 16.],
            [26., 28.]])
    """

    def __init__(self, output_size: BroadcastingList2[int], spatial_scale: float, *,
                 compat: str = "torchvision", num_threads: Optional[int] = None):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.compat = compat
        self.num_threads = num_threads

    def forward(self, input: Tensor, rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale, self.compat,
                        self.num_threads)

    def __repr__(self) -> str:
        extra = "" if self.num_threads is None else f", num_threads={self.num_threads}"
        return (f"{self.__class__.__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, compat={self.compat!r}{extra})")




@torch.fx.wrap
def roi_align(input: Tensor, boxes: Union[Tensor, List[Tensor]],
              output_size: BroadcastingList2[int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False, compat: str = "torchvision",
              num_threads: Optional[int] = None) -> Tensor:
    """RoIAlign (avg) with ``torchvision.ops.roi_align``'s signature, on CPU tensors.

    The rule is :func:`roipool.roi_align`'s (``docs/semantics.md``,
    "RoIAlign"); with the default compat the output and the gradient equal
    torchvision's CPU ``roi_align`` bit for bit (float32, float64, float16).
    bfloat16 follows roipool's own rule (float32 arithmetic, rounded once).
    Boxes get no gradient. Everything the module docstring says about
    devices, boxes, channels-last inputs and threads holds here too.

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
    sampling_ratio : int
        Samples per bin side; 0 or -1: adaptive (``ceil(roi size / output size)``).
    aligned : bool
        Shift the boxes by half a pixel (detectron2's ROIAlignV2).
    compat : {"torchvision", "mxnet", "onnxruntime"}
        The type the scale is carried in (the last two: float32); they differ
        in float64 at scales that are not float32 numbers.
    num_threads : int, optional
        Threads for this call; None is ``torch.get_num_threads()`` capped by
        roipool's OpenMP default, read when the kernel runs.

    Returns
    -------
    Tensor[K, C, PH, PW]
        Of input's dtype, channels-last when input is. Differentiable with
        respect to input (the gradient is :func:`roipool.roi_align_backward`).

    Raises
    ------
    TypeError
        input is not a tensor, or of another dtype; spatial_scale is not a
        number.
    ValueError
        A tensor not on the CPU, a bad output_size, sampling_ratio, aligned,
        compat or num_threads, a batch index outside the batch, a non-finite
        coordinate: the contract's bad input (``docs/semantics.md``,
        "RoIAlign, bad input and degenerate boxes").
    AssertionError, IndexError
        Malformed boxes raise what torchvision raises, through subclasses that
        are also ValueError or TypeError.

    Examples
    --------
    >>> import torch
    >>> from roipool.torch import roi_align
    >>> x = torch.arange(48.0).reshape(1, 1, 8, 6)
    >>> roi_align(x, torch.tensor([[0.0, 0, 0, 4, 4]]), (2, 2), 1.0)[0, 0]
    tensor([[ 7.,  9.],
            [19., 21.]])
    >>> roi_align(x, [torch.tensor([[0.0, 0, 4, 4]])], 2, 1.0, aligned=True)[0, 0]
    tensor([[ 3.5000,  5.5000],
            [15.5000, 17.5000]])
    """
    if not torch.jit.is_scripting():
        _check_eager_args(input, spatial_scale)
        if _plain_eager(input, boxes, compat, ("torchvision", "mxnet", "onnxruntime")):
            # what torch.ops.roipool.roi_align would run, without the dispatcher
            return _ops.align_forward(input, boxes, float(spatial_scale),
                                      *_eager_output_size(output_size), sampling_ratio,
                                      aligned, compat, _num_threads(num_threads))
    _check_input(input)
    if compat not in ["torchvision", "mxnet", "onnxruntime"]:
        raise ValueError(
            f"compat must be 'torchvision', 'mxnet' or 'onnxruntime', got '{compat}'")
    rois = _rois(boxes, input)
    ph, pw = _output_size(output_size)
    return torch.ops.roipool.roi_align(input, rois, float(spatial_scale), ph, pw,
                                       sampling_ratio, aligned, compat,
                                       _num_threads(num_threads))


class RoIAlign(nn.Module):
    """Module form of :func:`roi_align`, like ``torchvision.ops.RoIAlign``.

    ``RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)(input,
    boxes)`` equals ``roi_align(input, boxes, output_size, spatial_scale,
    sampling_ratio, aligned)``; ``compat`` and ``num_threads`` are passed
    through. Scriptable.

    Parameters
    ----------
    output_size : int or (int, int)
        (PH, PW) of each pooled region.
    spatial_scale : float
        Feature-map size / image size.
    sampling_ratio : int
        As for :func:`roi_align`.
    aligned : bool
        As for :func:`roi_align`.
    compat : {"torchvision", "mxnet", "onnxruntime"}, keyword only
        As for :func:`roi_align`.
    num_threads : int, optional, keyword only
        As for :func:`roi_align`.

    Raises
    ------
    TypeError, ValueError
        When called, what :func:`roi_align` raises (``docs/semantics.md``,
        "RoIAlign, bad input and degenerate boxes").

    Examples
    --------
    >>> import torch
    >>> from roipool.torch import RoIAlign
    >>> pool = RoIAlign((2, 2), 1.0, sampling_ratio=2)
    >>> pool
    RoIAlign(output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=False, compat='torchvision')
    >>> pool(torch.arange(48.0).reshape(1, 1, 8, 6), torch.tensor([[0.0, 0, 0, 4, 4]]))[0, 0]
    tensor([[ 7.,  9.],
            [19., 21.]])
    """

    def __init__(self, output_size: BroadcastingList2[int], spatial_scale: float,
                 sampling_ratio: int = -1, aligned: bool = False, *,
                 compat: str = "torchvision", num_threads: Optional[int] = None):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.compat = compat
        self.num_threads = num_threads

    def forward(self, input: Tensor, rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned, self.compat, self.num_threads)

    def __repr__(self) -> str:
        extra = "" if self.num_threads is None else f", num_threads={self.num_threads}"
        return (f"{self.__class__.__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned}, compat={self.compat!r}{extra})")
