"""Building a case from a spec: the spec is a small JSON dict (op, dtypes, shapes,
memory layouts, which argument to break and how, a seed for the bulk values);
build() turns it into the call's arguments deterministically, so a printed spec
replays the same case."""
import math
import warnings

import numpy as np

from roipool._reference import FLT_MAX

from .common import BF16, SkipCase, as_array, float_type, is_real_scalar
from .model import pooled_of

JUNK = 7777.0  # value in memory that is not part of a strided view: a wrong read shows up

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
    return {"fwd": build_forward, "bwd": build_backward, "afwd": build_align_forward,
            "abwd": build_align_backward}[spec["op"]](spec, rng)


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
            and pp != "bad" and d.dtype.isnative:
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


# -- RoIAlign ---------------------------------------------------------------------

RATIOS = {"-1": -1, "0": 0, "1": 1, "2": 2, "3": 3, "np2": np.int64(2), "max": 46340,
          "-2": -2, "over": 46341, "true": True, "float": 2.0, "none": None, "str": "2"}
GOOD_RATIOS = ["-1", "0", "1", "2", "3", "np2"]
BAD_RATIOS = ["max", "-2", "over", "true", "float", "none", "str"]  # "max": valid, but slow
ALIGNED = {"false": False, "true": True, "np": np.bool_(True), "int": 1, "str": "True",
           "none": None}
GOOD_ALIGNED = ["false", "true", "np"]
BAD_ALIGNED = ["int", "str", "none"]
ALIGN_COMPATS = {"torchvision": "torchvision", "mxnet": "mxnet", "onnxruntime": "onnxruntime",
                 "ort": "ort", "none": None}
MODES = {"avg": "avg", "max": "max", "mean": "mean", "none": None}


def _align_kwargs(spec):
    kwargs = {}
    if spec["threads"] != "none":
        kwargs["num_threads"] = THREADS[spec["threads"]]
    if spec["acompat"] != "torchvision":
        kwargs["compat"] = ALIGN_COMPATS[spec["acompat"]]
    return kwargs


def build_align_forward(spec, rng):
    """roi_align: the data, rows and buffers of a roi_pooling case, plus the
    RoIAlign arguments (sampling_ratio, aligned, mode, the three compats)."""
    _, (data, rois, pooled, scale), kw = build_forward(dict(spec, ret=False, argmax="none",
                                                            compat="mxnet"), rng)
    kwargs = _align_kwargs(spec)
    if spec["mode"] != "avg":
        kwargs["mode"] = MODES[spec["mode"]]
    if "out" in kw:
        kwargs["out"] = kw["out"]
    args = (data, rois, pooled, scale, RATIOS[spec["ratio"]], ALIGNED[spec["aligned"]])
    return "roi_align", args, kwargs


def build_align_backward(spec, rng):
    _, (grad_out, rois, _, ds), kw = build_backward(dict(spec, amk="none"), rng)
    kwargs = _align_kwargs(spec)
    if "out" in kw:
        kwargs["out"] = kw["out"]
    scale = SCALES[spec["scale"]]
    return "roi_align_backward", (grad_out, rois, ds, scale, RATIOS[spec["ratio"]],
                                  ALIGNED[spec["aligned"]]), kwargs
