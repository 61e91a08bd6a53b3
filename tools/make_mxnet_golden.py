#!/usr/bin/env python3
"""Generate golden ROI-pooling data from the real MXNet (an independent oracle).

Runs in a separate virtualenv that has MXNet 1.x, NOT in the roipool environment:

    python3 -m venv /tmp/mxvenv
    /tmp/mxvenv/bin/pip install mxnet==1.9.1 'numpy<1.24'
    /tmp/mxvenv/bin/python tools/make_mxnet_golden.py

Writes tests/data/mxnet_golden.npz (all arrays plus a JSON "meta" string) and
tests/data/mxnet_golden.json (the same metadata, for humans).  The test that
reads it (tests/test_mxnet_golden.py) never imports MXNet.

How the outputs are obtained:
  * forward: ``mx.nd.ROIPooling(data, rois, pooled_size, spatial_scale,
    out=[out, argmax])``.  The operator has two outputs (``kOut``, ``kMaxIdx``)
    of which only the first is visible; the imperative API accepts an ``out``
    list that also names the hidden one, which must be int32 (MXNet 1.9.1
    stores the argmax as ``index_t``).
  * backward: ``mx.autograd`` with ``y.backward(grad_out)``; ``x.grad`` is the
    gradient w.r.t. data (grad_req "write", so it starts from zeros).

MXNet only accepts spatial_scale in [0, 1] (a dmlc parameter bound), so no
golden case uses a scale above 1.  bfloat16 is not an MXNet CPU type.

The script also evaluates a plain NumPy transcription of docs/semantics.md
on every case and prints where MXNet and that rule disagree (recorded in meta
as ``semantics_agrees`` per case).  For float16 it evaluates two variants:
"semantics" (scale converted to float16 before the product, as docs/semantics.md
says) and "mshadow" (half_t * float -> the float32 scale is used unrounded,
the product rounded to half; this is what mshadow's operator overloads do).
"""
import json
import math
import os
import sys

import numpy as np
import mxnet as mx
from mxnet import autograd

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, os.pardir, "tests", "data")
FLT_MAX = float(np.finfo(np.float32).max)
SEED = 20240611

# --------------------------------------------------------------------------
# MXNet oracle
# --------------------------------------------------------------------------


def mx_forward(data, rois, pooled, scale):
    dt = data.dtype
    R = rois.shape[0]
    C = data.shape[1]
    x = mx.nd.array(data, dtype=dt)
    r = mx.nd.array(rois, dtype=dt)
    o = mx.nd.zeros((R, C) + tuple(pooled), dtype=dt)
    i = mx.nd.zeros((R, C) + tuple(pooled), dtype="int32")
    mx.nd.ROIPooling(x, r, pooled_size=tuple(pooled), spatial_scale=scale, out=[o, i])
    # sanity: the visible output of the plain call is identical
    o2 = mx.nd.ROIPooling(x, r, pooled_size=tuple(pooled), spatial_scale=scale).asnumpy()
    o_np = o.asnumpy()
    assert np.array_equal(o_np, o2, equal_nan=True)
    return o_np, i.asnumpy().astype(np.int32)


def plane_argmax(raw, rois, data_shape):
    """MXNet 1.9.1's kMaxIdx is the flat index into the whole data array,
    ((b * C + c) * H + h) * W + w, not h * W + w as docs/semantics.md (and Caffe,
    torchvision) define it.  Convert, checking that it really is that."""
    N, C, H, W = data_shape
    R = rois.shape[0]
    b = np.trunc(rois[:, 0].astype(np.float64)).astype(np.int64)
    off = (b[:, None] * C + np.arange(C)[None, :]) * (H * W)          # [R, C]
    off = off.reshape(R, C, 1, 1)
    plane = np.where(raw >= 0, raw.astype(np.int64) - off, -1)
    ok = (raw < 0) | ((plane >= 0) & (plane < H * W))
    assert ok.all(), "MXNet argmax is not a flat index into data"
    assert (raw >= -1).all()
    return plane.astype(np.int32)


def mx_backward(data, rois, pooled, scale, grad_out):
    dt = data.dtype
    x = mx.nd.array(data, dtype=dt)
    r = mx.nd.array(rois, dtype=dt)
    x.attach_grad()
    with autograd.record():
        y = mx.nd.ROIPooling(x, r, pooled_size=tuple(pooled), spatial_scale=scale)
    y.backward(mx.nd.array(grad_out, dtype=dt))
    return x.grad.asnumpy()


# --------------------------------------------------------------------------
# NumPy transcription of docs/semantics.md (used only to report disagreements)
#
# A second copy of the rule on purpose: roipool's one reference is
# roipool._reference, but this script runs in MXNet's environment (MXNet 1.9.1
# needs numpy < 1.24), where roipool is not installed. It only reports where
# MXNet departs from the rule; the tests compare with roipool._reference.
# --------------------------------------------------------------------------


def c_round(v):
    """C round(): halves away from zero.  v is an exact T value."""
    v = float(v)
    f = math.floor(v)
    d = v - f  # exact for |v| < 2**52
    if d > 0.5:
        return f + 1
    if d < 0.5:
        return f
    return f + 1 if v >= 0 else f


def ref_forward(data, rois, pooled, scale, variant="semantics"):
    T = data.dtype.type
    half = data.dtype == np.float16
    N, C, H, W = data.shape
    PH, PW = pooled
    R = rois.shape[0]
    s32 = np.float32(scale)

    def mul(a, b):
        if half:
            return T(np.float32(a) * np.float32(b))
        return T(a) * T(b)

    def div(a, b):
        if half:
            return T(np.float32(a) / np.float32(b))
        return T(a) / T(b)

    if half and variant == "mshadow":
        sc = s32  # float32 scale, unrounded; product rounded to half
    else:
        sc = T(s32)
    out = np.zeros((R, C, PH, PW), data.dtype)
    am = np.full((R, C, PH, PW), -1, np.int32)
    neg = T(-FLT_MAX)
    for r in range(R):
        row = rois[r].astype(data.dtype)
        b = int(math.trunc(float(row[0])))
        x1 = int(c_round(mul(row[1], sc)))
        y1 = int(c_round(mul(row[2], sc)))
        x2 = int(c_round(mul(row[3], sc)))
        y2 = int(c_round(mul(row[4], sc)))
        rh = max(y2 - y1 + 1, 1)
        rw = max(x2 - x1 + 1, 1)
        bh = div(T(rh), T(PH))
        bw = div(T(rw), T(PW))
        for ph in range(PH):
            hs = min(max(int(math.floor(float(mul(T(ph), bh)))) + y1, 0), H)
            he = min(max(int(math.ceil(float(mul(T(ph + 1), bh)))) + y1, 0), H)
            for pw in range(PW):
                ws = min(max(int(math.floor(float(mul(T(pw), bw)))) + x1, 0), W)
                we = min(max(int(math.ceil(float(mul(T(pw + 1), bw)))) + x1, 0), W)
                for c in range(C):
                    if he <= hs or we <= ws:
                        out[r, c, ph, pw] = 0
                        am[r, c, ph, pw] = -1
                        continue
                    best, arg = neg, -1
                    for h in range(hs, he):
                        for w in range(ws, we):
                            v = data[b, c, h, w]
                            if v > best:
                                best, arg = v, h * W + w
                    out[r, c, ph, pw] = best
                    am[r, c, ph, pw] = arg
    return out, am


def ref_backward(grad_out, rois, argmax, data_shape):
    T = grad_out.dtype.type
    half = grad_out.dtype == np.float16
    N, C, H, W = data_shape
    g = np.zeros(data_shape, grad_out.dtype)
    flat = g.reshape(N, C, H * W)
    R, _, PH, PW = grad_out.shape
    for r in range(R):
        b = int(math.trunc(float(rois[r, 0])))
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    a = argmax[r, c, ph, pw]
                    if a >= 0:
                        if half:
                            flat[b, c, a] = T(np.float32(flat[b, c, a]) + np.float32(grad_out[r, c, ph, pw]))
                        else:
                            flat[b, c, a] = flat[b, c, a] + grad_out[r, c, ph, pw]
    return g


def same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


# --------------------------------------------------------------------------
# Case construction
# --------------------------------------------------------------------------

CASES = []


def add_case(name, data, rois, pooled, scale, grad_out=None, note=""):
    if isinstance(pooled, int):
        pooled = (pooled, pooled)
    pooled = (int(pooled[0]), int(pooled[1]))
    data = np.ascontiguousarray(data)
    rois = np.ascontiguousarray(np.asarray(rois, dtype=np.float64).astype(data.dtype))
    CASES.append(dict(name=name, data=data, rois=rois, pooled=pooled, scale=float(scale),
                      grad_out=grad_out, note=note))


def seed_cases():
    x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    for dt in (np.float32, np.float64, np.float16):
        for s in (1.0, 0.7):
            add_case(f"seed_{np.dtype(dt).name}_{s}", x.astype(dt), [[0, 0, 0, 4, 4]], (2, 2), s,
                     note="seed example of docs/semantics.md")


def half_hits(scale, T, lo, hi, want=6):
    """Coordinates x (T-representable) with x*scale (computed as MXNet does, in T)
    landing exactly on k + 0.5."""
    s32 = np.float32(scale)
    xs = np.arange(lo * 8, hi * 8) / 8.0
    xs = np.unique(xs.astype(T))
    if T == np.float16:
        prod = (xs.astype(np.float32) * s32).astype(np.float16).astype(np.float64)
    else:
        prod = (xs.astype(T) * T(s32)).astype(np.float64)
    frac = prod - np.floor(prod)
    hits = xs[frac == 0.5]
    # prefer a spread including negatives
    if len(hits) > want:
        idx = np.linspace(0, len(hits) - 1, want).round().astype(int)
        hits = hits[idx]
    return [float(h) for h in hits]


def rounding_probe_cases():
    """1 x 1 x 1 x W plane holding 0..W-1: argmax of a 1x1 ROI at x reveals
    round(x * scale) directly (and clipping for negative / large ones)."""
    W = 40
    plane = np.arange(W, dtype=np.float64).reshape(1, 1, 1, W)
    scales = [1.0, 0.5, 0.25, 0.125, 1 / 16, 0.7, 0.3, 0.1, 0.6, 0.9, 1 / 3]
    for dt in (np.float32, np.float64, np.float16):
        for s in scales:
            xs = half_hits(s, dt, -20, int(W / s) + 4, want=10)
            # add neighbours and plain values
            xs = sorted(set(xs + [0.0, 1.0, 2.0, -1.0, 45.0 if s == 0.7 else 3.0]))
            rois = [[0, x, 0, x, 0] for x in xs]            # 1x1 ROI: start
            rois += [[0, 0, 0, x, 0] for x in xs]           # ROI from 0 to x: end
            add_case(f"round_probe_{np.dtype(dt).name}_{s:.6g}", plane.astype(dt), rois, (1, 1), s,
                     note="x*scale on .5 boundaries: pins C round (half away from zero) and the product dtype")
    # float32 vs float64 product: x = 45, scale 0.7 -> 32 (float32), 31 (float64)
    add_case("round_45_07_float32", plane.astype(np.float32), [[0, 45, 0, 45, 0]], 1, 0.7)
    add_case("round_45_07_float64", plane.astype(np.float64), [[0, 45, 0, 45, 0]], 1, 0.7)
    # float16: product rounded to half with the unrounded float32 scale (mshadow)
    # versus with the scale rounded to half (docs/semantics.md); 10.7109375 * 0.7 is the
    # smallest such case (7.4976.. -> 7.496 -> 7  versus  7.4998 -> 7.5 -> 8).
    s32 = np.float32(0.7)
    xs16 = np.unique((np.arange(0, 4 * 60) / 4 / 0.7).astype(np.float16))
    a = np.array([c_round(np.float16(np.float32(v) * s32)) for v in xs16])
    b = np.array([c_round(np.float16(np.float32(v) * np.float32(np.float16(s32)))) for v in xs16])
    diff = [float(v) for v in xs16[a != b] if v * 0.7 < W - 1][:12]
    add_case("fp16_scale_rounding_07", plane.astype(np.float16), [[0, x, 0, x, 0] for x in diff], 1, 0.7,
             note="float16: does MXNet round the scale to half before the product?")


def special_value_cases(rng):
    for dt in (np.float32, np.float64, np.float16):
        d = rng.integers(-3, 4, size=(2, 2, 6, 7)).astype(dt)
        d[0, 0, :2, :3] = np.nan                    # an all-NaN block
        d[0, 1, 1:3, 1:4] = -np.inf                 # an all -inf block
        d[1, 0, 2:4, 2:5] = -FLT_MAX                # all -FLT_MAX block
        d[1, 1, 0, 0] = np.nan
        d[1, 1, 0, 1] = np.inf
        d[1, 1, 3, 3] = np.nan
        if dt == np.float64:
            d[1, 1, 4:6, 4:7] = -1e300              # below -FLT_MAX: never selected in float64
        rois = [[0, 0, 0, 2, 1], [0, 1, 1, 3, 2], [1, 2, 2, 4, 3], [1, 0, 0, 6, 5],
                [1, 4, 4, 6, 5], [0, 0, 0, 6, 5], [1, 3, 3, 3, 3], [0, -3, -2, 1, 0]]
        for pooled in ((1, 1), (2, 2), (3, 2)):
            add_case(f"special_{np.dtype(dt).name}_{pooled[0]}x{pooled[1]}", d, rois, pooled, 1.0,
                     note="NaN / +-inf / -FLT_MAX / -1e300 and small-integer ties")


def random_rois(rng, R, N, H, W, scale, dt):
    img_h, img_w = H / scale, W / scale
    rows = []
    for _ in range(R):
        b = int(rng.integers(0, N))
        kind = rng.choice(["inside", "inside", "partly", "outside", "flipped", "negative", "half", "fraction"])

        def coord(extent):
            return float(rng.integers(0, max(int(extent), 1)))

        if kind == "inside":
            x1, x2 = sorted([coord(img_w), coord(img_w)])
            y1, y2 = sorted([coord(img_h), coord(img_h)])
        elif kind == "partly":
            x1 = float(rng.integers(-int(img_w / 2) - 2, int(img_w)))
            y1 = float(rng.integers(-int(img_h / 2) - 2, int(img_h)))
            x2 = x1 + float(rng.integers(0, int(img_w) + 4))
            y2 = y1 + float(rng.integers(0, int(img_h) + 4))
        elif kind == "outside":
            if rng.random() < 0.5:
                x1 = img_w + float(rng.integers(2, 40)) / scale
                y1 = float(rng.integers(0, int(img_h) + 1))
            else:
                x1 = -float(rng.integers(3, 40)) / scale
                y1 = -float(rng.integers(3, 40)) / scale
            x2 = x1 + float(rng.integers(0, 10)) / scale
            y2 = y1 + float(rng.integers(0, 10)) / scale
        elif kind == "flipped":
            x2, x1 = sorted([coord(img_w), coord(img_w) + 1])
            y1, y2 = coord(img_h), coord(img_h)
            if rng.random() < 0.5:
                y1, y2 = max(y1, y2) + 1, min(y1, y2)
        elif kind == "negative":
            x1 = -float(rng.integers(1, 30))
            y1 = -float(rng.integers(1, 30))
            x2 = x1 + float(rng.integers(0, int(img_w) + 30))
            y2 = y1 + float(rng.integers(0, int(img_h) + 30))
        elif kind == "half":
            # coordinates whose scaled value is (close to) k + 0.5
            hs = half_hits(scale, dt, -8, int(max(img_w, img_h)) + 8, want=50)
            if hs:
                x1, y1, x2, y2 = (float(rng.choice(hs)) for _ in range(4))
            else:
                x1, y1, x2, y2 = ((int(rng.integers(-2, 16)) + 0.5) / scale for _ in range(4))
        else:  # fraction: non-integer coordinates
            x1, y1 = (float(rng.uniform(-3, e)) for e in (img_w, img_h))
            x2, y2 = x1 + float(rng.uniform(0, img_w)), y1 + float(rng.uniform(0, img_h))
        rows.append([b, x1, y1, x2, y2])
    rois = np.array(rows, dtype=np.float64)
    # fractional batch index: trunc() (C cast) must be applied
    if rng.random() < 0.3:
        rois[:, 0] += np.where(rng.random(R) < 0.5, 0.0, 0.75)
    return rois


def random_data(rng, shape, dt, kind):
    if kind == "normal":
        d = rng.standard_normal(shape)
    elif kind == "ties":
        d = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif kind == "const":
        d = np.full(shape, float(rng.integers(-3, 3)))
    else:  # special
        d = rng.integers(-3, 4, size=shape).astype(np.float64)
        m = rng.random(shape)
        d[m < 0.15] = np.nan
        d[(m >= 0.15) & (m < 0.25)] = -np.inf
        d[(m >= 0.25) & (m < 0.32)] = -FLT_MAX
        d[(m >= 0.32) & (m < 0.35)] = np.inf
    return d.astype(dt)


def random_cases(rng, count):
    scales = [1.0, 0.5, 0.25, 0.0625, 0.7, 0.3, 1 / 16]
    for k in range(count):
        dt = [np.float32, np.float32, np.float64, np.float16][k % 4]
        N = int(rng.integers(1, 4))
        C = int(rng.integers(1, 5))
        H = int(rng.integers(1, 16))
        W = int(rng.integers(1, 16))
        R = int(rng.integers(1, 11))
        pooled = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        scale = scales[int(rng.integers(0, len(scales)))]
        kind = ["normal", "ties", "special", "ties", "const"][k % 5]
        data = random_data(rng, (N, C, H, W), dt, kind)
        rois = random_rois(rng, R, N, H, W, scale, dt)
        add_case(f"random_{k:03d}_{np.dtype(dt).name}", data, rois, pooled, scale,
                 note=f"random; data={kind}")


def backward_cases(rng):
    for k, dt in enumerate([np.float32, np.float32, np.float64, np.float16, np.float32, np.float64]):
        N, C, H, W = 2, 3, 9, 11
        data = random_data(rng, (N, C, H, W), dt, "ties" if k % 2 else "normal")
        scale = [1.0, 0.5, 0.7, 1.0, 0.25, 0.0625][k]
        # heavily overlapping ROIs (including duplicates and a flipped one)
        base = [[0, 0, 0, 10, 8], [0, 1, 1, 6, 6], [0, 0, 0, 10, 8], [1, 2, 0, 9, 4],
                [1, 3, 3, 3, 3], [0, 5, 2, 1, 7], [1, -4, -4, 20, 20], [0, 2, 2, 5, 5]]
        rois = np.array(base, dtype=np.float64)
        rois[:, 1:] /= scale
        pooled = [(2, 2), (3, 3), (4, 5), (3, 2), (7, 7), (2, 3)][k]
        R = rois.shape[0]
        if k == 4:
            # cancellation-prone gradients: the summation order is visible
            g = rng.choice([1e8, -1e8, 1.0, 3.0, -1.0], size=(R, C) + pooled)
        elif dt == np.float16:
            g = rng.choice([2048.0, -2048.0, 1.0, 0.5, -1.0, 3.0], size=(R, C) + pooled)
        else:
            g = rng.standard_normal((R, C) + pooled)
        add_case(f"backward_{k}_{np.dtype(dt).name}", data, rois, pooled, scale,
                 grad_out=g.astype(dt), note="overlapping ROIs; gradient w.r.t. data")
    # summation order with one element pooled by several ROIs / bins
    for dt, big in ((np.float32, 1e8), (np.float64, 1e17), (np.float16, 2048.0)):
        data = np.arange(48, dtype=dt).reshape(1, 1, 8, 6)
        rois = [[0, 5, 7, 5, 7]] * 3 + [[0, 0, 0, 5, 7]]
        g = np.zeros((4, 1, 3, 3))
        g[0, 0, 0, 0], g[1, 0, 0, 0], g[2, 0, 0, 0] = -big, big, 1.0
        g[0, 0, 0, 1], g[0, 0, 0, 2] = 1.0, -1.0
        g[3, 0, 2, 2] = 1.0
        add_case(f"backward_order_{np.dtype(dt).name}", data, rois, (3, 3), 1.0,
                 grad_out=g.astype(dt), note="accumulation order r, ph, pw")


# --------------------------------------------------------------------------


def main():
    rng = np.random.default_rng(SEED)
    seed_cases()
    rounding_probe_cases()
    special_value_cases(rng)
    random_cases(rng, 64)
    backward_cases(rng)

    arrays = {}
    meta_cases = []
    disagreements = []
    for idx, c in enumerate(CASES):
        key = f"c{idx:03d}"
        data, rois, pooled, scale = c["data"], c["rois"], c["pooled"], c["scale"]
        out, am_raw = mx_forward(data, rois, pooled, scale)
        am = plane_argmax(am_raw, rois, data.shape)
        arrays[key + "_data"] = data
        arrays[key + "_rois"] = rois
        arrays[key + "_out"] = out
        arrays[key + "_argmax"] = am            # h * W + w in plane (b, c), or -1
        arrays[key + "_argmax_mx"] = am_raw     # MXNet's raw kMaxIdx (flat index into data)
        entry = dict(key=key, name=c["name"], dtype=data.dtype.name, pooled=list(pooled),
                     scale=scale, note=c["note"], has_grad=c["grad_out"] is not None)
        rout, ram = ref_forward(data, rois, pooled, scale, "semantics")
        entry["semantics_agrees"] = bool(same(out, rout) and same(am, ram))
        if data.dtype == np.float16:
            mout, mam = ref_forward(data, rois, pooled, scale, "mshadow")
            entry["mshadow_fp16_agrees"] = bool(same(out, mout) and same(am, mam))
        if not entry["semantics_agrees"]:
            disagreements.append(c["name"])
        if c["grad_out"] is not None:
            grad = mx_backward(data, rois, pooled, scale, c["grad_out"])
            arrays[key + "_grad_out"] = c["grad_out"]
            arrays[key + "_grad"] = grad
            rg = ref_backward(c["grad_out"], rois, am, data.shape)
            entry["backward_sequential_agrees"] = bool(same(grad, rg))
            if not entry["backward_sequential_agrees"]:
                disagreements.append(c["name"] + " (backward)")
        meta_cases.append(entry)

    meta = dict(
        generator="tools/make_mxnet_golden.py",
        seed=SEED,
        mxnet_version=mx.__version__,
        numpy_version=np.__version__,
        python_version=sys.version.split()[0],
        mxnet_call="mx.nd.ROIPooling(data, rois, pooled_size, spatial_scale, out=[out, argmax_int32])",
        backward_call="mx.autograd: y = ROIPooling(x, rois, ...); y.backward(grad_out); x.grad",
        notes=[
            "argmax_mx is MXNet's hidden second output (kMaxIdx), int32: the FLAT index into data, "
            "((b*C + c)*H + h)*W + w, or -1; argmax is the same converted to the rule's h*W + w "
            "(argmax_mx - (b*C + c)*H*W where argmax_mx >= 0)",
            "rois are stored already converted to data's dtype (MXNet requires rois and data of one dtype)",
            "MXNet rejects spatial_scale > 1 (parameter bound [0, 1]); no such cases here",
            "backward: MXNet 1.9.1 CPU scatters grad_out through argmax sequentially, r then ph, pw "
            "(for float16 each += is rounded to half)",
        ],
        cases=meta_cases,
    )
    arrays["meta"] = np.array(json.dumps(meta))
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "mxnet_golden.npz")
    np.savez_compressed(path, **arrays)
    with open(os.path.join(OUT_DIR, "mxnet_golden.json"), "w") as f:
        json.dump({k: v for k, v in meta.items()}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(CASES)} cases, {os.path.getsize(path)} bytes to {os.path.normpath(path)}")
    print("mxnet", mx.__version__, "numpy", np.__version__)
    n16 = [e for e in meta_cases if e["dtype"] == "float16"]
    print("float16 cases:", len(n16), "agree with docs/semantics.md:", sum(e["semantics_agrees"] for e in n16),
          "agree with mshadow variant:", sum(e.get("mshadow_fp16_agrees", False) for e in n16))
    print("cases disagreeing with docs/semantics.md:", disagreements or "none")


if __name__ == "__main__":
    main()
