"""Arrays for the kernels: input conversion to the compute dtype, alignment,
memory-format queries, output allocation and batch compaction. The checks
that decide whether an argument is acceptable live in roipool._validate."""
import math
import sys

import numpy as np

from roipool import _roi_pool
# the one output allocation and the one layout rule (a 4-D array's channels
# adjacent in memory: read in place, and the output follows)
from roipool._roi_pool import Rounding, is_channels_last, new_output


def bfloat16(needed_by=None):
    """ml_dtypes.bfloat16 as a NumPy dtype. Without `needed_by`: None unless
    ml_dtypes is already imported (a bfloat16 array can only exist once it
    is, and it is not a dependency: roipool never imports it for NumPy
    callers). With it (who needs the type): ml_dtypes is imported, and a
    TypeError naming `needed_by` says when it is missing."""
    mod = sys.modules.get("ml_dtypes")
    if mod is None and needed_by is not None:
        try:
            import ml_dtypes as mod
        except ImportError:
            raise TypeError(
                f"{needed_by} need the ml_dtypes package (pip install ml_dtypes)"
            ) from None
    return None if mod is None else np.dtype(mod.bfloat16)


def as_array(x, name):
    """Anything NumPy accepts, without a copy when the layout allows."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__") and not hasattr(x, "__array_interface__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError, ValueError):
            pass  # e.g. a non-CPU device; let asarray explain
    try:
        return np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like, got {type(x).__name__}: {exc}") from None


def storage_dtype(arr, rmode):
    """The dtype results are returned in: the caller's (native order)."""
    dt = arr.dtype
    return dt if rmode != Rounding.RMODE_NONE or dt.isnative else dt.newbyteorder("=")


def kernel_dtype(storage):
    """The dtype the kernels read and write for results of `storage`: itself
    in native byte order (float16 and bfloat16 included: the kernels convert
    them in registers)."""
    return storage if storage.isnative else storage.newbyteorder("=")


def to_compute(arr, compute, rmode, storage, contiguous=True):
    """Convert to `compute` (the ROI geometry's compute dtype, or the kernels'
    dtype) through the storage type (values are first converted to T, then
    computed on: docs/semantics.md, "The rule" and "Reduced precision"),
    copying at most once per conversion; the kernel reads any strides, so
    only buffers that must be contiguous are made so."""
    # A value beyond T's range becomes inf, as the rule says (a ROI row holding
    # it is then reported); no RuntimeWarning, which -W error would turn into
    # an exception other than the one documented.
    with np.errstate(over="ignore", invalid="ignore"):
        if rmode != Rounding.RMODE_NONE:
            arr = arr.astype(storage, copy=False)
        if contiguous:
            return np.ascontiguousarray(arr, dtype=compute)
        return arr.astype(compute, copy=False)


def aligned(arr):
    """arr, or an aligned copy (same layout) when NumPy says it is not aligned:
    an offset pointer, or strides that are not multiples of the item size. The
    kernels index with strides // itemsize and may use aligned SIMD loads."""
    return arr if arr.flags.aligned else np.array(arr, copy=True, order="K")


def in_storage_dtype(result, storage, channels_last=False):
    """A kernel result (native byte order) as a new output of the storage
    dtype (a byte-swapped float16 one)."""
    out = new_output(result.shape, storage, "out", channels_last)
    out[...] = result
    return out


def allocation_error(shape, dtype, name, channels_last=False):
    """The MemoryError for an output that cannot be allocated, with its size
    (of its memory: [R, PH, PW, C] when channels-last)."""
    if channels_last:
        shape = (shape[0], shape[2], shape[3], shape[1])
    itemsize = np.dtype(dtype).itemsize
    # NumPy refuses shapes whose non-zero dimensions overflow, even when
    # another dimension is 0; report that product.
    span = math.prod(d for d in shape if d) * itemsize
    if span >= 2**63:
        return MemoryError(
            f"{name} of shape {tuple(shape)} is not representable: its dimensions "
            f"span {span} bytes, more than 64-bit sizes hold"
        )
    return MemoryError(
        f"cannot allocate {name} of shape {tuple(shape)}: {span} bytes "
        f"({span / 2**30:.1f} GiB)"
    )


# The kernels keep per-image tables (O(N) memory and time) to group ROIs by
# image. A batch dimension far larger than the ROI count can only come from a
# zero-stride (broadcast) view or from empty images; there, the images the
# ROIs use are renumbered 0..n-1 first, so work and memory follow R, not N
# (and N near 2**61 cannot overflow the tables' byte counts).
COMPACT_MIN_N = 2**16


def compact_batch(data_shape, batch_stride, rois_c):
    """(n, rois) to give the kernel instead of (N, rois_c), or None.

    Only for a batch whose images are all alike or empty (stride 0, or
    C * H * W == 0), so that images 0..n-1 stand for the ones used. Rows keep
    their validity: a valid batch index becomes its rank among the used
    images (an exact integer in the compute dtype), an invalid one (NaN, inf,
    trunc() outside [0, N)) is left as it is, and stays invalid for n <= N;
    the caller reports bad rows from rois_c and N. rois_c is never modified.
    """
    if data_shape[0] <= COMPACT_MIN_N:  # every real batch: nothing to do
        return None
    N, C, H, W = data_shape
    R = rois_c.shape[0]
    if N <= 4 * R or R >= 2**24:
        return None
    if not (batch_stride == 0 or C * H * W == 0):
        return None
    b = rois_c[:, 0].astype(np.float64)
    with np.errstate(invalid="ignore"):
        t = np.trunc(b)
        ok = np.isfinite(b) & (t >= 0) & (t < N)
    # The same ranks as np.unique(return_inverse=True), whose cumsum left
    # ~50-byte objects behind now and then on CPython 3.13 (test_leaks, CI).
    used = np.unique(t[ok])
    rois_k = rois_c.copy()
    rois_k[ok, 0] = np.searchsorted(used, t[ok])
    return max(len(used), 1), rois_k
