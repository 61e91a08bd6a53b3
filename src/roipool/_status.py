"""Kernel status codes, decoded into the exceptions of the contract.

The codes are declared once, as `cpdef enum`s of the kernel module
(_plan.pxi): Status, RowError, Rounding and ROW_CODES.
"""
import numpy as np

from roipool._roi_pool import ROW_CODES, RowError, Status

# docs/semantics.md, "Bad input": the message of each bad ROI row.
_ROW_MESSAGES = {
    RowError.BAD_BATCH_NONFINITE: "batch index {v} is not finite",
    RowError.BAD_BATCH_RANGE: "batch index {v} is outside [0, {N}) (its integer part is used)",
    RowError.BAD_COORD_NONFINITE: "coordinate {v} is not finite",
    RowError.BAD_COORD_RANGE:
        "coordinate {v} times spatial_scale does not fit a C int (|x * scale| >= 2**31)",
    RowError.BAD_SIZE_RANGE: "ROI size or pooled_size is not representable in {dtype}",
}


def sample_table_error(samples, sample_bytes):
    """The MemoryError of RoIAlign sample tables that cannot be allocated:
    one entry per sample of every box (docs/semantics.md, "RoIAlign"), made
    once per call and shared by every channel."""
    return MemoryError(
        f"roipool: cannot allocate RoIAlign's sample tables: {samples} samples of "
        f"{sample_bytes} bytes ({samples * sample_bytes} bytes) for these boxes (fewer or "
        "smaller boxes, or a sampling_ratio > 0, need fewer)")


def raise_bad_status(status, rois, N, dtype):
    """Turn a kernel status other than Status.OK into its exception (rois:
    the checked ROI array the kernel scanned; N and dtype for the message).
    Status.BAD_ARGMAX is the caller's to explain first (it knows H * W)."""
    if status == Status.NO_MEMORY:
        raise MemoryError("roipool: out of memory for the ROI geometry or scratch buffers")
    row, code = divmod(int(status), ROW_CODES)
    vals = rois[row]
    coords = vals[1:]
    if code in (RowError.BAD_BATCH_NONFINITE, RowError.BAD_BATCH_RANGE):
        v = vals[0]
    elif code == RowError.BAD_COORD_NONFINITE:
        v = coords[~np.isfinite(coords)][0]
    else:
        v = coords.tolist()
    msg = _ROW_MESSAGES[code].format(v=v, N=N, dtype=dtype)
    raise ValueError(f"rois row {row}: {msg} (row = {vals.tolist()})")
