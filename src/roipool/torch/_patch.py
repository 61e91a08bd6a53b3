"""patch_torchvision(): roipool as the CPU kernel of torchvision's roi_pool and
roi_align operators.

The first patch captures torchvision's CPU kernels (``torch.library.get_kernel``)
and registers ours for the CPU key in their place, once for the life of the
process. Ours runs roipool while patched and torchvision's captured kernel
otherwise, so unpatching is a flag: removing a kernel from the dispatcher while
another thread is inside it frees the kernel under that thread. Inputs roipool
does not take the way torchvision does (a dtype torchvision refuses, an empty
grid, a spatial_scale that is not a finite number > 0, a sampling_ratio below
-1 that torchvision treats as adaptive) go to torchvision's
kernel even when patched, so they behave exactly as before. Only the CPU key
is touched: other devices, the fake (meta) kernel and the autograd formula stay
torchvision's.
"""
import math
import threading
import warnings

import torch

from roipool.torch import _ops as ops

SCHEMAS = {
    "roi_pool": "torchvision::roi_pool(Tensor input, Tensor rois, float spatial_scale, "
                "SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward": "torchvision::_roi_pool_backward(Tensor grad, Tensor rois, "
                          "Tensor argmax, float spatial_scale, SymInt pooled_height, "
                          "SymInt pooled_width, SymInt batch_size, SymInt channels, "
                          "SymInt height, SymInt width) -> Tensor",
    "roi_align": "torchvision::roi_align(Tensor input, Tensor rois, float spatial_scale, "
                 "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
                 "bool aligned) -> Tensor",
    "_roi_align_backward": "torchvision::_roi_align_backward(Tensor grad, Tensor rois, "
                           "float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
                           "SymInt batch_size, SymInt channels, SymInt height, "
                           "SymInt width, int sampling_ratio, bool aligned) -> Tensor",
}
# the largest sampling_ratio roipool takes (docs/semantics.md, "RoIAlign, bad input")
_MAX_SAMPLING_RATIO = 46340
# torchvision's CPU kernel dispatches on these (AT_DISPATCH_FLOATING_TYPES_AND_HALF)
_TV_DTYPES = (torch.float32, torch.float64, torch.float16)

_lock = threading.Lock()
_state = {"library": None, "original": {}, "enabled": False}


def _takes(input, rois, spatial_scale, pooled_height, pooled_width):
    """Whether roipool computes this call exactly as torchvision's kernel."""
    return (_state["enabled"] and input.dtype in _TV_DTYPES and rois.dtype == input.dtype
            and input.dim() == 4 and rois.dim() == 2 and rois.shape[1] == 5
            and pooled_height > 0 and pooled_width > 0
            and math.isfinite(spatial_scale) and spatial_scale > 0)


def _takes_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio):
    """Whether roipool computes this roi_align call as torchvision's kernel does
    (or gives its ValueError where torchvision raises or has undefined behaviour)."""
    return (_takes(input, rois, spatial_scale, pooled_height, pooled_width)
            and -1 <= sampling_ratio <= _MAX_SAMPLING_RATIO
            and (input.dtype != torch.float16 or spatial_scale <= _FLOAT16_MAX))


_FLOAT16_MAX = 65504.0  # a larger scale is infinite in float16: torchvision's answer stands


def _roi_align_cpu(keyset, input, rois, spatial_scale, pooled_height, pooled_width,
                   sampling_ratio, aligned):
    if not _takes_align(input, rois, spatial_scale, pooled_height, pooled_width,
                        sampling_ratio):
        return _state["original"]["roi_align"].call_boxed(
            keyset, input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio,
            aligned)
    return ops.align_forward(input, rois, spatial_scale, pooled_height, pooled_width,
                             sampling_ratio, aligned, "torchvision", ops.DEFAULT_THREADS,
                             torch.contiguous_format)


def _roi_align_backward_cpu(keyset, grad, rois, spatial_scale, pooled_height, pooled_width,
                            batch_size, channels, height, width, sampling_ratio, aligned):
    if not (_takes_align(grad, rois, spatial_scale, pooled_height, pooled_width,
                         sampling_ratio) and grad.shape[0] == rois.shape[0]):
        return _state["original"]["_roi_align_backward"].call_boxed(
            keyset, grad, rois, spatial_scale, pooled_height, pooled_width, batch_size,
            channels, height, width, sampling_ratio, aligned)
    return ops.align_backward(grad, rois, spatial_scale, sampling_ratio, aligned,
                              (batch_size, channels, height, width), "torchvision",
                              ops.DEFAULT_THREADS)


def _roi_pool_cpu(keyset, input, rois, spatial_scale, pooled_height, pooled_width):
    if not _takes(input, rois, spatial_scale, pooled_height, pooled_width):
        return _state["original"]["roi_pool"].call_boxed(
            keyset, input, rois, spatial_scale, pooled_height, pooled_width)
    # torchvision's results are contiguous, its argmax int32 like roipool's
    return ops.forward(input, rois, spatial_scale, pooled_height, pooled_width, "torchvision",
                       ops.DEFAULT_THREADS, True, torch.contiguous_format)


def _roi_pool_backward_cpu(keyset, grad, rois, argmax, spatial_scale, pooled_height,
                           pooled_width, batch_size, channels, height, width):
    if not (_takes(grad, rois, spatial_scale, pooled_height, pooled_width)
            and argmax.shape == grad.shape):
        return _state["original"]["_roi_pool_backward"].call_boxed(
            keyset, grad, rois, argmax, spatial_scale, pooled_height, pooled_width,
            batch_size, channels, height, width)
    return ops.backward(grad, rois, argmax, (batch_size, channels, height, width),
                        ops.DEFAULT_THREADS)


def _torchvision_ops():
    if not hasattr(torch.library, "get_kernel"):
        raise RuntimeError(
            f"roipool.torch.patch_torchvision() needs torch.library.get_kernel, which torch "
            f"{torch.__version__} lacks; upgrade torch (tested with 2.14)")
    try:
        import torchvision  # noqa: F401  (loads torchvision's operators)
    except ImportError as exc:
        raise ImportError(
            "roipool.torch.patch_torchvision() needs torchvision, which is not "
            f"importable ({exc})") from exc
    for name, want in SCHEMAS.items():
        try:
            got = str(getattr(torch.ops.torchvision, name).default._schema)
        except (AttributeError, RuntimeError):
            got = None
        if got != want:
            raise RuntimeError(
                f"roipool.torch.patch_torchvision(): torchvision {torchvision.__version__} "
                f"defines {got or 'no operator torchvision::' + name}, expected {want}; "
                f"this torchvision is not supported, nothing was patched")


def patch_torchvision():
    """Run torchvision's ``roi_pool`` and ``roi_align`` operators on roipool for CPU tensors.

    Afterwards ``torchvision.ops.roi_pool``, ``RoIPool``, ``roi_align``,
    ``RoIAlign``, ``MultiScaleRoIAlign`` (torchvision's detection models),
    ``torch.ops.torchvision.roi_pool`` / ``roi_align`` and scripted, exported
    or compiled programs that call them compute with roipool: the same output,
    argmax and gradient as torchvision's CPU kernels, bit for bit, for
    float32, float64 and float16 at any scale. Other devices keep
    torchvision's kernels.
    Calling it again does nothing; :func:`unpatch_torchvision` undoes it. Both
    may be called from any thread at any time. A batch index outside the batch
    or a NaN or infinite box coordinate (on which torchvision's kernel reads
    out of bounds or has undefined behaviour) raises ValueError; so does a
    roi_align box with ``2**31`` samples or more (torchvision raises). An
    aligned box flipped on one axis with adaptive sampling, on which
    torchvision raises, gets roipool's answer, 0, and a feature map with H or
    W = 0 (torchvision crashes) gives zeros (``docs/semantics.md``, "RoIAlign,
    bad input and degenerate boxes").

    Returns
    -------
    None

    Raises
    ------
    ImportError
        torchvision is not installed.
    RuntimeError
        This torch lacks ``torch.library.get_kernel`` (torch < 2.4). Bad
        input to the patched operator is the contract's (``docs/semantics.md``,
        "Bad input").

    Examples
    --------
    >>> import torch, torchvision, roipool.torch
    >>> roipool.torch.patch_torchvision()
    >>> x = torch.arange(48.0).reshape(1, 1, 8, 6)
    >>> torchvision.ops.roi_pool(x, torch.tensor([[0.0, 0, 0, 4, 4]]), 2, 1.0)[0, 0]
    tensor([[14., 16.],
            [26., 28.]])
    >>> roipool.torch.unpatch_torchvision()
    """
    with _lock:
        _torchvision_ops()
        if _state["library"] is None:
            original = {name: torch.library.get_kernel(f"torchvision::{name}", "CPU")
                        for name in SCHEMAS}
            lib = torch.library.Library("torchvision", "IMPL")
            with warnings.catch_warnings():
                # the dispatcher warns that a kernel is overridden: that is the point
                warnings.filterwarnings("ignore", ".*previously registered kernel")
                _state["original"] = original
                lib.impl("roi_pool", _roi_pool_cpu, "CPU", with_keyset=True)
                lib.impl("_roi_pool_backward", _roi_pool_backward_cpu, "CPU",
                         with_keyset=True)
                lib.impl("roi_align", _roi_align_cpu, "CPU", with_keyset=True)
                lib.impl("_roi_align_backward", _roi_align_backward_cpu, "CPU",
                         with_keyset=True)
            _state["library"] = lib  # kept: see the module docstring
        _state["enabled"] = True


def unpatch_torchvision():
    """Give torchvision's CPU kernels back (does nothing when not patched).

    Returns
    -------
    None

    Examples
    --------
    >>> import roipool.torch
    >>> roipool.torch.patch_torchvision()
    >>> roipool.torch.unpatch_torchvision()
    >>> roipool.torch.unpatch_torchvision()  # again: nothing to undo
    """
    with _lock:
        _state["enabled"] = False


def is_patched():
    return _state["enabled"]
