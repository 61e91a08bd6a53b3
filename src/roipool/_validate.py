"""Argument checks of the public operators: every check the contract asks
for (docs/semantics.md, "Bad input") happens here, before any output is
written; the compiled kernels assume the arrays they get are well formed.

The one value scan that is cheaper in compiled code (every ROI row) runs in
the kernel's prepare step and comes back as a status, which
roipool._status.raise_bad_status turns into the exception. Conversion,
alignment and allocation live in roipool._arrays.
"""
import math
import os

import numpy as np

from roipool import _roi_pool
from roipool._arrays import aligned, as_array, bfloat16, is_channels_last, to_compute
from roipool._roi_pool import Rounding

FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
INT32 = np.dtype(np.int32)
# Values at or above this round to +inf in float32 (2**128 - 2**103).
_F32_OVERFLOW = 3.4028235677973366e38
_INT32_MAX = 2**31 - 1
MAX_HW = _INT32_MAX + 1  # H * W: argmax holds h * W + w in an int32
_COMPAT = ("mxnet", "torchvision")
RMODE_NONE = int(Rounding.RMODE_NONE)  # a plain int: comparing enum members is slow

def float_kind(arr, name):
    """(compute dtype, rounding mode) for a floating array; TypeError otherwise."""
    dt = arr.dtype
    if dt == FLOAT32 or dt == FLOAT64:
        return dt, Rounding.RMODE_NONE
    if dt.kind == "f" and dt.itemsize in (4, 8):  # non-native byte order
        return dt.newbyteorder("="), Rounding.RMODE_NONE
    if dt.kind == "f" and dt.itemsize == 2:
        return FLOAT32, Rounding.RMODE_HALF
    bf16 = bfloat16()
    if bf16 is not None and dt == bf16:
        return FLOAT32, Rounding.RMODE_BF16
    raise TypeError(
        f"{name} must be a floating-point array (float32, float64, float16 or "
        f"bfloat16), got dtype {dt}"
    )


def check_data(data):
    data = as_array(data, "data")
    if data.ndim != 4:
        raise ValueError(f"data must be 4-D [N, C, H, W], got shape {data.shape}")
    compute, rmode = float_kind(data, "data")
    _, _, H, W = data.shape
    if H * W > MAX_HW:
        raise ValueError(
            f"data: H * W = {H * W} does not fit the int32 argmax index (max {MAX_HW})"
        )
    return data, compute, rmode


def check_rois(rois, compute, rmode, storage, R=None):
    rois = as_array(rois, "rois")
    if rois.dtype.kind not in "iuf" and rois.dtype != bfloat16():
        raise TypeError(f"rois must hold real numbers, got dtype {rois.dtype}")
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(
            f"rois must have shape [R, 5] (batch_index, x1, y1, x2, y2), got {rois.shape}"
        )
    if R is not None and rois.shape[0] != R:
        raise ValueError(f"rois has {rois.shape[0]} rows but grad_out has {R} ROIs")
    if rois.dtype == compute and rmode == Rounding.RMODE_NONE:
        flags = rois.flags
        if flags.c_contiguous and flags.aligned:
            return rois
    return aligned(to_compute(rois, compute, rmode, storage))


def _is_int(x):
    return not isinstance(x, (bool, np.bool_)) and isinstance(x, (int, np.integer))


def check_pooled_size(pooled_size):
    if type(pooled_size) is tuple and len(pooled_size) == 2:  # the common call, fast
        ph, pw = pooled_size
        if type(ph) is int and type(pw) is int and 0 < ph <= _INT32_MAX and 0 < pw <= _INT32_MAX:
            return ph, pw
    if type(pooled_size) is int and 0 < pooled_size <= _INT32_MAX:
        return pooled_size, pooled_size
    if isinstance(pooled_size, np.ndarray) and pooled_size.ndim == 0 \
            and pooled_size.dtype.kind in "iu":
        pooled_size = pooled_size[()]  # a 0-d integer array is an int, as for spatial_scale
    if _is_int(pooled_size):
        ph = pw = int(pooled_size)
    elif isinstance(pooled_size, (tuple, list, np.ndarray)) and np.ndim(pooled_size) == 1 \
            and len(pooled_size) in (1, 2) and all(_is_int(v) for v in pooled_size):
        ph, pw = int(pooled_size[0]), int(pooled_size[-1])
    else:
        raise ValueError(
            f"pooled_size must be a positive int or a pair of positive ints, got {pooled_size!r}"
        )
    if not (1 <= ph <= _INT32_MAX and 1 <= pw <= _INT32_MAX):
        raise ValueError(
            f"pooled_size must be a positive int or a pair of positive ints "
            f"(at most {_INT32_MAX}), got {pooled_size!r}"
        )
    return ph, pw


def check_scale(spatial_scale, compat, storage, rmode):
    """(scale in T as a float, scale as given): MXNet keeps the parameter as a
    C float, then converts it to T (docs/semantics.md, "The rule")."""
    if isinstance(spatial_scale, np.ndarray) and spatial_scale.ndim == 0 \
            and spatial_scale.dtype.kind in "iuf":
        spatial_scale = spatial_scale[()]
    if isinstance(spatial_scale, (bool, np.bool_)) or not isinstance(
        spatial_scale, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"spatial_scale must be a finite number > 0, got {spatial_scale!r}")
    s = float(spatial_scale)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"spatial_scale must be a finite number > 0, got {spatial_scale!r}")
    if compat == "torchvision":
        # torchvision's CPU kernel holds the scale as a T (the data's dtype)
        # and multiplies in T: for float64 the double product of the scale as
        # given, for the other dtypes MXNet's rule with the scale rounded to T
        # (exact through float32).
        if storage == FLOAT64:
            return s, s
        if s >= _F32_OVERFLOW:
            raise ValueError(f"spatial_scale={s!r} overflows the data's dtype {storage}")
        with np.errstate(over="ignore"):  # above 65504 it is inf in float16: rows then fail
            return float(np.float64(s).astype(storage)), s
    if s >= _F32_OVERFLOW:
        raise ValueError(f"spatial_scale={s!r} overflows float32, which MXNet stores it in")
    st = np.float32(s)
    if rmode != Rounding.RMODE_NONE:
        with np.errstate(over="ignore"):  # above 65504 it is inf in float16: rows then fail
            st = st.astype(storage)
    return float(st), s


_rules = {}


def check_rule(compat, pooled_size, spatial_scale, storage, rmode):
    """The call's rule object (_roi_pool.Rule): compat, pooled_size and
    spatial_scale checked in this order (docs/semantics.md, "Bad input"),
    built once per distinct arguments: a service passes the same few."""
    key = None
    if type(spatial_scale) is float and type(compat) is str and _exact_pooled(pooled_size):
        key = (pooled_size, spatial_scale, compat, storage)
        hit = _rules.get(key)
        if hit is not None:
            return hit
    torchvision = check_compat(compat, storage)
    ph, pw = check_pooled_size(pooled_size)
    scale_t, scale_d = check_scale(spatial_scale, compat, storage, rmode)
    return _remember(key, _roi_pool.Rule(scale_t, scale_d, torchvision, rmode, ph, pw))


def _exact_pooled(pooled_size):
    """An int or a pair of ints, exactly (a rule cache key): True and 2.0 hash
    like 1 and 2 but are refused."""
    t = type(pooled_size)
    return t is int or (t is tuple and len(pooled_size) == 2 and type(pooled_size[0]) is int
                        and type(pooled_size[1]) is int)


def _remember(key, rule):
    """rule, kept for key (None: arguments whose equality is not the rule's)."""
    if key is not None and len(_rules) < 256:
        _rules[key] = rule
    return rule


def check_compat(compat, storage):
    """Whether the kernel multiplies in double by the scale as given: what
    compat="torchvision" means for float64 data (check_scale has the rest)."""
    if compat not in _COMPAT:
        raise ValueError(f"compat must be one of {_COMPAT}, got {compat!r}")
    return compat == "torchvision" and storage == FLOAT64


def check_buffer(buf, name, shape, dtype, avoid):
    """A caller's output buffer: right shape and dtype, C-contiguous (or
    channels-last contiguous), writable, and not sharing memory with the
    inputs. Returns True for a channels-last buffer."""
    if not isinstance(buf, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array, got {type(buf).__name__}")
    if buf.shape != tuple(shape):
        raise ValueError(f"{name} has shape {buf.shape}, expected {tuple(shape)}")
    if buf.dtype != dtype:
        raise ValueError(f"{name} has dtype {buf.dtype}, expected {dtype}")
    cl = len(shape) == 4 and is_channels_last(buf) and buf.transpose(0, 2, 3, 1).flags.c_contiguous
    if not (buf.flags.c_contiguous or cl):
        raise ValueError(f"{name} must be C-contiguous (or channels-last contiguous)")
    if not buf.flags.writeable:
        raise ValueError(f"{name} must be writable")
    for other_name, other in avoid:
        if isinstance(other, np.ndarray) and np.may_share_memory(buf, other):
            raise ValueError(f"{name} overlaps {other_name}")
    return cl


def _usable_cpus():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_CPUS = _usable_cpus()


def check_num_threads(num_threads, limit=None):
    """The one thread-count resolver (NumPy, torch and ONNX Runtime front
    ends): None is OpenMP's default, which honours OMP_NUM_THREADS and
    threadpoolctl, capped by `limit` (a framework's own setting:
    torch.get_num_threads(), a session's intra_op_num_threads) when given;
    an int >= 1 is used up to the number of processors this process may run
    on (or OpenMP's default, when that is larger). More threads never help
    these CPU-bound kernels, and when the OS refuses to create them
    (address-space or pids limits) libgomp prints "Thread creation failed"
    and exits the process; results are the same bits for any thread count."""
    if num_threads is None:
        n = _roi_pool.omp_max_threads()
        return n if limit is None else max(1, min(limit, n))
    if not _is_int(num_threads) or num_threads < 1:
        raise ValueError(f"num_threads must be None or an int >= 1, got {num_threads!r}")
    n = int(num_threads)
    if n <= _CPUS:
        return n
    return min(n, max(_CPUS, _roi_pool.omp_max_threads()))


def check_argmax_values(argmax, HW, n_threads):
    """argmax for backward as int32 C-contiguous, and whether its values are
    already known to lie in [-1, H*W). An int32 C-contiguous argmax is passed
    as it is and the kernel checks each value as it reads it (a separate pass
    would read as many bytes again as the whole backward); a conversion is
    checked first, since casting to int32 could wrap a bad value into range."""
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"argmax must be an integer array, got dtype {argmax.dtype}")
    argmax = aligned(argmax)
    if argmax.size == 0 or (argmax.dtype == INT32 and argmax.flags.c_contiguous and HW):
        return np.ascontiguousarray(argmax, dtype=INT32), argmax.size == 0
    check_argmax_range(argmax, HW, n_threads)
    return np.ascontiguousarray(argmax, dtype=INT32), True


def check_argmax_range(argmax, HW, n_threads):
    """Raise the argmax ValueError unless every value lies in [-1, H*W)."""
    if argmax.dtype == INT32 and argmax.flags.c_contiguous:
        lo, hi = _roi_pool.int32_range(argmax.reshape(-1), n_threads)
    else:
        lo, hi = int(argmax.min()), int(argmax.max())
    if lo < -1 or hi >= HW:
        raise ValueError(
            f"argmax values must lie in [-1, H*W) = [-1, {HW}), got min {lo} and max {hi}"
        )


def check_data_shape(data_shape, C):
    try:
        shape = tuple(data_shape)
    except TypeError:
        raise ValueError(f"data_shape must be 4 ints (N, C, H, W), got {data_shape!r}") from None
    if len(shape) != 4 or not all(_is_int(v) and v >= 0 for v in shape):
        raise ValueError(f"data_shape must be 4 non-negative ints (N, C, H, W), got {data_shape!r}")
    shape = tuple(int(v) for v in shape)
    if shape[1] != C:
        raise ValueError(f"data_shape has C={shape[1]} but grad_out has C={C}")
    if shape[2] * shape[3] > MAX_HW:
        raise ValueError(
            f"data_shape: H * W = {shape[2] * shape[3]} does not fit the int32 argmax index")
    return shape


# ---- RoIAlign (docs/semantics.md, "RoIAlign") --------------------------------

ALIGN_COMPAT = ("torchvision", "mxnet", "onnxruntime")
ALIGN_MODES = ("avg", "max")
# the largest fixed sampling ratio whose per-bin sample count fits a C int
MAX_SAMPLING_RATIO = 46340


def check_align_compat(compat):
    if not isinstance(compat, str) or compat not in ALIGN_COMPAT:
        raise ValueError(f"compat must be one of {ALIGN_COMPAT}, got {compat!r}")
    return compat


def check_align_mode(mode, compat):
    """True for ONNX Runtime's max mode."""
    if not isinstance(mode, str) or mode not in ALIGN_MODES:
        raise ValueError(f"mode must be one of {ALIGN_MODES}, got {mode!r}")
    if mode == "max" and compat != "onnxruntime":
        raise ValueError(
            'mode="max" is ONNX Runtime\'s RoiAlign max mode: it needs compat="onnxruntime", '
            f"got compat={compat!r}")
    return mode == "max"


def check_sampling_ratio(sampling_ratio, bins):
    """bins: PH * PW; a box's samples, PH * PW * sampling_ratio**2, must fit
    the peers' C int."""
    if isinstance(sampling_ratio, np.ndarray) and sampling_ratio.ndim == 0 \
            and sampling_ratio.dtype.kind in "iu":
        sampling_ratio = sampling_ratio[()]
    if not _is_int(sampling_ratio) or not (-1 <= sampling_ratio <= MAX_SAMPLING_RATIO):
        raise ValueError(
            f"sampling_ratio must be an int in -1 .. {MAX_SAMPLING_RATIO} (0 and -1: "
            f"adaptive), got {sampling_ratio!r}")
    sr = int(sampling_ratio)
    if sr > 0 and bins * sr * sr > _INT32_MAX:
        raise ValueError(
            f"sampling_ratio={sr} gives {bins * sr * sr} samples per box (PH * PW * "
            f"sampling_ratio**2), more than a C int holds")
    return sr


def check_aligned(aligned):
    if not isinstance(aligned, (bool, np.bool_)):
        raise ValueError(f"aligned must be a bool, got {aligned!r}")
    return bool(aligned)


def check_align_scale(spatial_scale, compat, storage, rmode):
    """spatial_scale as the kernel starts from: as given for
    compat="torchvision" (the kernel casts it to the compute type), else
    rounded to float32 (ONNX Runtime's and MXNet's attribute)."""
    tv = compat == "torchvision"
    # the scale as given (the float64 rule), or through float32
    s = check_scale(spatial_scale, compat, FLOAT64, RMODE_NONE)[0] if tv else \
        check_scale(spatial_scale, "mxnet", None, RMODE_NONE)[0]
    if storage.itemsize < 8:  # carried in float32, float16 through float32
        with np.errstate(over="ignore"):
            carried = np.float32(s)
            if rmode == Rounding.RMODE_HALF:
                carried = np.float16(carried)
        if not np.isfinite(carried):
            raise ValueError(f"spatial_scale={s!r} is infinite in {carried.dtype}, which "
                             "RoIAlign carries it in for this data")
    return s


def check_align_rule(compat, mode, pooled_size, spatial_scale, sampling_ratio, aligned, storage,
                     rmode):
    """RoIAlign's arguments, in the order of docs/semantics.md ("RoIAlign,
    bad input"), as its _roi_pool.AlignRule, built once per distinct
    arguments (as check_rule's)."""
    key = None
    if (type(spatial_scale) is float and type(compat) is str and type(mode) is str
            and type(sampling_ratio) is int and type(aligned) is bool
            and _exact_pooled(pooled_size)):
        key = ("align", compat, mode, pooled_size, spatial_scale, sampling_ratio, aligned,
               storage, rmode)
        hit = _rules.get(key)
        if hit is not None:
            return hit
    return _remember(key, _align_rule(compat, mode, pooled_size, spatial_scale, sampling_ratio,
                                      aligned, storage, rmode))


def _align_rule(compat, mode, pooled_size, spatial_scale, sampling_ratio, aligned, storage, rmode):
    compat = check_align_compat(compat)
    max_mode = check_align_mode(mode, compat)
    ph, pw = check_pooled_size(pooled_size)
    scale = check_align_scale(spatial_scale, compat, storage, rmode)
    sr = check_sampling_ratio(sampling_ratio, ph * pw)
    rule = _roi_pool.AlignRule(scale, scale, compat == "torchvision", rmode, ph, pw)
    rule.aligned, rule.sampling, rule.max_mode = check_aligned(aligned), sr, max_mode
    return rule
