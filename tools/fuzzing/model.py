"""The model of the contract: for one call, either "valid: these exact results"
or "invalid: one of these faults" (exception type and what its message names).

The fault model (which argument is wrong, in which order roipool may report it)
lives here; the values of a valid call come from roipool._reference, the one
plain-loop rule of docs/semantics.md ("Bad input" is the table modelled here).
"""
import math

import numpy as np

from roipool import _reference as ref

from .common import BF16, SkipCase, as_array, float_type, is_int, is_real_scalar

INT32_MAX = 2**31 - 1
F32_OVERFLOW = 3.4028235677973366e38  # rounds to +inf in float32
HUGE_BYTES = 2**36  # outputs at least this big must raise MemoryError (no swap here)
GRAY_BYTES = 2**27  # outputs between this and HUGE_BYTES are not generated (slow / env-dependent)


class Fault:
    """An allowed way for a call to fail: exception types and strings the message must hold."""

    def __init__(self, arg, exc, *needles):
        self.arg = arg
        self.exc = exc if isinstance(exc, tuple) else (exc,)
        self.needles = (arg,) + needles if arg else needles

    def matches(self, e):
        return isinstance(e, self.exc) and all(n in str(e) for n in self.needles)

    def __repr__(self):
        return f"{'/'.join(t.__name__ for t in self.exc)}({', '.join(map(repr, self.needles))})"


class Expect:
    """valid -> results; else faults (any one may be raised). maybe: faults allowed even
    for a valid call (e.g. MemoryError for a huge batch dimension)."""

    def __init__(self, faults=(), results=None, maybe=()):
        self.faults = list(faults)
        self.results = results
        self.maybe = list(maybe)

    @property
    def valid(self):
        return not self.faults


def pooled_of(p):
    """(ph, pw) for a valid pooled_size, else 'bad'."""
    if is_int(p):
        v = int(p)
        return (v, v) if 1 <= v <= INT32_MAX else "bad"
    if isinstance(p, np.ndarray) and p.ndim == 0 and p.dtype.kind in "iu":
        v = int(p)  # a 0-d integer array is an int (as a 0-d spatial_scale is a number)
        return (v, v) if 1 <= v <= INT32_MAX else "bad"
    if isinstance(p, (tuple, list, np.ndarray)) and not (isinstance(p, np.ndarray) and p.ndim != 1):
        if len(p) in (1, 2) and all(is_int(v) for v in p):
            ph, pw = int(p[0]), int(p[-1])
            if 1 <= ph <= INT32_MAX and 1 <= pw <= INT32_MAX:
                return ph, pw
    return "bad"


def scan_rois(rois_T, N, scaled=None):
    """The first bad ROI row as a Fault, or None. scaled: (scale, arith)
    for forward, where each scaled coordinate must also fit a C int."""
    for r in range(rois_T.shape[0]):
        row = rois_T[r]
        b = float(row[0])
        if not math.isfinite(b) or not (0 <= math.trunc(b) < N):
            return Fault("rois", ValueError, f"row {r}")
        if not all(math.isfinite(float(v)) for v in row[1:5]):
            return Fault("rois", ValueError, f"row {r}")
        if scaled is not None and not all(abs(p) < 2.0**31 for p in ref.scaled_corners(row, *scaled)):
            return Fault("rois", ValueError, f"row {r}")
    return None


def size_fault(rois_T, scaled, PH, PW):
    """float16: the first row whose ROI size (or the pooled size) is not finite in T."""
    ar = scaled[1]
    if not (math.isfinite(float(ar.of_int(PH))) and math.isfinite(float(ar.of_int(PW)))):
        return 0 if rois_T.shape[0] else None
    for r in range(rois_T.shape[0]):
        _, _, roi_h, roi_w = ref.rounded_box(ref.scaled_corners(rois_T[r], *scaled))
        if not (math.isfinite(float(ar.of_int(roi_h))) and math.isfinite(float(ar.of_int(roi_w)))):
            return r
    return None


def span_bytes(shape, itemsize):
    """What NumPy checks: the product of the non-zero dimensions times the itemsize."""
    return math.prod(d for d in shape if d) * itemsize


def buffer_fault(buf, name, shape, dtype, others, allow_cl=True):
    if not isinstance(buf, np.ndarray):
        return Fault(name, ValueError)
    if buf.shape != tuple(shape) or buf.dtype != dtype:
        return Fault(name, ValueError)
    contiguous = buf.flags.c_contiguous
    cl = buf.ndim == 4 and buf.transpose(0, 2, 3, 1).flags.c_contiguous
    if not (contiguous or (allow_cl and cl)):
        return Fault(name, ValueError)
    if not buf.flags.writeable:
        return Fault(name, ValueError)
    for o in others:
        if isinstance(o, np.ndarray) and np.may_share_memory(buf, o):
            return Fault(name, ValueError)
    return None


def float_array_faults(x, name, faults):
    """x as an array and its (T, reduced) float type, appending the faults a
    4-D float array argument named `name` has; (array or None, T or None, reduced)."""
    a = as_array(x)
    if a is None:
        faults.append(Fault(name, (TypeError, ValueError)))
        return None, None, False
    ft = float_type(a.dtype)
    if a.ndim != 4:
        faults.append(Fault(name, ValueError))
    if ft is None:
        faults.append(Fault(name, TypeError))
        return a, None, False
    return a, ft[0], ft[1]


def rois_faults(rois, faults):
    """rois as an array (or None), appending the faults of its dtype and shape."""
    r = as_array(rois)
    if r is None:
        faults.append(Fault("rois", (TypeError, ValueError)))
        return None
    if not (r.dtype.kind in "iuf" or (BF16 is not None and r.dtype == BF16)):
        faults.append(Fault("rois", TypeError))
    if r.ndim != 2 or r.shape[1] != 5:
        faults.append(Fault("rois", ValueError))
    return r


def expect_forward(data, rois, pooled_size, spatial_scale, out=None, argmax=None,
                   return_argmax=False, num_threads=None, compat="mxnet"):
    faults, maybe = [], []
    d, T, reduced = float_array_faults(data, "data", faults)
    if d is not None and d.ndim == 4 and d.shape[2] * d.shape[3] > 2**31:
        faults.append(Fault("data", ValueError))
    if not (isinstance(compat, str) and compat in ("mxnet", "torchvision")):
        faults.append(Fault("compat", ValueError))
    tv = compat == "torchvision"
    pooled = pooled_of(pooled_size)
    if pooled == "bad":
        faults.append(Fault("pooled_size", ValueError))
    if not is_real_scalar(spatial_scale) or not (math.isfinite(float(spatial_scale)) and float(spatial_scale) > 0):
        faults.append(Fault("spatial_scale", ValueError))
    elif float(spatial_scale) >= F32_OVERFLOW and not (tv and T == np.float64):
        faults.append(Fault("spatial_scale", ValueError))
    if not (num_threads is None or (is_int(num_threads) and num_threads >= 1)):
        faults.append(Fault("num_threads", ValueError))
    r = rois_faults(rois, faults)
    if faults:
        return Expect(faults, maybe=maybe)

    N, C, H, W = d.shape
    R = r.shape[0]
    PH, PW = pooled
    shape = (R, C, PH, PW)
    for f in (buffer_fault(out, "out", shape, T, (data, rois)) if out is not None else None,
              buffer_fault(argmax, "argmax", shape, np.dtype(np.int32), (data, rois, out))
              if argmax is not None else None):
        if f is not None:
            faults.append(f)
    if faults:
        return Expect(faults, maybe=maybe)

    rule = "torchvision" if tv else "mxnet"
    with np.errstate(all="ignore"):
        scaled = (ref.scale_in(T, spatial_scale, rule), ref.Arith(T))
        rois_T = r.astype(T)
        nelem = R * C * PH * PW
        csize = 8 if T.itemsize == 8 else 4  # compute type: float32 or float64
        nbytes = nelem * csize
        if nbytes >= HUGE_BYTES or span_bytes(shape, csize) >= 2**63:
            # rows may be scanned before or after: either fault
            faults.append(Fault(None, MemoryError))
        elif nbytes >= GRAY_BYTES:
            raise SkipCase("output size in the environment-dependent range")
        rowf = scan_rois(rois_T, N, scaled)
        if rowf is not None:
            faults.append(rowf)
        if faults:
            return Expect(faults, maybe=maybe)
        if nelem == 0 and reduced and R:
            # float16 size overflow need not be detected when there are no bins
            bad = size_fault(rois_T, scaled, PH, PW)
            if bad is not None:
                maybe.append(Fault("rois", ValueError, f"row {bad}"))
        try:
            res = ref.forward(d, r, pooled, spatial_scale, rule)
        except ref.NotFiniteSize as e:
            return Expect([Fault("rois", ValueError, f"row {e.row}")], maybe=maybe)
    return Expect([], results=res, maybe=maybe)


def data_shape_faults(data_shape, g, faults):
    """data_shape as four ints (None when malformed), appending its faults: not
    four non-negative ints, H * W > 2**31, C other than grad_out's."""
    try:
        ds = tuple(data_shape)
    except TypeError:
        ds = None
    if ds is None or len(ds) != 4 or not all(is_int(v) and v >= 0 for v in ds):
        faults.append(Fault("data_shape", ValueError))
        return None
    ds = tuple(int(v) for v in ds)
    if ds[2] * ds[3] > 2**31 or (g is not None and g.ndim == 4 and ds[1] != g.shape[1]):
        faults.append(Fault("data_shape", ValueError))
    return ds


def expect_backward(grad_out, rois, argmax, data_shape, out=None, num_threads=None):
    faults, maybe = [], []
    g, T, _ = float_array_faults(grad_out, "grad_out", faults)
    ds = data_shape_faults(data_shape, g, faults)
    if not (num_threads is None or (is_int(num_threads) and num_threads >= 1)):
        faults.append(Fault("num_threads", ValueError))
    a = as_array(argmax)
    # An argmax value outside [-1, H*W) may be reported before or after the
    # other faults (the kernel checks int32 argmax as it reads it, after the
    # ROI scan and the buffers): it is allowed beside each of them.
    rf = []
    if a is None:
        faults.append(Fault("argmax", (TypeError, ValueError)))
    else:
        if g is not None and a.shape != g.shape:
            faults.append(Fault("argmax", ValueError))
        if a.dtype.kind not in "iu":
            faults.append(Fault("argmax", TypeError))
        elif ds is not None and a.size and (int(a.min()) < -1 or int(a.max()) >= ds[2] * ds[3]):
            rf.append(Fault("argmax", ValueError))
    r = rois_faults(rois, faults)
    if r is not None and r.ndim == 2 and r.shape[1] == 5:
        if g is not None and g.ndim == 4 and r.shape[0] != g.shape[0]:
            faults.append(Fault("rois", ValueError))
    if faults:
        return Expect(faults + rf)
    N, C, H, W = ds
    if out is not None:
        # C-contiguous or channels-last (as forward's out=), filled and returned
        f = buffer_fault(out, "out", ds, T, (grad_out, argmax, rois), allow_cl=True)
        if f is not None:
            return Expect([f] + rf)
    csize = 8 if T.itemsize == 8 else 4
    nbytes = N * C * H * W * csize
    if nbytes >= HUGE_BYTES or span_bytes(ds, csize) >= 2**63:
        faults.append(Fault(None, MemoryError))
    elif nbytes >= GRAY_BYTES:
        raise SkipCase("gradient size in the environment-dependent range")
    with np.errstate(all="ignore"):
        rowf = scan_rois(r.astype(T), N)
    if rowf is not None:
        return Expect(faults + [rowf] + rf, maybe=maybe)
    if faults or rf:
        return Expect(faults + rf, maybe=maybe)
    return Expect([], results=(ref.backward(g, r, a, ds),), maybe=maybe)


# -- RoIAlign ("RoIAlign, bad input and degenerate boxes") ------------------------

ALIGN_COMPATS = ("torchvision", "mxnet", "onnxruntime")
MAX_RATIO = 46340  # 46340**2 < 2**31: the per-bin sample count stays an int
SAMPLE_BUDGET = 20000  # samples the plain-loop reference computes per case


def align_arg_faults(spatial_scale, sampling_ratio, aligned, num_threads, compat, dtype, faults):
    """The faults of the scalar arguments both RoIAlign functions share."""
    if not (isinstance(compat, str) and compat in ALIGN_COMPATS):
        faults.append(Fault("compat", ValueError))
        compat = "torchvision"
    if not is_real_scalar(spatial_scale) or not (math.isfinite(float(spatial_scale))
                                                 and float(spatial_scale) > 0):
        faults.append(Fault("spatial_scale", ValueError))
    elif dtype is not None:
        with np.errstate(over="ignore"):
            s = ref.align_scale(dtype, float(spatial_scale), compat)
        if not math.isfinite(float(s)):
            faults.append(Fault("spatial_scale", ValueError))
    if not (is_int(sampling_ratio) and -1 <= int(sampling_ratio) <= MAX_RATIO):
        faults.append(Fault("sampling_ratio", ValueError))
    if not isinstance(aligned, (bool, np.bool_)):
        faults.append(Fault("aligned", ValueError))
    if not (num_threads is None or (is_int(num_threads) and num_threads >= 1)):
        faults.append(Fault("num_threads", ValueError))


def align_rows(r, T, N, spatial_scale, compat, PH, PW, ratio, aligned):
    """(first row fault or None, samples of all rows) of valid arguments."""
    ct = ref.align_compute_dtype(T)
    ops = ref.AlignOps(ct)
    with np.errstate(all="ignore"):
        rows = r.astype(ct)
    scale = ref.align_scale(T, spatial_scale, compat)
    total = 0
    for i in range(rows.shape[0]):
        why = ref.align_row_problem(rows[i], N, scale, ops, PH, PW, int(ratio), bool(aligned))
        if why is not None:
            return Fault("rois", ValueError, f"row {i}"), total
        total += ref.align_samples(rows[i], scale, ops, PH, PW, int(ratio), bool(aligned))
    return None, total


def _bytes_fault(nelem, shape, T, faults):
    csize = 8 if T.itemsize == 8 else 4
    nbytes = nelem * csize
    if nbytes >= HUGE_BYTES or span_bytes(shape, csize) >= 2**63:
        faults.append(Fault(None, MemoryError))
    elif nbytes >= GRAY_BYTES:
        raise SkipCase("output size in the environment-dependent range")


def expect_align_forward(data, rois, pooled_size, spatial_scale, sampling_ratio=-1, aligned=False,
                         out=None, *, mode="avg", compat="torchvision", num_threads=None):
    faults = []
    d, T, _ = float_array_faults(data, "data", faults)
    if d is not None and d.ndim == 4 and d.shape[2] * d.shape[3] > 2**31:
        faults.append(Fault("data", ValueError))
    if not (isinstance(mode, str) and mode in ("avg", "max")) or \
            (mode == "max" and compat != "onnxruntime" and compat in ALIGN_COMPATS):
        faults.append(Fault("mode", ValueError))
    pooled = pooled_of(pooled_size)
    if pooled == "bad":
        faults.append(Fault("pooled_size", ValueError))
    align_arg_faults(spatial_scale, sampling_ratio, aligned, num_threads, compat, T, faults)
    if pooled != "bad" and is_int(sampling_ratio) and 0 < int(sampling_ratio) <= MAX_RATIO \
            and pooled[0] * pooled[1] * int(sampling_ratio) ** 2 >= 2**31:
        faults.append(Fault("sampling_ratio", ValueError))
    r = rois_faults(rois, faults)
    if faults:
        return Expect(faults)
    N, C, H, W = d.shape
    R = r.shape[0]
    PH, PW = pooled
    shape = (R, C, PH, PW)
    if out is not None:
        f = buffer_fault(out, "out", shape, T, (data, rois))
        if f is not None:
            return Expect([f])
    _bytes_fault(R * C * PH * PW, shape, T, faults)
    rowf, samples = align_rows(r, T, N, spatial_scale, compat, PH, PW, sampling_ratio, aligned)
    if rowf is not None:
        faults.append(rowf)
    if faults:
        return Expect(faults)
    if samples * max(C, 1) > 50 * SAMPLE_BUDGET or samples > SAMPLE_BUDGET:
        raise SkipCase("too many samples for the plain-loop reference")
    res = ref.roi_align(d, r, pooled, spatial_scale, int(sampling_ratio), bool(aligned), mode=mode,
                        compat=compat)
    return Expect([], results=(res,))


def expect_align_backward(grad_out, rois, data_shape, spatial_scale, sampling_ratio=-1,
                          aligned=False, out=None, *, compat="torchvision", num_threads=None):
    faults = []
    g, T, _ = float_array_faults(grad_out, "grad_out", faults)
    ds = data_shape_faults(data_shape, g, faults)
    align_arg_faults(spatial_scale, sampling_ratio, aligned, num_threads, compat, T, faults)
    if g is not None and g.ndim == 4 and is_int(sampling_ratio) \
            and 0 < int(sampling_ratio) <= MAX_RATIO \
            and g.shape[2] * g.shape[3] * int(sampling_ratio) ** 2 >= 2**31:
        faults.append(Fault("sampling_ratio", ValueError))
    r = rois_faults(rois, faults)
    if r is not None and r.ndim == 2 and r.shape[1] == 5 and g is not None and g.ndim == 4 \
            and r.shape[0] != g.shape[0]:
        faults.append(Fault("rois", ValueError))
    if faults:
        return Expect(faults)
    if out is not None:
        f = buffer_fault(out, "out", ds, T, (grad_out, rois))
        if f is not None:
            return Expect([f])
    _bytes_fault(math.prod(ds), ds, T, faults)
    R, C, PH, PW = g.shape
    # no bins (PH or PW = 0): no grid to check, the other row checks still run
    rowf, samples = align_rows(r, T, ds[0], spatial_scale, compat, max(PH, 1), max(PW, 1),
                               sampling_ratio if PH and PW else 1, aligned)
    if rowf is not None:
        faults.append(rowf)
    if faults:
        return Expect(faults)
    if samples > SAMPLE_BUDGET:
        raise SkipCase("too many samples for the plain-loop reference")
    res = ref.roi_align_backward(g, r, ds, spatial_scale, int(sampling_ratio), bool(aligned),
                                 compat=compat)
    return Expect([], results=(res,))
