"""patch_torchvision(): roipool as the CPU kernel of torchvision's roi_pool operator.

The dispatcher keeps every kernel registered for an operator and dispatch key
and runs the newest; destroying our ``torch.library.Library`` removes ours and
torchvision's comes back. Only the CPU key is touched, so other devices, the
fake (meta) kernel and autograd formula stay torchvision's.
"""
import threading
import warnings

import torch

from roipool import _torch_ops as ops

SCHEMAS = {
    "roi_pool": "torchvision::roi_pool(Tensor input, Tensor rois, float spatial_scale, "
                "SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward": "torchvision::_roi_pool_backward(Tensor grad, Tensor rois, "
                          "Tensor argmax, float spatial_scale, SymInt pooled_height, "
                          "SymInt pooled_width, SymInt batch_size, SymInt channels, "
                          "SymInt height, SymInt width) -> Tensor",
}
# torchvision's CPU kernel dispatches on these (AT_DISPATCH_FLOATING_TYPES_AND_HALF)
_TV_DTYPES = (torch.float32, torch.float64, torch.float16)

_lock = threading.Lock()
_library = None  # the live registration while patched


def _check_like_torchvision(input, rois):
    """The checks torchvision's CPU kernel makes, with its exception type."""
    if input.dtype != rois.dtype:
        raise RuntimeError("roi_pool: input should have the same type as rois "
                           f"(got {input.dtype} and {rois.dtype})")
    if input.dtype not in _TV_DTYPES:
        raise RuntimeError(f'"roi_pool_forward_kernel" not implemented for {input.dtype}')
    if input.dim() != 4:
        raise RuntimeError(f"roi_pool: input must be 4-D, got shape {tuple(input.shape)}")
    if rois.dim() != 2 or rois.size(1) != 5:
        raise RuntimeError(f"roi_pool: rois must have shape as Tensor[K, 5], got "
                           f"{tuple(rois.shape)}")


def _roi_pool_cpu(input, rois, spatial_scale, pooled_height, pooled_width):
    _check_like_torchvision(input, rois)
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    if pooled_height == 0 or pooled_width == 0:  # torchvision returns empty results
        return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)
    out, argmax = ops.forward(input, rois, spatial_scale, pooled_height, pooled_width,
                              "torchvision", ops.DEFAULT_THREADS, True,
                              torch.contiguous_format)
    return out, argmax.to(torch.int64)  # torchvision's argmax dtype


def _roi_pool_backward_cpu(grad, rois, argmax, spatial_scale, pooled_height, pooled_width,
                           batch_size, channels, height, width):
    if grad.dtype not in _TV_DTYPES:
        raise RuntimeError(f'"roi_pool_backward_kernel" not implemented for {grad.dtype}')
    if grad.numel() == 0:
        return grad.new_zeros((batch_size, channels, height, width))
    return ops.backward(grad, rois, argmax, (batch_size, channels, height, width),
                        ops.DEFAULT_THREADS)


def _torchvision_ops():
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
    """Run torchvision's ``roi_pool`` operator on roipool for CPU tensors.

    Afterwards ``torchvision.ops.roi_pool``, ``torchvision.ops.RoIPool``,
    ``torch.ops.torchvision.roi_pool`` and scripted or exported programs
    that call it compute with roipool: the same output, argmax (int64) and
    gradient as torchvision's CPU kernel, bit for bit, for float32, float64
    and float16 at any scale. Other devices keep torchvision's kernels.
    Calling it again does nothing; :func:`unpatch_torchvision` undoes it.
    Inputs torchvision's kernel would read out of bounds with (a batch index
    outside the batch, a NaN or infinite coordinate) or a spatial_scale that is
    not a finite number > 0 raise ValueError instead.
    """
    global _library
    with _lock:
        if _library is not None:
            return
        _torchvision_ops()
        lib = torch.library.Library("torchvision", "IMPL")
        try:
            with warnings.catch_warnings():
                # the dispatcher warns that a kernel is overridden: that is the point
                warnings.filterwarnings("ignore", "Overriding a previously registered kernel")
                warnings.filterwarnings("ignore", ".*previously registered kernel")
                lib.impl("roi_pool", _roi_pool_cpu, "CPU")
                lib.impl("_roi_pool_backward", _roi_pool_backward_cpu, "CPU")
        except BaseException:
            lib._destroy()
            raise
        _library = lib


def unpatch_torchvision():
    """Give torchvision's CPU kernels back (does nothing when not patched)."""
    global _library
    with _lock:
        if _library is not None:
            _library._destroy()
            _library = None


def is_patched():
    return _library is not None
