"""A plain-loop NumPy reference, written line by line from SEMANTICS.md.

It shares no code with roipool: it is the oracle the tests compare against.
Slow by design (Python loops over ROIs, bins and bin elements; only the channel
axis is a NumPy vector), so tests keep shapes small.

Arithmetic is done in T, the data's dtype, with NumPy scalars. For float16 and
bfloat16 ("Reduced precision"), each product, quotient, floor and ceil is done
in float32 and rounded to T before the next step, as MXNet's half_t does.
"""
import math

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)

try:  # bfloat16 is optional (the ml_dtypes test extra)
    from ml_dtypes import bfloat16
except ImportError:  # pragma: no cover
    bfloat16 = None

REDUCED = tuple(t for t in (np.float16, bfloat16) if t is not None)


def is_reduced(T):
    return any(np.dtype(T) == np.dtype(r) for r in REDUCED)


def c_round(v):
    """C round(): halves away from zero (exact: v - floor(v) is exact in binary)."""
    v = float(v)
    a = abs(v)
    f = math.floor(a)
    r = f + 1.0 if a - f >= 0.5 else f
    return int(math.copysign(r, v))


class Arith:
    """The operations of the rule, done in T (or in float32 and rounded to T)."""

    def __init__(self, T):
        self.T = np.dtype(T).type
        self.reduced = is_reduced(T)

    def t(self, x):
        return self.T(x)

    def mul(self, a, b):
        if self.reduced:
            return self.T(np.float32(a) * np.float32(b))
        return self.T(a) * self.T(b)

    def div(self, a, b):
        if self.reduced:
            return self.T(np.float32(a) / np.float32(b))
        return self.T(a) / self.T(b)

    def floor(self, a):
        return self.T(np.floor(np.float32(a) if self.reduced else a))

    def ceil(self, a):
        return self.T(np.ceil(np.float32(a) if self.reduced else a))


def roi_geometry(roi, scale, H, W, PH, PW, T, compat="mxnet"):
    """(b, [(hstart, hend)] * PH, [(wstart, wend)] * PW) for one ROI row."""
    A = Arith(T)
    roi = [A.t(v) for v in roi]  # rois are converted to T first
    b = int(math.trunc(float(roi[0])))
    if compat == "torchvision":
        # torchvision: T coordinate times the double spatial_scale, in double
        x1s, y1s, x2s, y2s = (c_round(float(v) * float(scale)) for v in roi[1:])
    else:
        s = A.t(np.float32(scale))  # a C float, then T
        x1s, y1s, x2s, y2s = (c_round(A.mul(v, s)) for v in roi[1:])
    roi_h = max(y2s - y1s + 1, 1)
    roi_w = max(x2s - x1s + 1, 1)
    bin_h = A.div(A.t(roi_h), A.t(PH))
    bin_w = A.div(A.t(roi_w), A.t(PW))

    def bounds(n, size, start, limit):
        out = []
        for p in range(n):
            lo = int(A.floor(A.mul(A.t(p), size))) + start
            hi = int(A.ceil(A.mul(A.t(p + 1), size))) + start
            out.append((min(max(lo, 0), limit), min(max(hi, 0), limit)))
        return out

    return b, bounds(PH, bin_h, y1s, H), bounds(PW, bin_w, x1s, W)


def ref_forward(data, rois, pooled_size, spatial_scale, compat="mxnet"):
    """(out [R, C, PH, PW] of data's dtype, argmax int32) by the rule."""
    data = np.asarray(data)
    T = data.dtype.type
    PH, PW = (pooled_size, pooled_size) if np.isscalar(pooled_size) else pooled_size
    N, C, H, W = data.shape
    rois = np.asarray(rois)
    R = rois.shape[0]
    out = np.zeros((R, C, PH, PW), dtype=data.dtype)
    argmax = np.full((R, C, PH, PW), -1, dtype=np.int32)
    with np.errstate(over="ignore"):
        lowest = T(-FLT_MAX)  # -inf in float16 and bfloat16
    for r in range(R):
        b, hb, wb = roi_geometry(rois[r], spatial_scale, H, W, PH, PW, T, compat)
        for ph, (hs, he) in enumerate(hb):
            for pw, (ws, we) in enumerate(wb):
                if he <= hs or we <= ws:
                    continue  # empty bin: 0 and -1, already there
                best = np.full(C, lowest, dtype=data.dtype)
                arg = np.full(C, -1, dtype=np.int32)
                for h in range(hs, he):
                    for w in range(ws, we):
                        v = data[b, :, h, w]
                        with np.errstate(invalid="ignore"):
                            win = v > best  # strict; NaN never wins
                        best = np.where(win, v, best)
                        arg = np.where(win, h * W + w, arg)
                out[r, :, ph, pw] = best
                argmax[r, :, ph, pw] = arg
    return out, argmax


def ref_backward(grad_out, rois, argmax, data_shape):
    """grad[b_r, c, argmax] += grad_out, for r ascending, then ph, pw (in T)."""
    grad_out = np.asarray(grad_out)
    A = Arith(grad_out.dtype)
    N, C, H, W = data_shape
    grad = np.zeros((N, C, H * W), dtype=grad_out.dtype)
    R, _, PH, PW = grad_out.shape
    for r in range(R):
        b = int(math.trunc(float(A.t(np.asarray(rois)[r, 0]))))
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    a = int(argmax[r, c, ph, pw])
                    if a >= 0:
                        g = grad_out[r, c, ph, pw]
                        if A.reduced:
                            grad[b, c, a] = A.T(np.float32(grad[b, c, a]) + np.float32(g))
                        else:
                            grad[b, c, a] = grad[b, c, a] + g
    return grad.reshape(N, C, H, W)
