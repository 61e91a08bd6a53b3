"""The rule of docs/semantics.md as plain loops: the oracle roipool is checked against.

It imports nothing from roipool, so a bug in the kernels cannot hide in it.
Slow by design: Python loops over ROIs, bins and bin elements, only the
channel axis is a NumPy vector; keep shapes small. The tests, the fuzzer's
contract model (tools/fuzzing/), the benchmark's exactness check and
``python -m roipool`` all use this one module.

Arithmetic is done in T, the data's dtype, with NumPy scalars. For float16 and
bfloat16 ("Reduced precision"), each product, quotient and sum, and each integer
converted to T, goes through float32 and is rounded to T before the next step,
as MXNet's half_t does.

API (stable; the benchmark and the fuzzer import it):
    forward(data, rois, pooled_size, spatial_scale, compat="mxnet") -> (out, argmax)
    backward(grad_out, rois, argmax, data_shape) -> grad
and the steps they are made of: scale_in, scaled_corners, rounded_box, roi_bins,
Arith, c_round, FLT_MAX, NotFiniteSize.

The functions do not validate: pass what the contract calls valid input (the
batch column names an image, coordinates are finite). The one thing the rule
cannot compute, a ROI size that is not finite in T, raises ``NotFiniteSize``.
"""
import math

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)
# floor/ceil of a float16 product that rounded to +-inf: any integer past every
# clip limit stands for it (the bound is clipped to [0, H] or [0, W] next).
_SATURATED = 2**62


class NotFiniteSize(ValueError):
    """A ROI's height or width (or the pooled size) is not finite in T (float16)."""

    def __init__(self, row):
        super().__init__(f"rois row {row}: ROI size is not finite in the data's dtype")
        self.row = row


def c_round(v):
    """C round(): halves away from zero, exact for any finite float (a - floor(a) is exact)."""
    v = float(v)
    a = abs(v)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return int(r) if v >= 0 else -int(r)


def native(dtype):
    """dtype in this machine's byte order (results are always native)."""
    dt = np.dtype(dtype)
    return dt if dt.isnative else dt.newbyteorder("=")


def is_reduced(dtype):
    """float16 or bfloat16 (by name: no need to import ml_dtypes here)."""
    dt = np.dtype(dtype)
    return dt.itemsize == 2 and (dt.kind == "f" or dt.name == "bfloat16")


class Arith:
    """The scalar operations of the rule, done in T (reduced: in float32, rounded to T)."""

    def __init__(self, dtype):
        self.dtype = native(dtype)
        self.T = self.dtype.type
        self.reduced = is_reduced(self.dtype)

    def of_int(self, k):
        """An integer as T (reduced: through float32, as half_t(int) does)."""
        return self.T(np.float32(k)) if self.reduced else self.T(k)

    def mul(self, a, b):
        if self.reduced:
            return self.T(np.float32(a) * np.float32(b))
        return self.T(self.T(a) * self.T(b))

    def div(self, a, b):
        if self.reduced:
            return self.T(np.float32(a) / np.float32(b))
        return self.T(self.T(a) / self.T(b))

    def add(self, a, b):
        if self.reduced:
            return self.T(np.float32(a) + np.float32(b))
        return self.T(self.T(a) + self.T(b))


def _int_floor(v):
    v = float(v)
    return _SATURATED if v == math.inf else -_SATURATED if v == -math.inf else math.floor(v)


def _int_ceil(v):
    v = float(v)
    return _SATURATED if v == math.inf else -_SATURATED if v == -math.inf else math.ceil(v)


def scale_in(dtype, spatial_scale, compat="mxnet"):
    """The scale the products use: MXNet stores it as a C float, then converts to T;
    torchvision's CPU kernel rounds it to T directly."""
    ar = Arith(dtype)
    with np.errstate(over="ignore"):
        if compat == "torchvision":
            return ar.T(np.asarray(float(spatial_scale)).astype(ar.T))
        return ar.T(np.float32(spatial_scale))


def scaled_corners(row, scale, ar):
    """x1, y1, x2, y2 of a ROI row (already in T) times the scale (from scale_in),
    in T, before rounding."""
    return [float(ar.mul(v, scale)) for v in row[1:5]]


def rounded_box(corners):
    """(x1, y1, roi_h, roi_w) of the scaled corners: C round(), then a malformed
    ROI (x2 < x1 or y2 < y1) becomes 1 x 1."""
    x1, y1, x2, y2 = (c_round(p) for p in corners)
    return x1, y1, max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)


def roi_bins(row, scale, ar, H, W, PH, PW, compat="mxnet", r=0):
    """(b, [(hstart, hend)] * PH, [(wstart, wend)] * PW) of one ROI row in T."""
    b = math.trunc(float(row[0]))  # MXNet: C cast of the batch column to int
    x1, y1, roi_h, roi_w = rounded_box(scaled_corners(row, scale, ar))
    sizes = [ar.of_int(n) for n in (roi_h, roi_w, PH, PW)]
    if not all(math.isfinite(float(v)) for v in sizes):
        raise NotFiniteSize(r)
    size_h, size_w, fph, fpw = sizes
    bin_h, bin_w = ar.div(size_h, fph), ar.div(size_w, fpw)

    def bounds(n, bin_size, start, limit):
        out = []
        for p in range(n):
            lo = _int_floor(ar.mul(ar.of_int(p), bin_size)) + start
            hi = _int_ceil(ar.mul(ar.of_int(p + 1), bin_size)) + start
            out.append((min(max(lo, 0), limit), min(max(hi, 0), limit)))
        return out

    return b, bounds(PH, bin_h, y1, H), bounds(PW, bin_w, x1, W)


def pooled_pair(pooled_size):
    """(PH, PW) of an int k or a one- or two-element sequence."""
    if np.ndim(pooled_size) == 0:
        k = int(pooled_size)
        return k, k
    return int(pooled_size[0]), int(pooled_size[-1])


def forward(data, rois, pooled_size, spatial_scale, compat="mxnet"):
    """(out [R, C, PH, PW] in data's dtype, argmax int32) by the rule.

    data may be any view (even a huge zero-stride one): only the bins are read."""
    data = data if isinstance(data, np.ndarray) else np.asarray(data)
    ar = Arith(data.dtype)
    T = ar.dtype
    PH, PW = pooled_pair(pooled_size)
    N, C, H, W = data.shape
    with np.errstate(all="ignore"):
        rois_t = np.asarray(rois).astype(T)  # rois are converted to T first
        lowest = T.type(-FLT_MAX)  # -inf in float16 and bfloat16
    R = rois_t.shape[0]
    out = np.zeros((R, C, PH, PW), T)
    argmax = np.full((R, C, PH, PW), -1, np.int32)
    if out.size == 0:
        return out, argmax
    scale = scale_in(T, spatial_scale, compat)
    for r in range(R):
        b, hbins, wbins = roi_bins(rois_t[r], scale, ar, H, W, PH, PW, compat, r)
        for ph, (hs, he) in enumerate(hbins):
            for pw, (ws, we) in enumerate(wbins):
                if he <= hs or we <= ws:
                    continue  # empty bin: 0 and -1, already there
                best = np.full(C, lowest, T)
                arg = np.full(C, -1, np.int32)
                for h in range(hs, he):
                    for w in range(ws, we):
                        v = np.asarray(data[b, :, h, w]).astype(T)
                        with np.errstate(invalid="ignore"):
                            win = v > best  # strict: the first maximum wins, NaN never
                        best = np.where(win, v, best)
                        arg = np.where(win, np.int32(h * W + w), arg)
                out[r, :, ph, pw] = best
                argmax[r, :, ph, pw] = arg
    return out, argmax


def backward(grad_out, rois, argmax, data_shape):
    """grad [N, C, H, W] in grad_out's dtype: grad[b_r, c, argmax] += grad_out for
    every argmax >= 0, adding in ascending r, then ph, pw (each add in T)."""
    grad_out = grad_out if isinstance(grad_out, np.ndarray) else np.asarray(grad_out)
    T = native(grad_out.dtype)
    N, C, H, W = (int(v) for v in data_shape)
    with np.errstate(all="ignore"):
        rois_t = np.asarray(rois).astype(T)
    g = grad_out.astype(T)
    am = np.asarray(argmax).astype(np.int64)
    grad = np.zeros((N, C, H * W), T)
    R, _, PH, PW = g.shape
    if grad.size == 0 or g.size == 0:
        return grad.reshape(N, C, H, W)
    channels = np.arange(C)
    for r in range(R):
        b = math.trunc(float(rois_t[r, 0]))
        for ph in range(PH):
            for pw in range(PW):
                a = am[r, :, ph, pw]
                hit = a >= 0
                c, a = channels[hit], a[hit]  # distinct channels: no index repeats here
                if is_reduced(T):
                    s = grad[b, c, a].astype(np.float32) + g[r, c, ph, pw].astype(np.float32)
                else:
                    s = grad[b, c, a] + g[r, c, ph, pw]
                grad[b, c, a] = s.astype(T)
    return grad.reshape(N, C, H, W)
