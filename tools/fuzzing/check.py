"""Running one case and judging it: inputs untouched (the whole memory block
behind a view), out=/argmax= buffers written on success and untouched on error,
results bit-identical to the model's, exceptions among the allowed faults."""
import copy
import traceback
import warnings

import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy 1.x (the floor is 1.25): not moved there yet
    from numpy import byte_bounds

from .cases import build
from .common import BF16, SkipCase, uint_view
from .model import expect_align_backward, expect_align_forward, expect_backward, expect_forward


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
        lo0 = byte_bounds(obj)[0]
        a, b = bytearray(now), bytearray(saved)
        for w in writable:
            if isinstance(w, np.ndarray) and w.nbytes and np.may_share_memory(w, obj):
                lo, hi = byte_bounds(w)
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


EXPECT = {"roi_pooling": expect_forward, "roi_pooling_backward": expect_backward,
          "roi_align": expect_align_forward, "roi_align_backward": expect_align_backward}


def run_case(spec, roipool, verbose=False):
    """-> (outcome, problems or None). outcome: 'ok' | exception name | 'skip' |
    'harness-error' (an exception of this harness: building the case, the model
    or the checks)."""
    try:
        return _run_case(spec, roipool, verbose)
    except Exception as e:  # noqa: BLE001 - a bug of this harness, reported as such
        if verbose:
            traceback.print_exc()
        return "harness-error", [f"HARNESS ERROR (tools/fuzzing, not roipool) {type(e).__name__}: {e}"]


def _run_case(spec, roipool, verbose=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fname, args, kwargs = build(spec)
            exp = EXPECT[fname](*args, **kwargs)
        except SkipCase:
            return "skip", None
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
        return float_result_problems(res, want, "out" if fname == "roi_align" else "grad", kwargs)
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
