#!/usr/bin/env python
"""Fuzz roipool.roi_pooling and roi_pooling_backward with malformed and extreme inputs.

    python tools/fuzz.py --cases 10000            # the dedicated run
    python tools/fuzz.py --cases 300 --seed 7     # a quick one (the test suite runs this)
    python tools/fuzz.py --replay '<spec json>'   # re-run one printed case, verbosely

Hypothesis draws a *spec* (a small JSON dict: op, dtypes, shapes, memory layouts,
which argument to break and how, a seed for the bulk values); `build()` turns it
into the call's arguments deterministically, so every printed case can be replayed.
For every case an independent model of the contract (`expect_forward`,
`expect_backward`: API_CONTRACT.md and SEMANTICS.md re-implemented here with NumPy
scalars of the data's type) says either "valid: this exact out/argmax/grad" or
"invalid: one of these faults" (exception type + the argument the message must name,
for a bad ROI also "row r"). A case passes when

  * a valid call returns bit-identical results (out, argmax, grad; out=/argmax=
    buffers filled and returned), or an invalid call raises one of the allowed
    exceptions (TypeError / ValueError / MemoryError) whose message names the
    argument;
  * no input array (data, rois, grad_out, argmax, nor the memory around a view) has
    changed, whether the call returned or raised;
  * out=/argmax= buffers are fully written on success and untouched on error.

The cases run in a child process: a crash (segfault, abort, sanitizer report) or
a hang is caught by this parent, which prints the case that was running and
carries on with a fresh child (up to --max-crashes). Exit status 0 only when every
case passed, no child crashed or hung.
"""
import argparse
import collections
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)
INT32_MAX = 2**31 - 1
F32_OVERFLOW = 3.4028235677973366e38  # rounds to +inf in float32
HUGE_BYTES = 2**36  # outputs at least this big must raise MemoryError (no swap here)
GRAY_BYTES = 2**27  # outputs between this and HUGE_BYTES are not generated (slow / env-dependent)
JUNK = 7777.0  # value in memory that is not part of a strided view: a wrong read shows up
# Batch sizes of zero-stride views (and of empty gradients): roipool renumbers the
# images the ROIs use, so these must give results, not MemoryError (tests/test_limits.py).
HUGE_N = [2**17 + 3, 2**31, 2**40, 2**50, 2**61 - 1]


# --------------------------------------------------------------------------------------
# dtype helpers
# --------------------------------------------------------------------------------------

def _bf16():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


BF16 = _bf16()


def float_type(dt):
    """(native compute-result dtype T, reduced?) for a float dtype roipool accepts, else None."""
    dt = np.dtype(dt)
    if BF16 is not None and dt == BF16:
        return BF16, True
    if dt.kind == "f" and dt.itemsize in (2, 4, 8):
        nat = dt.newbyteorder("=")
        return nat, dt.itemsize == 2
    return None


def uint_view(a):
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_real_scalar(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


# --------------------------------------------------------------------------------------
# the model of the contract
# --------------------------------------------------------------------------------------

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


def as_array(x):
    if isinstance(x, np.ndarray):
        return x
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(x)
    except Exception:
        return None


def pooled_of(p):
    """(ph, pw) for a valid pooled_size, 'bad', or 'maybe' (a 0-d integer array: either
    reading it as k or rejecting it naming pooled_size is fine)."""
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


def c_round(v):
    """C round(): halves away from zero, exactly, for a finite double."""
    a = abs(v)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return int(r) if v >= 0 else -int(r)


def sat_int(v, up):
    v = float(v)
    if v == math.inf:
        return 4 * 10**18
    if v == -math.inf:
        return -4 * 10**18
    return int(math.ceil(v) if up else math.floor(v))


class Arith:
    """Scalar arithmetic in T as MXNet does it (float16/bfloat16: in float32, rounded)."""

    def __init__(self, T, reduced):
        self.T, self.reduced = T, reduced
        self.t = T.type

    def of_int(self, k):
        return self.t(np.float32(k)) if self.reduced else self.t(k)

    def mul(self, a, b):
        if self.reduced:
            return self.t(np.float32(a) * np.float32(b))
        return self.t(a * b)

    def div(self, a, b):
        if self.reduced:
            return self.t(np.float32(a) / np.float32(b))
        return self.t(a / b)

    def add(self, a, b):
        if self.reduced:
            return self.t(np.float32(a) + np.float32(b))
        return self.t(a + b)


def scan_rois(rois_T, ar, N, scale, forward, nonempty):
    """The first bad ROI row as a Fault (or None), per the contract.
    scale: (scale_in_T, scale_python_float, torchvision?); forward only."""
    R = rois_T.shape[0]
    for r in range(R):
        row = rois_T[r]
        b = float(row[0])
        if not math.isfinite(b) or not (0 <= math.trunc(b) < N):
            return Fault("rois", ValueError, f"row {r}"), None
        for j in range(1, 5):
            if not math.isfinite(float(row[j])):
                return Fault("rois", ValueError, f"row {r}"), None
        if not forward:
            continue
        sT, sd, tv = scale
        q = []
        for j in range(1, 5):
            p = float(row[j]) * sd if tv else float(ar.mul(row[j], sT))
            if not abs(p) < 2.0**31:
                return Fault("rois", ValueError, f"row {r}"), None
            q.append(c_round(p))
    return None, None


def geometry(rois_T, ar, scale, H, W, PH, PW):
    """Per ROI: (b, hs[], he[], ws[], we[]) or a size fault (float16 overflow)."""
    sT, sd, tv = scale
    geo = []
    fph, fpw = ar.of_int(PH), ar.of_int(PW)
    for r in range(rois_T.shape[0]):
        row = rois_T[r]
        b = math.trunc(float(row[0]))
        q = []
        for j in range(1, 5):
            p = float(row[j]) * sd if tv else float(ar.mul(row[j], sT))
            q.append(c_round(p))
        roi_w = max(q[2] - q[0] + 1, 1)
        roi_h = max(q[3] - q[1] + 1, 1)
        size_h, size_w = ar.of_int(roi_h), ar.of_int(roi_w)
        if not all(math.isfinite(float(v)) for v in (size_h, size_w, fph, fpw)):
            return None, r
        bin_h, bin_w = ar.div(size_h, fph), ar.div(size_w, fpw)

        def bounds(n, binsz, q0, hi):
            s = [min(max(sat_int(ar.mul(ar.of_int(k), binsz), False) + q0, 0), hi) for k in range(n)]
            e = [min(max(sat_int(ar.mul(ar.of_int(k + 1), binsz), True) + q0, 0), hi) for k in range(n)]
            return s, e

        hs, he = bounds(PH, bin_h, q[1], H)
        ws, we = bounds(PW, bin_w, q[0], W)
        geo.append((b, hs, he, ws, we))
    return geo, None


def pool(d, geo, T, PH, PW):
    """The rule: strict '>' max from -FLT_MAX in row-major order; empty bin -> 0, -1.
    d is the caller's array (any view, even a huge broadcast one): only the bins are
    read and converted to T."""
    N, C, H, W = d.shape
    R = len(geo)
    out = np.zeros((R, C, PH, PW), T)
    am = np.full((R, C, PH, PW), -1, np.int32)
    init_T = T.type(-FLT_MAX)  # -inf in float16 / bfloat16
    init = float(init_T)
    if C == 0 or R == 0:
        return out, am
    cidx = np.arange(C)
    for r, (b, hs, he, ws, we) in enumerate(geo):
        for ph in range(PH):
            for pw in range(PW):
                h0, h1, w0, w1 = hs[ph], he[ph], ws[pw], we[pw]
                if h1 <= h0 or w1 <= w0:
                    continue  # zeros / -1 already
                regT = np.asarray(d[b, :, h0:h1, w0:w1]).astype(T).reshape(C, -1)
                reg = regT.astype(np.float64)
                valid = reg > init
                masked = np.where(valid, reg, -np.inf)
                m = masked.max(axis=1)
                has = valid.any(axis=1)
                first = (masked == m[:, None]).argmax(axis=1)
                hh = h0 + first // (w1 - w0)
                ww = w0 + first % (w1 - w0)
                out[r, :, ph, pw] = np.where(has, regT[cidx, first], init_T)
                am[r, :, ph, pw] = np.where(has, hh * W + ww, -1)
    return out, am


def size_fault(rois_T, ar, scale, PH, PW):
    """float16: a ROI size or pooled size that is not finite in T (first bad row)."""
    sT, sd, tv = scale
    if not (math.isfinite(float(ar.of_int(PH))) and math.isfinite(float(ar.of_int(PW)))):
        return 0 if rois_T.shape[0] else None
    for r in range(rois_T.shape[0]):
        q = []
        for j in range(1, 5):
            p = float(rois_T[r, j]) * sd if tv else float(ar.mul(rois_T[r, j], sT))
            q.append(c_round(p))
        for n in (max(q[2] - q[0] + 1, 1), max(q[3] - q[1] + 1, 1)):
            if not math.isfinite(float(ar.of_int(n))):
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
    elif pooled[0] == "maybe":
        maybe.append(Fault("pooled_size", (ValueError, TypeError)))
        pooled = pooled[1]
    if not is_real_scalar(spatial_scale) or not (math.isfinite(float(spatial_scale)) and float(spatial_scale) > 0):
        faults.append(Fault("spatial_scale", ValueError))
    elif not tv and float(spatial_scale) >= F32_OVERFLOW:
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

    s = float(spatial_scale)
    ar = Arith(T, reduced)
    with np.errstate(all="ignore"):
        sT = T.type(np.float32(s))
        rois_T = r.astype(T)
        nelem = R * C * PH * PW
        csize = 8 if T.itemsize == 8 else 4  # compute type: float32 or float64
        nbytes = nelem * csize
        mem = Fault(None, MemoryError)
        if nbytes >= HUGE_BYTES or span_bytes(shape, csize) >= 2**63:
            faults.append(mem)  # rows may be scanned before or after: either fault
        elif nbytes >= GRAY_BYTES:
            raise SkipCase("output size in the environment-dependent range")
        rowf, _ = scan_rois(rois_T, ar, N, (sT, s, tv), True, nelem > 0)
        if rowf is not None:
            faults.append(rowf)
            return Expect(faults, maybe=maybe)
        if faults:
            return Expect(faults, maybe=maybe)
        if nelem == 0:
            # float16 size overflow need not be detected when there are no bins
            bad = size_fault(rois_T, ar, (sT, s, tv), PH, PW) if reduced and R else None
            if bad is not None:
                maybe.append(Fault("rois", ValueError, f"row {bad}"))
            return Expect([], results=(np.zeros(shape, T), np.full(shape, -1, np.int32)), maybe=maybe)
        geo, bad_row = geometry(rois_T, ar, (sT, s, tv), H, W, PH, PW)
        if geo is None:
            return Expect([Fault("rois", ValueError, f"row {bad_row}")], maybe=maybe)
        res = pool(d, geo, T, PH, PW)
    return Expect([], results=res, maybe=maybe)


def expect_backward(grad_out, rois, argmax, data_shape, out=None, num_threads=None):
    faults, maybe = [], []
    g, T, reduced = float_array_faults(grad_out, "grad_out", faults)
    try:
        ds = tuple(data_shape)
    except TypeError:
        ds = None
    if ds is None or len(ds) != 4 or not all(is_int(v) and v >= 0 for v in ds):
        faults.append(Fault("data_shape", ValueError))
        ds = None
    else:
        ds = tuple(int(v) for v in ds)
        if ds[2] * ds[3] > 2**31:
            faults.append(Fault("data_shape", ValueError))
        if g is not None and g.ndim == 4 and ds[1] != g.shape[1]:
            faults.append(Fault("data_shape", ValueError))
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
        rois_T = r.astype(T)
        rowf, _ = scan_rois(rois_T, None, N, None, False, True)
        if rowf is not None:
            return Expect(faults + [rowf] + rf, maybe=maybe)
        if faults or rf:
            return Expect(faults + rf, maybe=maybe)
        ar = Arith(T, reduced)
        grad = np.zeros(ds, T)
        go = g.astype(T)
        am = a.astype(np.int64)
        R = g.shape[0]
        if grad.size and g.size:
            flat = grad.reshape(N, C, H * W)
            if reduced:
                for rr in range(R):
                    b = math.trunc(float(rois_T[rr, 0]))
                    for c in range(C):
                        for k, idx in enumerate(am[rr, c].ravel()):
                            if idx >= 0:
                                flat[b, c, idx] = ar.add(flat[b, c, idx], go[rr, c].ravel()[k])
            else:
                bb = np.trunc(rois_T[:, 0].astype(np.float64)).astype(np.int64)
                P = g.shape[2] * g.shape[3]
                rr = np.repeat(np.arange(R), C * P)
                cc = np.tile(np.repeat(np.arange(C), P), R)
                aa = am.ravel()
                vv = go.ravel()
                keep = aa >= 0
                np.add.at(flat, (bb[rr[keep]], cc[keep], aa[keep]), vv[keep])
    return Expect([], results=(grad,), maybe=maybe)


class SkipCase(Exception):
    pass


# --------------------------------------------------------------------------------------
# building a case from a spec
# --------------------------------------------------------------------------------------

VALID_DT = ["float32", "float64", "float16", "bfloat16", ">f4", ">f8", ">f2"]
BAD_DT = ["bool", "int32", "int64", "uint8", "complex64", "complex128", "object", "longdouble", "U3"]
ROI_DT = ["float32", "float64", "float16", "int32", "int64", "uint16", ">f8", "float128"]
BAD_ROI_DT = ["bool", "complex64", "object", "U5"]
LAYOUTS = ["c", "c", "c", "f", "cl", "slice", "neg", "bcast", "ro", "unaligned", "oddstride", "list"]

# values for the scalar arguments, by name (specs stay JSON)
SCALES = {
    "1": 1.0, "0.5": 0.5, "0.0625": 0.0625, "0.7": 0.7, "2": 2.0, "1/3": 1 / 3, "1e-3": 1e-3,
    "sub64": 5e-324, "sub32": 1e-40, "tiny32": 1e-46, "1e30": 1e30, "3e38": 3e38, "1e39": 1e39,
    "1e300": 1e300, "np32": np.float32(0.7), "np64": np.float64(0.25), "int1": 1, "int3": 3,
    "npint": np.int64(2), "0": 0.0, "-0": -0.0, "-1": -1.0, "nan": math.nan, "inf": math.inf,
    "-inf": -math.inf, "true": True, "none": None, "str": "1.0", "complex": 1 + 0j, "list": [1.0],
    "nparr": np.array([0.5]), "npbool": np.bool_(True),
}
GOOD_SCALES = ["1", "0.5", "0.0625", "0.7", "2", "1/3", "1e-3", "np32", "np64", "int1", "npint"]
EDGE_SCALES = ["sub64", "sub32", "tiny32", "1e30", "3e38", "1e39", "1e300", "int3"]
BAD_SCALES = ["0", "-0", "-1", "nan", "inf", "-inf", "true", "none", "str", "complex", "list",
              "nparr", "npbool"]

THREADS = {"none": None, "1": 1, "2": 2, "3": 3, "np2": np.int32(2), "0": 0, "-1": -1,
           "true": True, "1.5": 1.5, "str": "2", "big": 2**70}
GOOD_THREADS = ["none", "1", "2", "3", "np2"]
BAD_THREADS = ["0", "-1", "true", "1.5", "str"]

COMPATS = {"mxnet": "mxnet", "torchvision": "torchvision", "MXNet": "MXNet", "none": None,
           "int": 0, "torch": "torch"}

BAD_POOLED = ["0", "-1", "neg_pair", "float", "bool", "tuple3", "none", "str", "halfint",
              "toobig", "2**63", "empty", "np0d", "nested"]


def _pooled(kind, ph, pw):
    return {
        "int": ph, "tuple": (ph, pw), "list": [ph, pw], "np": (np.int64(ph), np.int32(pw)),
        "nparr": np.array([ph, pw]), "one": [ph],
        "0": 0, "-1": -1, "neg_pair": (ph, -pw), "float": (float(ph), pw), "bool": (True, pw),
        "tuple3": (ph, pw, 1), "none": None, "str": "2", "halfint": (ph, 2.5),
        "toobig": (2**31, 1), "2**63": 2**63, "empty": (), "np0d": np.array(ph),
        "nested": ((ph,), (pw,)),
    }[kind]


def make_dtype(name):
    if name == "bfloat16":
        return BF16
    if name == "longdouble":
        return np.dtype(np.longdouble)
    return np.dtype(name)


def make_values(rng, shape, dt, vals):
    if vals == "ties":
        a = np.asarray(rng.integers(-3, 4, shape), dtype=np.float64)
    else:
        a = rng.standard_normal(shape) * 10
    a = np.asarray(a, dtype=np.float64)
    if vals == "special" and a.size:
        specials = np.array([np.nan, np.inf, -np.inf, -FLT_MAX, FLT_MAX, -0.0, 0.0, 1e-45,
                             5e-324, -1e300, 1e300, -FLT_MAX * (1 + 2**-20), -3e38])
        m = rng.random(shape) < 0.2
        a[m] = rng.choice(specials, int(m.sum()))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind == "U":
            return a.astype(dt)
        return a.astype(dt)


def apply_layout(a, layout, rng):
    """A view/array with the values of the C-contiguous array `a` and the given layout."""
    dt = a.dtype
    if layout == "c" or a.ndim == 0:
        return a
    if layout == "f":
        return np.asfortranarray(a)
    if layout == "cl":
        if a.ndim != 4:
            return a
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "slice":
        big_shape = tuple(2 * s + 1 for s in a.shape)
        big = np.empty(big_shape, dt)
        big[...] = np.array(JUNK, dtype=np.float64).astype(dt) if dt.kind in "fiu" or dt == BF16 else 0
        sl = tuple(slice(1, 1 + 2 * s, 2) for s in a.shape)
        big[sl] = a
        return big[sl]
    if layout == "neg":
        sl = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[sl])[sl]
    if layout == "bcast":
        if a.ndim < 2 or a.size == 0:
            return a
        ax = int(rng.integers(0, a.ndim))
        src = np.ascontiguousarray(a.take([0], axis=ax))
        return np.broadcast_to(src, a.shape)
    if layout == "ro":
        b = a.copy()
        b.setflags(write=False)
        return b
    if layout in ("unaligned", "oddstride"):
        if dt.hasobject or dt.itemsize == 1:
            return a
        isz = dt.itemsize
        if layout == "unaligned":
            strides, span = None, a.size * isz
        else:
            st, acc = [], isz + 1
            for s in reversed(a.shape):
                st.append(acc)
                acc = acc * max(s, 1) + 3
            strides, span = tuple(reversed(st)), acc
        buf = np.zeros(span + 2 * isz + 8, np.uint8)
        v = np.ndarray(a.shape, dt, buffer=buf, offset=1, strides=strides)
        v[...] = a
        return v
    if layout == "list":
        if dt.kind != "f" or dt.byteorder == ">" or a.ndim == 0:
            return a
        return a.tolist()
    raise ValueError(layout)


def make_rois(rng, spec, N, H, W, scale):
    R = spec["R"]
    s = scale if (is_real_scalar(scale) and math.isfinite(float(scale)) and float(scale) > 0) else 1.0
    rows = np.zeros((R, 5))
    for i in range(R):
        kind = spec["rowkinds"][i % len(spec["rowkinds"])]
        b = int(rng.integers(0, max(N, 1)))
        lo, hi = -0.3 * max(W, H, 1), 1.3 * max(W, H, 1)
        xy = rng.uniform(lo, hi, 4) / s
        if kind == "halfs":
            xy = (np.round(rng.uniform(lo, hi, 4) * 2) / 2) / s
        elif kind == "inverted":
            xy = xy[[2, 3, 0, 1]] if xy[0] < xy[2] else xy
        elif kind == "huge":
            xy = rng.choice([1e9, -1e9, 2.0**31, -(2.0**31), 2.0**31 - 1, 1e15, 3e38, 1e300], 4) / s
        elif kind == "edge":
            xy = np.array([0, 0, W - 1, H - 1], float) / s
        rows[i, 0] = b
        rows[i, 1:] = xy
        if kind == "batch_frac":
            rows[i, 0] = rng.choice([-0.5, max(N, 1) - 0.5, 0.999])
        elif kind == "batch_bad":
            rows[i, 0] = rng.choice([-1, N, N + 1, -2**40, 2**40, np.nan, np.inf, -np.inf, 1e300])
        elif kind == "coord_bad":
            rows[i, 1 + int(rng.integers(0, 4))] = rng.choice([np.nan, np.inf, -np.inf])
    return rows


def build(spec):
    """spec -> (function name, args, kwargs)."""
    rng = np.random.default_rng(spec["seed"])
    if spec["op"] == "fwd":
        return build_forward(spec, rng)
    return build_backward(spec, rng)


def _data_like(spec, rng, shape, dtname, layout, vals):
    dt = make_dtype(dtname)
    rank = spec.get("rank", "ok")
    if rank == "3d":
        shape = shape[1:]
    elif rank == "5d":
        shape = (1,) + shape
    elif rank == "2d":
        shape = shape[2:]
    elif rank == "0d":
        shape = ()
    if spec.get("huge"):
        kind = spec["huge"]
        base = make_values(rng, (1, 1, 1, 1), dt, vals)
        if kind == "N":
            rest = math.prod(d for d in shape[1:] if d) * dt.itemsize
            shape = (min(spec["hugeN"], (2**63 - 1) // rest), shape[1], shape[2], shape[3])
        elif kind == "HW_over":
            shape = (1, shape[1], 2**16, 2**15 + 1)
        elif kind == "HW_max":
            shape = (1, shape[1], 2**16, 2**15)
        elif kind == "C":
            shape = (1, 2**40, shape[2], shape[3])
        try:  # a zero-stride view: any logical size for free
            v = np.lib.stride_tricks.as_strided(base, shape, (0, 0, 0, 0), writeable=False)
        except ValueError:
            raise SkipCase("NumPy cannot represent this view") from None
        return v
    a = make_values(rng, shape, dt, vals)
    if rank == "none":
        return None
    if rank == "scalar":
        return 1.5
    if rank == "ragged":
        return [[1.0, 2.0], [3.0]]
    return apply_layout(a, layout, rng)


def _roi_array(spec, rng, N, H, W, scale):
    rows = make_rois(rng, spec, N, H, W, scale)
    rdt = spec["rdt"]
    rshape = spec.get("rshape", "ok")
    if rshape == "4col":
        rows = rows[:, :4]
    elif rshape == "6col":
        rows = np.concatenate([rows, np.ones((rows.shape[0], 1))], axis=1)
    elif rshape == "1d":
        rows = rows.reshape(-1)
    elif rshape == "3d":
        rows = rows.reshape(rows.shape[0], 5, 1)
    elif rshape == "T":
        rows = rows.T
    dt = make_dtype(rdt)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind in "iu":
            info = np.iinfo(dt)
            r = np.clip(np.nan_to_num(np.trunc(rows), nan=0, posinf=info.max, neginf=info.min),
                        info.min, info.max).astype(dt)
        else:
            r = rows.astype(dt)
    return apply_layout(r, spec.get("rlayout", "c"), rng)


def _buffer(kind, shape, dt, rng, overlap_with=None):
    """An out=/argmax= buffer pre-filled with a sentinel, or a broken one."""
    dt = np.dtype(dt)
    if kind == "none":
        return None
    sentinel = np.array(-12345, np.float64).astype(dt)
    if kind in ("ok", "ok_cl"):
        if kind == "ok_cl" and len(shape) == 4:
            R, C, PH, PW = shape
            return np.full((R, PH, PW, C), sentinel, dt).transpose(0, 3, 1, 2)
        return np.full(shape, sentinel, dt)
    if kind == "badshape":
        return np.full(tuple(s + 1 for s in shape), sentinel, dt)
    if kind == "baddtype":
        other = np.float64 if dt != np.float64 else np.float32
        if dt.kind in "iu":
            other = np.int64
        return np.full(shape, -1, other)
    if kind == "ro":
        b = np.full(shape, sentinel, dt)
        b.setflags(write=False)
        return b
    if kind == "noncontig":
        big = np.full(tuple(s * 2 for s in shape), sentinel, dt)
        v = big[tuple(slice(None, None, 2) for _ in shape)]
        if v.flags.c_contiguous:  # all-1 dims: fall back to a negative-stride view
            return np.full(shape, sentinel, dt)[::-1] if shape and shape[0] > 1 else v
        return v
    if kind == "list":
        return np.full(shape, sentinel, dt).tolist()
    if kind == "unaligned":
        n = math.prod(shape) * dt.itemsize
        raw = np.zeros(n + 1, np.uint8)
        b = np.ndarray(shape, dt, buffer=raw, offset=1)
        b[...] = sentinel
        return b
    if kind == "overlap" and isinstance(overlap_with, np.ndarray):
        root = overlap_with
        while isinstance(root.base, np.ndarray):
            root = root.base
        n = math.prod(shape) * dt.itemsize
        if root.flags.c_contiguous and root.flags.writeable and 0 < n <= root.nbytes \
                and not root.dtype.hasobject:
            return root.reshape(-1).view(np.uint8)[:n].view(dt).reshape(shape)
        return np.full(shape, sentinel, dt)
    return np.full(shape, sentinel, dt)


def build_forward(spec, rng):
    N, C, H, W = spec["N"], spec["C"], spec["H"], spec["W"]
    data = _data_like(spec, rng, (N, C, H, W), spec["dt"], spec["layout"], spec["vals"])
    scale = SCALES[spec["scale"]]
    d = as_array(data)
    if d is not None and d.ndim == 4:
        Nn, _, Hh, Ww = d.shape
    else:
        Nn, Hh, Ww = N, H, W
    rois = _roi_array(spec, rng, min(Nn, 4), min(Hh, 64), min(Ww, 64), scale)
    PH, PW = spec["PH"], spec["PW"]
    pooled = _pooled(spec["pooled"], PH, PW)
    kwargs = {}
    if spec["threads"] != "none":
        kwargs["num_threads"] = THREADS[spec["threads"]]
    if spec["compat"] != "mxnet":
        kwargs["compat"] = COMPATS[spec["compat"]]
    if spec["ret"]:
        kwargs["return_argmax"] = True
    # buffers only when the shapes are known
    ft = float_type(d.dtype) if d is not None and (d.dtype.kind == "f" or d.dtype == BF16) else None
    r = as_array(rois)
    pp = pooled_of(pooled)
    if spec["out"] != "none" and ft is not None and d.ndim == 4 and r is not None and r.ndim == 2 \
            and pp != "bad" and pp[0] != "maybe" and d.dtype.isnative:
        shape = (r.shape[0], d.shape[1]) + tuple(pp)
        if math.prod(shape) <= 10**6:
            kwargs["out"] = _buffer(spec["out"], shape, ft[0], rng, overlap_with=data)
            if spec["argmax"] != "none":
                ov = kwargs["out"] if spec["argmax"] == "overlap_out" else rois
                kind = "overlap" if spec["argmax"] in ("overlap_out", "overlap") else spec["argmax"]
                if spec["argmax"] == "overlap":
                    ov = data
                kwargs["argmax"] = _buffer(kind, shape, np.int32, rng, overlap_with=ov)
    return "roi_pooling", (data, rois, pooled, scale), kwargs


def build_backward(spec, rng):
    R, C, PH, PW = spec["R"], spec["C"], spec["PH"], spec["PW"]
    N, H, W = spec["N"], spec["H"], spec["W"]
    grad_out = _data_like(dict(spec, huge=None), rng, (R, C, PH, PW), spec["dt"], spec["layout"],
                          spec["vals"])
    HW = H * W
    ak = spec["amk"]
    shape = (R, C, PH, PW)
    if ak in ("random", "dup", "int64", "uint8", "int16", "bigendian", "ro", "noncontig", "list",
              "unaligned", "oddstride"):
        if ak == "dup":
            pool_vals = rng.integers(-1, max(HW, 1), 3)
            am = rng.choice(pool_vals, shape) if HW else np.full(shape, -1)
        else:
            am = rng.integers(-1, max(HW, 1), shape) if HW else np.full(shape, -1)
        am = am.astype({"int64": np.int64, "uint8": np.uint8, "int16": np.int16,
                        "bigendian": ">i4"}.get(ak, np.int32)) if ak != "uint8" else \
            np.where(am < 0, 0, am).astype(np.uint8)
        am = apply_layout(am, {"ro": "ro", "noncontig": "slice", "list": "list", "unaligned": "unaligned",
                               "oddstride": "oddstride"}.get(ak, "c"), rng)
        if ak == "list":
            am = np.asarray(am).tolist()
    elif ak == "oob_hi":
        am = np.full(shape, -1, np.int32)
        if am.size:
            am.flat[int(rng.integers(0, am.size))] = HW + int(rng.integers(0, 3))
    elif ak == "oob_lo":
        am = np.full(shape, -1, np.int32)
        if am.size:
            am.flat[int(rng.integers(0, am.size))] = int(rng.choice([-2, -2**31]))
    elif ak == "int_max":
        am = np.full(shape, 2**31 - 1, np.int32)
    elif ak == "uint64_huge":
        am = np.full(shape, 2**64 - 1, np.uint64)
    elif ak == "bool":
        am = np.zeros(shape, bool)
    elif ak == "float":
        am = np.zeros(shape, np.float32)
    elif ak == "object":
        am = np.zeros(shape, object)
    elif ak == "badshape":
        am = np.zeros((R, C, PH, PW + 1), np.int32)
    elif ak == "none":
        am = None
    else:
        raise ValueError(ak)
    dsk = spec["dsk"]
    ds = {
        "ok": (N, C, H, W), "list": [N, C, H, W], "ndarray": np.array([N, C, H, W]),
        "wrongC": (N, C + 1, H, W), "neg": (N, C, -1, W), "len3": (N, C, H), "float": (float(N), C, H, W),
        "bool": (N, C, True, W), "none": None, "str": "1234", "hugeHW": (N, C, 2**16, 2**15 + 1),
        "hugeN": (spec.get("hugeN", 2**40), C, H, W), "huge_alloc": (2**20, C, 2**12, 2**12),
        "np_int": (np.int64(N), np.int32(C), np.uint8(H), W),
    }[dsk]
    if dsk in ("hugeN", "huge_alloc") and C != 0:
        pass
    rois = _roi_array(spec, rng, N, H, W, 1.0)
    kwargs = {}
    if spec["threads"] != "none":
        kwargs["num_threads"] = THREADS[spec["threads"]]
    g = as_array(grad_out)
    ft = float_type(g.dtype) if g is not None and (g.dtype.kind == "f" or g.dtype == BF16) else None
    if spec["out"] != "none" and ft is not None and dsk in ("ok", "list", "ndarray", "np_int") \
            and g.dtype.isnative:
        oshape = (N, C, H, W)
        kind = spec["out"]
        ov = grad_out if kind == "overlap" else None
        if kind == "overlap" and spec.get("ovl") == "argmax":
            ov = am
        kwargs["out"] = _buffer(kind, oshape, ft[0], rng, overlap_with=ov)
    return "roi_pooling_backward", (grad_out, rois, am, ds), kwargs


# --------------------------------------------------------------------------------------
# hypothesis: the spec strategy
# --------------------------------------------------------------------------------------

def spec_strategy():
    from hypothesis import strategies as st

    def weighted(common, rare, p_rare):
        # sampled_from with a bias: p_rare in units of 1/100
        return st.integers(0, 99).flatmap(
            lambda u: st.sampled_from(rare) if u < p_rare else st.sampled_from(common))

    @st.composite
    def spec(draw):
        op = draw(st.sampled_from(["fwd", "fwd", "fwd", "bwd", "bwd"]))
        s = {"op": op, "seed": draw(st.integers(0, 2**32 - 1))}
        dts = VALID_DT if BF16 is not None else [d for d in VALID_DT if d != "bfloat16"]
        s["dt"] = draw(weighted(dts, BAD_DT, 6))
        s["rank"] = draw(weighted(["ok"], ["3d", "5d", "2d", "0d", "none", "scalar", "ragged"], 4))
        s["layout"] = draw(st.sampled_from(LAYOUTS))
        s["vals"] = draw(st.sampled_from(["normal", "ties", "special"]))
        s["N"] = draw(st.integers(0, 3))
        s["C"] = draw(weighted([0, 1, 2, 3, 5, 8, 9, 16, 17], [33, 64, 65, 130], 15))
        s["H"] = draw(weighted(list(range(0, 13)), [20, 33, 40], 10))
        s["W"] = draw(weighted(list(range(0, 13)), [20, 33, 40], 10))
        s["R"] = draw(weighted(list(range(0, 9)), [16, 40], 8))
        s["rowkinds"] = draw(st.lists(weighted(
            ["normal", "normal", "halfs", "inverted", "edge", "batch_frac"],
            ["huge", "batch_bad", "coord_bad"], 12), min_size=1, max_size=3))
        s["rdt"] = draw(weighted(ROI_DT, BAD_ROI_DT, 4))
        s["rshape"] = draw(weighted(["ok"], ["4col", "6col", "1d", "3d", "T"], 4))
        s["rlayout"] = draw(st.sampled_from(["c", "c", "f", "slice", "ro", "bcast", "list", "neg",
                                             "unaligned", "oddstride"]))
        s["PH"] = draw(weighted(list(range(1, 7)), [7, 9, 16], 10))
        s["PW"] = draw(weighted(list(range(1, 7)), [7, 9, 16], 10))
        s["threads"] = draw(weighted(GOOD_THREADS, BAD_THREADS, 4))
        s["out"] = draw(weighted(["none", "none", "ok", "ok_cl"],
                                 ["badshape", "baddtype", "ro", "noncontig", "list", "overlap",
                                  "unaligned"], 10))
        huge = draw(weighted([None], ["N", "HW_over", "HW_max", "C", "pooled"], 3))
        if op == "fwd":
            s["scale"] = draw(weighted(GOOD_SCALES, EDGE_SCALES + BAD_SCALES, 12))
            s["pooled"] = draw(weighted(["int", "tuple", "tuple", "list", "np", "nparr", "one"],
                                        BAD_POOLED, 5))
            s["compat"] = draw(weighted(["mxnet", "mxnet", "torchvision"],
                                        ["MXNet", "none", "int", "torch"], 2))
            s["ret"] = draw(st.booleans())
            s["argmax"] = draw(weighted(["none", "ok", "ok_cl"],
                                        ["badshape", "baddtype", "ro", "noncontig", "overlap",
                                         "overlap_out", "list", "unaligned"], 8))
            if huge == "pooled":
                # huge pooled sizes: both huge (output never allocatable) or an empty output
                big = draw(st.sampled_from([2**31 - 1, 2**30, 10**9]))
                if draw(st.booleans()):
                    s["PH"], s["PW"] = big, draw(st.sampled_from([big, 2**31 - 1]))
                else:
                    s["PH"], s["PW"] = big, draw(st.integers(1, 4))
                    s["C"] = 0
                s["pooled"] = "tuple"
            elif huge:
                s["huge"] = huge
                # native float32/float64 only: other types are converted (copied) in full,
                # which for a 2**31-element broadcast view is 8 GB of legitimate work
                s["dt"] = draw(st.sampled_from(["float32", "float64"]))
                s["hugeN"] = draw(st.sampled_from(HUGE_N))
                s["layout"] = "c"
                s["rank"] = "ok"
                s["H"], s["W"] = min(s["H"], 4), min(s["W"], 4)
                if huge in ("HW_max", "HW_over"):
                    s["R"] = 0 if draw(st.booleans()) else s["R"]
                    s["C"] = min(s["C"], 1)
                    # small ROIs near the origin: a bin never spans the 2**31-pixel map
                    s["rowkinds"] = [k for k in s["rowkinds"] if k != "huge"] or ["normal"]
                    s["scale"] = draw(st.sampled_from(GOOD_SCALES))
                if huge == "C":
                    s["PH"], s["PW"] = draw(st.sampled_from([(1, 1), (2**31 - 1, 2**31 - 1)]))
        else:
            s["amk"] = draw(weighted(["random", "random", "dup", "int64", "uint8", "ro", "noncontig",
                                      "list", "bigendian", "int16", "unaligned", "oddstride"],
                                     ["oob_hi", "oob_lo", "int_max", "uint64_huge", "bool", "float",
                                      "object", "badshape", "none"], 10))
            s["dsk"] = draw(weighted(["ok", "ok", "ok", "list", "ndarray", "np_int"],
                                     ["wrongC", "neg", "len3", "float", "bool", "none", "str",
                                      "hugeHW", "hugeN", "huge_alloc"], 6))
            if s["dsk"] == "hugeN":
                s["hugeN"] = draw(st.sampled_from(HUGE_N))
                s["C"] = 0 if draw(st.booleans()) else s["C"]
            if s["dsk"] == "huge_alloc":
                s["C"] = draw(st.sampled_from([1, 8]))
                s["R"] = 0
            s["ovl"] = draw(st.sampled_from(["grad", "argmax"]))
            if s["dt"] in BAD_DT and s["amk"] in ("uint8", "int16"):
                s["amk"] = "random"
        return s

    return spec()


# --------------------------------------------------------------------------------------
# running one case
# --------------------------------------------------------------------------------------

def _root(x):
    """The array that owns the memory behind view x (through as_strided's wrapper too)."""
    root = x
    while True:
        b = root.base
        if isinstance(b, np.ndarray):
            root = b
            continue
        inner = getattr(b, "base", None)  # np.lib.stride_tricks.DummyArray
        if isinstance(inner, np.ndarray):
            root = inner
            continue
        return root


def snapshot(x):
    """What the caller owns, to compare after the call: the bytes of the whole memory
    block behind an array view (so a write next to a strided view is seen too)."""
    if isinstance(x, np.ndarray):
        root = _root(x)
        if root.dtype.hasobject:
            return ("obj", root, list(root.ravel()))
        if root.flags.c_contiguous and root.nbytes <= 2**28:
            return ("bytes", root, root.tobytes())
        if x.nbytes <= 2**28:
            return ("bytes", x, x.tobytes())
        return None  # a huge logical view of a small block we could not find: not compared
    if isinstance(x, list):
        import copy
        return ("list", x, copy.deepcopy(x))
    return None


def unchanged(snap, writable=()):
    """True when what `snap` saved is as it was. `writable`: the call's out=/argmax=
    buffers; where one lives in the same memory block as an input (but does not
    overlap the input's elements, or the call would have been refused), its bytes
    may change and are left out of the comparison."""
    if snap is None:
        return True
    kind, obj, saved = snap
    if kind == "bytes":
        now = obj.tobytes()
        if now == saved:
            return True
        lo0 = np.lib.array_utils.byte_bounds(obj)[0]
        a, b = bytearray(now), bytearray(saved)
        for w in writable:
            if isinstance(w, np.ndarray) and w.nbytes and np.may_share_memory(w, obj):
                lo, hi = np.lib.array_utils.byte_bounds(w)
                lo, hi = max(lo - lo0, 0), min(hi - lo0, len(a))
                a[lo:hi] = b[lo:hi]
        return a == b
    if kind == "obj":
        return all(a is b for a, b in zip(obj.ravel(), saved))
    return obj == saved


def same_float_type(a, b):
    a, b = np.dtype(a), np.dtype(b)
    if BF16 is not None and (a == BF16 or b == BF16):
        return a == b
    return a.kind == b.kind and a.itemsize == b.itemsize


def bits_equal(a, b):
    """Bit-identical, except that any NaN equals any NaN (sign and payload of a NaN
    made by inf - inf are the CPU's business)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" or a.dtype == BF16:
        if a.dtype.itemsize != b.dtype.itemsize:
            return False
        a = a.astype(a.dtype.newbyteorder("=")) if a.dtype != BF16 else a
        b = b.astype(b.dtype.newbyteorder("=")) if b.dtype != BF16 else b
        an, bn = np.isnan(a), np.isnan(b)
        if not np.array_equal(an, bn):
            return False
        return np.array_equal(uint_view(a)[~an], uint_view(b)[~bn])
    return np.array_equal(a, b)


def describe_mismatch(got, exp):
    got, exp = np.asarray(got), np.asarray(exp)
    if got.shape != exp.shape:
        return f"shape {got.shape} != expected {exp.shape}"
    g64 = got.astype(np.float64) if got.dtype.kind != "i" else got
    e64 = exp.astype(np.float64) if exp.dtype.kind != "i" else exp
    bad = np.argwhere(~((g64 == e64) | (np.isnan(g64) & np.isnan(e64))) if got.dtype.kind != "i"
                      else g64 != e64)
    if not len(bad):
        return "values equal but bits differ (signed zero?) or dtype " \
               f"{got.dtype} != {exp.dtype}"
    i = tuple(bad[0])
    return f"{len(bad)} elements differ, first at {i}: got {got[i]!r}, expected {exp[i]!r}"


def run_case(spec, roipool, verbose=False):
    """-> (outcome, failure or None). outcome: 'ok' | exception name | 'skip'."""
    try:
        return _run_case(spec, roipool, verbose)
    except Exception as e:  # noqa: BLE001 - a bug of this harness, reported as such
        if verbose:
            traceback.print_exc()
        return "harness-error", [f"HARNESS ERROR (fuzz.py, not roipool) {type(e).__name__}: {e}"]


def _run_case(spec, roipool, verbose=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fname, args, kwargs = build(spec)
            if fname == "roi_pooling":
                exp = expect_forward(*args, **kwargs)
            else:
                exp = expect_backward(*args, **kwargs)
        except SkipCase:
            return "skip", None
        except Exception as e:  # noqa: BLE001 - a bug of this harness, reported as such
            if verbose:
                traceback.print_exc()
            return "harness-error", [f"HARNESS ERROR (fuzz.py, not roipool) {type(e).__name__}: {e}"]
        ins = [snapshot(a) for a in args]
        outbuf, ambuf = kwargs.get("out"), kwargs.get("argmax")
        buf_snaps = [snapshot(b) for b in (outbuf, ambuf)]
        fn = getattr(roipool, fname)
        if verbose:
            print("call:", fname, "kwargs:", sorted(kwargs))
            print("expect:", "valid" if exp.valid else exp.faults, "maybe:", exp.maybe)
        # A warning escaping roipool would become some other exception under
        # `-W error` than the one documented: it counts as a failure.
        warnings.simplefilter("error")
        try:
            res = fn(*args, **kwargs)
            err = None
        except Exception as e:  # noqa: BLE001 - classifying every exception is the point
            res, err = None, e
    name = "ok" if err is None else type(err).__name__
    if verbose and err is not None:
        traceback.print_exception(type(err), err, err.__traceback__)
    problems = []
    for i, sn in enumerate(ins):
        if not unchanged(sn, (outbuf, ambuf) if err is None else ()):
            problems.append(f"input argument {i} was modified")
    if isinstance(err, Warning):
        problems.append(f"the call let a warning out: {type(err).__name__}: {err}")
    if err is not None:
        for nm, sn in zip(("out", "argmax"), buf_snaps):
            if not unchanged(sn):
                problems.append(f"{nm}= buffer was written although the call raised")
        allowed = exp.faults + exp.maybe
        if not any(f.matches(err) for f in allowed):
            msg = str(err).splitlines()[0][:200] if str(err) else ""
            if exp.valid:
                problems.append(f"valid call raised {type(err).__name__}: {msg}")
            else:
                problems.append(f"expected one of {exp.faults}, got {type(err).__name__}: {msg}")
    elif not exp.valid:
        problems.append(f"call succeeded, expected one of {exp.faults}")
    else:
        problems.extend(check_results(fname, res, exp, kwargs, args))
    if problems:
        return name, problems
    return name, None


def float_result_problems(got, want, what, kwargs):
    """Problems of a float result: type, dtype, bits, and out= returned."""
    if not isinstance(got, np.ndarray):
        return [f"returned {type(got).__name__}, not an ndarray"]
    problems = []
    if not same_float_type(got.dtype, want.dtype):
        problems.append(f"{what} dtype {got.dtype}, expected {want.dtype}")
    elif not bits_equal(got, want):
        problems.append(f"{what} " + describe_mismatch(got, want))
    if kwargs.get("out") is not None and got is not kwargs["out"]:
        problems.append("out= buffer was not returned")
    return problems


def check_results(fname, res, exp, kwargs, args):
    if fname != "roi_pooling":
        (want,) = exp.results
        return float_result_problems(res, want, "grad", kwargs)
    want_out, want_am = exp.results
    if kwargs.get("return_argmax"):
        if not (isinstance(res, tuple) and len(res) == 2):
            return [f"return_argmax=True returned {type(res).__name__}"]
        got_out, got_am = res
    else:
        got_out, got_am = res, kwargs.get("argmax")
    problems = float_result_problems(got_out, want_out, "out", kwargs)
    if got_am is not None:
        if kwargs.get("argmax") is not None and kwargs.get("return_argmax") and got_am is not kwargs["argmax"]:
            problems.append("argmax= buffer was not returned")
        if got_am.dtype != np.int32:
            problems.append(f"argmax dtype {got_am.dtype}")
        elif not np.array_equal(got_am, want_am):
            problems.append("argmax " + describe_mismatch(got_am, want_am))
    return problems


def signature(spec, outcome, problems):
    import re
    p = re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "#", problems[0])
    p = re.sub(r"\(row = .*", "", p)[:120]
    return f"{spec['op']}: {p}"


# --------------------------------------------------------------------------------------
# worker (child process) and parent
# --------------------------------------------------------------------------------------

def worker(args):
    if args.mem_limit and not os.environ.get("ROIPOOL_SANITIZED"):
        import resource
        lim = int(args.mem_limit * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings

    import roipool

    if args.self_test == "corrupt":
        real = roipool.roi_pooling

        def corrupt(*a, **k):
            res = real(*a, **k)
            out = res[0] if isinstance(res, tuple) else res
            if isinstance(out, np.ndarray) and out.size and out.flags.writeable:
                out.flat[out.size // 2] = 424242
            return res
        roipool.roi_pooling = corrupt

    counts = collections.Counter()
    ops = collections.Counter()
    state_path, fail_path = args.state, args.failures
    done = [0]

    def save_state(spec):
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"i": done[0], "counts": counts, "ops": ops, "spec": spec}, f)
        os.replace(tmp, state_path)

    @hypothesis.seed(args.seed)
    @settings(max_examples=args.cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(spec_strategy())
    def fuzz(spec):
        if done[0] >= args.cases:
            return
        save_state(spec)
        if args.self_test == "crash" and done[0] == args.cases // 2:
            os.abort()
        if args.self_test == "hang" and done[0] == args.cases // 2:
            time.sleep(3600)
        outcome, problems = run_case(spec, roipool)
        done[0] += 1
        counts[outcome] += 1
        if outcome != "skip":
            ops[spec["op"]] += 1
        if problems:
            counts["FAIL"] += 1
            with open(fail_path, "a") as f:
                f.write(json.dumps({"spec": spec, "outcome": outcome, "problems": problems}) + "\n")

    rounds = 0
    while done[0] < args.cases and rounds < 50:
        fuzz()
        rounds += 1
        args.seed += 7919  # hypothesis may stop early; continue with another seed
    save_state(None)
    return 0


def parent(args):
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="roipool-fuzz-")
    state = os.path.join(tmp, "state.json")
    failures = os.path.join(tmp, "failures.jsonl")
    totals = collections.Counter()
    ops = collections.Counter()
    crashes = []
    remaining = args.cases
    seed = args.seed
    restarts = 0
    while remaining > 0:
        if os.path.exists(state):
            os.remove(state)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--cases", str(remaining),
               "--seed", str(seed), "--state", state, "--failures", failures,
               "--mem-limit", str(args.mem_limit)]
        if args.self_test and restarts == 0:
            cmd += ["--self-test", args.self_test]
        env = dict(os.environ)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        errlog = os.path.join(tmp, f"stderr.{restarts}")
        with open(errlog, "wb") as ef:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef, env=env)
            last_change, last_i = time.time(), -1
            hung = False
            while proc.poll() is None:
                time.sleep(0.2)
                st = _read_state(state)
                i = st["i"] if st else -1
                if st and (i != last_i or st.get("spec") is None):
                    last_i, last_change = i, time.time()
                if time.time() - last_change > args.hang:
                    hung = True
                    proc.kill()
                    proc.wait()
                if time.time() - t0 > args.timeout:
                    proc.kill()
                    proc.wait()
                    print(f"fuzz: total time limit of {args.timeout} s reached", file=sys.stderr)
                    remaining = 0
                    break
        st = _read_state(state) or {"i": 0, "counts": {}, "ops": {}, "spec": None}
        totals.update(st["counts"])
        ops.update(st["ops"])
        done = st["i"]
        if proc.returncode == 0 and st.get("spec") is None:
            remaining -= done
            if done == 0:
                break
            continue
        if remaining == 0:
            break
        # crash or hang: the spec in the state file is the case that was running
        with open(errlog, "rb") as ef:
            raw = ef.read()
        tail = (raw[:3000] + b"\n...\n" + raw[-4000:] if len(raw) > 7000 else raw).decode("utf-8", "replace")
        rc = proc.returncode
        how = "hang (no progress for %d s)" % args.hang if hung else (
            f"killed by signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"exit status {rc}")
        crashes.append({"how": how, "spec": st.get("spec"), "stderr": tail})
        totals["CRASH" if not hung else "HANG"] += 1
        remaining -= done + 1
        seed += 1000003
        restarts += 1
        if len(crashes) >= args.max_crashes:
            print(f"fuzz: stopping after {len(crashes)} crashes", file=sys.stderr)
            break
    elapsed = time.time() - t0
    fails = []
    if os.path.exists(failures):
        with open(failures) as f:
            fails = [json.loads(line) for line in f if line.strip()]
    n_cases = sum(v for k, v in totals.items() if k not in ("FAIL", "CRASH", "HANG")) + \
        totals["CRASH"] + totals["HANG"]
    ran = n_cases - totals["skip"]
    print(f"roipool fuzz: {ran} cases run ({totals['skip']} skipped) in {elapsed:.1f} s, "
          f"seed {args.seed}, {restarts} child restarts")
    print("  by function: " + ", ".join(f"{'roi_pooling' if k == 'fwd' else 'roi_pooling_backward'} "
                                        f"{v}" for k, v in sorted(ops.items())))
    outs = {k: v for k, v in totals.items() if k not in ("FAIL", "skip", "CRASH", "HANG")}
    print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outs.items(), key=lambda kv: -kv[1])))
    print(f"  failures: {len(fails)}   crashes: {totals['CRASH']}   hangs: {totals['HANG']}")
    if fails:
        groups = collections.OrderedDict()
        for fl in fails:
            sig = signature(fl["spec"], fl["outcome"], fl["problems"])
            groups.setdefault(sig, []).append(fl)
        print(f"\n{len(groups)} distinct failure kinds:")
        for sig, fl in groups.items():
            print(f"\n[{len(fl)}x] {sig}")
            for p in fl[0]["problems"]:
                print("     ", p)
            print("      replay: python tools/fuzz.py --replay '" + json.dumps(fl[0]["spec"]) + "'")
    for c in crashes:
        print(f"\nCRASH: {c['how']}")
        print("      replay: python tools/fuzz.py --replay '" + json.dumps(c["spec"]) + "'")
        lines = [ln for ln in c["stderr"].splitlines() if ln.strip()]
        # the sanitizer's verdict first (its stack can push it out of the tail)
        key = [ln for ln in lines if any(k in ln for k in (
            "runtime error", "ERROR: AddressSanitizer", "SUMMARY:", "Fatal Python error"))]
        for ln in key[:6] + ["..."] * bool(key) + lines[-25:]:
            print("      | " + ln)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": ran, "skipped": totals["skip"], "seconds": elapsed,
                       "outcomes": outs, "failures": fails, "crashes": crashes,
                       "by_function": dict(ops)}, f, indent=1, default=str)
    ok = not fails and not crashes and ran >= min(args.cases, 1) * 0.9
    if ran < args.cases * 0.9:
        print(f"fuzz: only {ran} of {args.cases} cases ran", file=sys.stderr)
    return 0 if ok else 1


def _read_state(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def replay(args):
    import roipool
    spec = json.loads(args.replay)
    print("spec:", json.dumps(spec))
    fname, a, k = build(spec)
    for i, x in enumerate(a):
        if isinstance(x, np.ndarray):
            print(f"arg {i}: ndarray shape={x.shape} dtype={x.dtype} strides={x.strides} "
                  f"flags(c={x.flags.c_contiguous}, aligned={x.flags.aligned}, writeable={x.flags.writeable})")
        else:
            print(f"arg {i}: {type(x).__name__} {x!r}"[:200])
    outcome, problems = run_case(spec, roipool, verbose=True)
    print("outcome:", outcome)
    for p in problems or []:
        print("PROBLEM:", p)
    return 1 if problems else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20251125)
    ap.add_argument("--timeout", type=float, default=3600, help="total seconds")
    ap.add_argument("--hang", type=float, default=120, help="seconds without progress = hang")
    ap.add_argument("--max-crashes", type=int, default=20)
    ap.add_argument("--json", help="write a machine-readable summary here")
    ap.add_argument("--mem-limit", type=float, default=6.0,
                    help="GiB of address space for the worker (0: none; ignored under ASan)")
    ap.add_argument("--replay", help="run one spec (JSON) in this process, verbosely")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--state", help=argparse.SUPPRESS)
    ap.add_argument("--failures", help=argparse.SUPPRESS)
    ap.add_argument("--self-test", choices=["crash", "hang", "corrupt"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.replay:
        return replay(args)
    if args.worker:
        return worker(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
