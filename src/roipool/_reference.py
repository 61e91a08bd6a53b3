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
Arith, c_round, FLT_MAX, NotFiniteSize. RoIAlign ("RoIAlign" in the contract):
    roi_align(data, rois, pooled_size, spatial_scale, sampling_ratio=-1,
              aligned=False, mode="avg", compat="torchvision") -> out
    roi_align_backward(grad_out, rois, data_shape, spatial_scale,
                       sampling_ratio=-1, aligned=False, compat="torchvision") -> grad
with align_compute_dtype, align_scale, AlignOps, AlignGeometry,
align_row_problem (the contract's row checks) and align_samples (cost).

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


# ---------------------------------------------------------------------------
# RoIAlign ("RoIAlign" in docs/semantics.md)
#
#     roi_align(data, rois, pooled_size, spatial_scale, sampling_ratio=-1,
#               aligned=False, mode="avg", compat="torchvision") -> out
#     roi_align_backward(grad_out, rois, data_shape, spatial_scale,
#                        sampling_ratio=-1, aligned=False, compat="torchvision") -> grad
#
# Every step is one operation in the compute type: float32 and float64 in T,
# float16 in float32 rounded to float16 after each operation (c10::Half);
# bfloat16 is computed as float32 and rounded once at the end. Only the channel
# axis is a NumPy vector (elementwise IEEE operations, no FMA).

ALIGN_COMPATS = ("torchvision", "mxnet", "onnxruntime")


def align_compute_dtype(dtype):
    """The dtype the arithmetic runs in: T, except float32 for bfloat16."""
    dt = native(dtype)
    return np.dtype(np.float32) if dt.name == "bfloat16" else dt


def align_scale(dtype, spatial_scale, compat="torchvision"):
    """The scale the corner products use, in the compute type. torchvision: the
    double cast to it; mxnet/onnxruntime: a C float first. In float16 both are
    the float32 rounded to float16 (c10::Half(double) goes through float;
    MXNet passes its float parameter as the kernel's T)."""
    ct = align_compute_dtype(dtype)
    with np.errstate(over="ignore"):
        if compat == "torchvision" and ct != np.float16:
            return ct.type(spatial_scale)
        return ct.type(np.float32(spatial_scale))


class AlignOps(Arith):
    """Arith plus the few extra steps RoIAlign needs, elementwise on arrays too."""

    def sub(self, a, b):
        if self.reduced:
            return self.T(np.float32(a) - np.float32(b))
        return self.T(self.T(a) - self.T(b))


def _align_max(a, b):
    """std::max(a, b): b if a < b else a (NaN in a stays, NaN in b is dropped)."""
    with np.errstate(invalid="ignore"):
        return np.where(a < b, b, a)


class AlignGeometry:
    """One ROI row's sampling plan: batch index, grid, count and, per bin, its
    samples as (y_low, y_high, x_low, x_high, w1, w2, w3, w4) or None for a
    sample outside the map. All arithmetic as in "RoIAlign, the rule"."""

    def __init__(self, row, scale, ops, H, W, PH, PW, sampling_ratio, aligned):
        T = ops.T
        self.b = math.trunc(float(row[0]))
        off = T(0.5) if aligned else T(0.0)
        sw, sh, ew, eh = (ops.sub(ops.mul(v, scale), off) for v in row[1:5])
        roi_w, roi_h = ops.sub(ew, sw), ops.sub(eh, sh)
        self.corners = (sw, sh, ew, eh)
        if not aligned:  # std::max(size, 1)
            roi_w = T(1.0) if roi_w < 1 else roi_w
            roi_h = T(1.0) if roi_h < 1 else roi_h
        self.roi_h, self.roi_w = roi_h, roi_w
        self.bin_h = ops.div(roi_h, ops.of_int(PH))
        self.bin_w = ops.div(roi_w, ops.of_int(PW))
        if sampling_ratio > 0:
            gh = gw = sampling_ratio
        else:  # ceil of the same quotient; a size <= 0 gives no samples
            gh, gw = _int_ceil(self.bin_h), _int_ceil(self.bin_w)
        self.gh, self.gw = max(gh, 0), max(gw, 0)
        n = self.gh * self.gw
        self.count = ops.of_int(max(n, 1))  # forward: at least 1
        self.count_back = ops.of_int(n)  # backward: the plain product (unused when 0)
        self.sh, self.sw = sh, sw
        self.ops, self.H, self.W = ops, H, W

    def axis(self, start, p, bin_size, i, grid):
        """start + p * bin + T(i + 0.5) * bin / T(grid), in that order."""
        o = self.ops
        half = o.T(np.float32(i + 0.5))  # static_cast<T>(i + .5f)
        return o.add(o.add(start, o.mul(o.of_int(p), bin_size)),
                     o.div(o.mul(half, bin_size), o.of_int(grid)))

    def _limit(self, n):
        """int n the way the comparison `y <= n` sees it (float for 32/16 bits)."""
        return float(np.float32(n)) if self.ops.T is not np.float64 else float(n)

    def sample(self, ph, pw, iy, ix):
        o, H, W = self.ops, self.H, self.W
        T = o.T
        y = self.axis(self.sh, ph, self.bin_h, iy, self.gh)
        x = self.axis(self.sw, pw, self.bin_w, ix, self.gw)
        fy, fx = float(y), float(x)
        if H == 0 or W == 0 or not (fy >= -1.0 and fy <= self._limit(H)
                                    and fx >= -1.0 and fx <= self._limit(W)):
            return None  # NaN included
        if fy <= 0:
            y = T(0.0)
        if fx <= 0:
            x = T(0.0)
        y_low, x_low = int(float(y)), int(float(x))
        if y_low >= H - 1:
            y_low = y_high = H - 1
            y = o.of_int(y_low)
        else:
            y_high = y_low + 1
        if x_low >= W - 1:
            x_low = x_high = W - 1
            x = o.of_int(x_low)
        else:
            x_high = x_low + 1
        ly, lx = o.sub(y, o.of_int(y_low)), o.sub(x, o.of_int(x_low))
        hy, hx = o.sub(T(1.0), ly), o.sub(T(1.0), lx)
        return (y_low, y_high, x_low, x_high,
                o.mul(hy, hx), o.mul(hy, lx), o.mul(ly, hx), o.mul(ly, lx))

    def samples(self, ph, pw):
        for iy in range(self.gh):
            for ix in range(self.gw):
                yield self.sample(ph, pw, iy, ix)


def align_row_problem(row, N, scale, ops, PH, PW, sampling_ratio, aligned):
    """What is wrong with one row (in the compute type) by the contract's row
    checks ("RoIAlign, bad input"), or None: the batch index, a coordinate, the
    scaled box not finite, or an adaptive grid of 2**31 samples or more per box."""
    b = float(row[0])
    if not math.isfinite(b) or not 0 <= math.trunc(b) < N:
        return "batch index"
    if not all(math.isfinite(float(v)) for v in row[1:5]):
        return "coordinate"
    with np.errstate(all="ignore"):
        g = AlignGeometry(row, scale, ops, 1, 1, PH, PW, sampling_ratio, aligned)
    if not all(math.isfinite(float(v)) for v in g.corners + (g.roi_h, g.roi_w)):
        return "box not finite"
    if sampling_ratio <= 0 and PH * PW * g.gh * g.gw >= 2**31:
        return "adaptive grid"
    return None


def align_samples(row, scale, ops, PH, PW, sampling_ratio, aligned):
    """How many samples one valid row takes (PH * PW * gh * gw): the cost of the
    plain loops, for callers that keep cases small."""
    with np.errstate(all="ignore"):
        g = AlignGeometry(row, scale, ops, 1, 1, PH, PW, sampling_ratio, aligned)
    return PH * PW * g.gh * g.gw


def _align_setup(dtype, rois, spatial_scale, compat):
    ct = align_compute_dtype(dtype)
    ops = AlignOps(ct)
    with np.errstate(all="ignore"):
        rois_t = np.asarray(rois).astype(ct)  # rows converted to the compute type first
    return ct, ops, rois_t, align_scale(dtype, spatial_scale, compat)


def roi_align(data, rois, pooled_size, spatial_scale, sampling_ratio=-1, aligned=False,
              mode="avg", compat="torchvision"):
    """out [R, C, PH, PW] in data's dtype by the RoIAlign rule (no validation)."""
    data = data if isinstance(data, np.ndarray) else np.asarray(data)
    T = native(data.dtype)
    ct, ops, rois_t, scale = _align_setup(T, rois, spatial_scale, compat)
    PH, PW = pooled_pair(pooled_size)
    N, C, H, W = data.shape
    R = rois_t.shape[0]
    out = np.zeros((R, C, PH, PW), ct)
    if out.size == 0 or H == 0 or W == 0:
        return out.astype(T)
    with np.errstate(all="ignore"):
        for r in range(R):
            g = AlignGeometry(rois_t[r], scale, ops, H, W, PH, PW, sampling_ratio, aligned)
            plane = np.asarray(data[g.b]).astype(ct)  # [C, H, W]
            v00 = plane[:, 0, 0]
            zero = ct.type(0.0)
            for ph in range(PH):
                for pw in range(PW):
                    acc = np.zeros(C, ct)
                    first = True
                    for s in g.samples(ph, pw):
                        if s is None:  # weights 0 at position 0, as the peers store it
                            p = [ops.mul(zero, v00)] * 4
                        else:
                            yl, yh, xl, xh, w1, w2, w3, w4 = s
                            p = [ops.mul(w1, plane[:, yl, xl]), ops.mul(w2, plane[:, yl, xh]),
                                 ops.mul(w3, plane[:, yh, xl]), ops.mul(w4, plane[:, yh, xh])]
                        if mode == "max":
                            val = _align_max(_align_max(_align_max(p[0], p[1]), p[2]), p[3])
                            acc = val if first else _align_max(acc, val)
                            first = False
                        else:
                            acc = ops.add(acc, ops.add(ops.add(ops.add(p[0], p[1]), p[2]), p[3]))
                    out[r, :, ph, pw] = acc if mode == "max" else ops.div(acc, g.count)
        return out.astype(T)


def roi_align_backward(grad_out, rois, data_shape, spatial_scale, sampling_ratio=-1,
                       aligned=False, compat="torchvision"):
    """grad [N, C, H, W] in grad_out's dtype: torchvision's serial scatter, in
    the order r, c, ph, pw, iy, ix and corners 1..4 (no validation)."""
    grad_out = grad_out if isinstance(grad_out, np.ndarray) else np.asarray(grad_out)
    T = native(grad_out.dtype)
    ct, ops, rois_t, scale = _align_setup(T, rois, spatial_scale, compat)
    N, C, H, W = (int(v) for v in data_shape)
    R, _, PH, PW = grad_out.shape
    grad = np.zeros((N, C, H, W), ct)
    if grad.size == 0 or grad_out.size == 0:
        return grad.astype(T)
    g_all = np.asarray(grad_out).astype(ct)
    with np.errstate(all="ignore"):
        for r in range(R):
            g = AlignGeometry(rois_t[r], scale, ops, H, W, PH, PW, sampling_ratio, aligned)
            tgt = grad[g.b]  # a view: [C, H, W]
            for ph in range(PH):
                for pw in range(PW):
                    go = g_all[r, :, ph, pw]
                    for s in g.samples(ph, pw):
                        if s is None:
                            continue  # outside: nothing is added
                        yl, yh, xl, xh = s[:4]
                        for (yy, xx), w in zip(((yl, xl), (yl, xh), (yh, xl), (yh, xh)), s[4:]):
                            tgt[:, yy, xx] = ops.add(tgt[:, yy, xx],
                                                     ops.div(ops.mul(go, w), g.count_back))
        return grad.astype(T)
