"""No call modifies its inputs; out=/argmax= are fully written or untouched (issue 6).

* data, rois, grad_out and argmax are byte-for-byte the same after every call --
  returned or raised -- including the memory between the elements of a strided
  view (a stray write next to a view is seen too);
* inputs that live in read-only pages (mprotect PROT_READ) go through every path
  without a fault: a single write would be a SIGSEGV, so this runs in a subprocess;
* an out=/argmax= buffer is fully written on success (no sentinel left, equal to
  the result computed without it) and untouched when the call raises, at every
  stage: argument checks, buffer checks, the kernel's ROI scan, a float16 size
  overflow, and memory running out inside the kernel.

The fuzzer (tools/fuzz.py) checks the same properties on thousands of random cases.
"""
import textwrap

import numpy as np
import pytest

import roipool

from helpers import SANITIZED, import_tool, run_python


check = import_tool("fuzzing.check")
SENTINEL = -12345.0


def _views(rng, dtype=np.float32):
    """(name, data) pairs covering every layout, each a view into a bigger buffer
    where that applies."""
    base = rng.standard_normal((2, 6, 9, 11)).astype(dtype)
    yield "c", base.copy()
    yield "f", np.asfortranarray(base)
    yield "channels-last", np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    big = rng.standard_normal((3, 13, 19, 23)).astype(dtype)
    yield "strided view", big[::2, ::2, ::2, ::2][:2, :6, :9, :11]
    yield "negative strides", big[::-1, ::-2, ::-1, ::-2][:2, :6, :9, :11]
    ro = base.copy()
    ro.setflags(write=False)
    yield "read-only", ro
    yield "broadcast", np.broadcast_to(base[:, :1], base.shape)
    yield "big-endian", base.astype(np.dtype(dtype).newbyteorder(">"))


def _rois(rng, N=2, R=9, scale=1.0):
    xy = rng.uniform(-3, 14, (R, 4))
    return np.column_stack([rng.integers(0, N, R), xy / scale]).astype(np.float32)


def _misaligned(shape, dtype, fill):
    dtype = np.dtype(dtype)
    raw = np.zeros(int(np.prod(shape)) * dtype.itemsize + 1, np.uint8)
    a = np.ndarray(shape, dtype, buffer=raw, offset=1)
    a[...] = fill
    assert a.flags.c_contiguous and not a.flags.aligned
    return a


def _call_and_check(fn, args, kwargs, expect_exc=None):
    """Call; check every array argument (and the memory block behind it) is
    unchanged; out=/argmax= untouched if the call raised. Returns the result."""
    snaps = [check.snapshot(a) for a in args] + [check.snapshot(v) for k, v in kwargs.items()
                                                if k not in ("out", "argmax")]
    bufs = {k: check.snapshot(kwargs[k]) for k in ("out", "argmax") if kwargs.get(k) is not None}
    try:
        res = fn(*args, **kwargs)
        err = None
    except Exception as e:  # noqa: BLE001
        res, err = None, e
    for i, s in enumerate(snaps):
        assert check.unchanged(s), f"argument {i} was modified ({type(err).__name__ if err else 'returned'})"
    if expect_exc is not None:
        assert isinstance(err, expect_exc), f"expected {expect_exc}, got {err!r}"
        for k, s in bufs.items():
            assert check.unchanged(s), f"{k}= was written although the call raised {err!r}"
    else:
        assert err is None, f"unexpected {err!r}"
    return res


# ----------------------------------------------------------------------------- success


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_forward_leaves_inputs_and_fills_buffers(dtype):
    rng = np.random.default_rng(0)
    for name, data in _views(rng, dtype):
        rois = _rois(rng)
        ref_out, ref_am = roipool.roi_pooling(np.array(data), rois.copy(), (3, 4), 0.7, return_argmax=True)
        for layout in ("c", "channels-last", "misaligned"):
            shape = ref_out.shape
            if layout == "c":
                out = np.full(shape, SENTINEL, ref_out.dtype)
                am = np.full(shape, -7, np.int32)
            elif layout == "misaligned":  # C-contiguous views at an odd address
                out, am = _misaligned(shape, ref_out.dtype, SENTINEL), _misaligned(shape, np.int32, -7)
            else:
                R, C, PH, PW = shape
                out = np.full((R, PH, PW, C), SENTINEL, ref_out.dtype).transpose(0, 3, 1, 2)
                am = np.full((R, PH, PW, C), -7, np.int32).transpose(0, 3, 1, 2)
            o, a = _call_and_check(roipool.roi_pooling, (data, rois, (3, 4), 0.7),
                                   dict(out=out, argmax=am, return_argmax=True, num_threads=2))
            assert o is out and a is am, name
            assert check.bits_equal(out, ref_out), f"{name}/{layout}: out not fully written"
            assert np.array_equal(am, ref_am), f"{name}/{layout}: argmax not fully written"
            assert not (am == -7).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_backward_leaves_inputs_and_fills_buffer(dtype):
    rng = np.random.default_rng(1)
    shape = (2, 6, 9, 11)
    rois = _rois(rng)
    g = rng.standard_normal((9, 6, 3, 4)).astype(dtype)
    am = rng.integers(-1, 99, g.shape).astype(np.int32)
    ref = roipool.roi_pooling_backward(g.copy(), rois.copy(), am.copy(), shape)
    variants = {
        "c": (g, am), "strided": (np.repeat(g, 2, axis=3)[..., ::2], np.repeat(am, 2, axis=1)[:, ::2]),
        "read-only int64": (g, am.astype(np.int64)),
    }
    variants["read-only int64"][1].setflags(write=False)
    for name, (gg, aa) in variants.items():
        # out= channel-major, and channels-last (np.empty_like of channels-last data
        # gives one; it used to fail with Cython's "ndarray is not C-contiguous")
        N, C, H, W = shape
        for layout, out in (("c", np.full(shape, SENTINEL, dtype)),
                            ("channels-last", np.full((N, H, W, C), SENTINEL, dtype).transpose(0, 3, 1, 2)),
                            ("misaligned", _misaligned(shape, dtype, SENTINEL))):
            res = _call_and_check(roipool.roi_pooling_backward, (gg, rois, aa, shape),
                                  dict(out=out, num_threads=2))
            assert res is out
            assert check.bits_equal(out, ref), f"{name}/{layout}: gradient buffer not fully written"


# ----------------------------------------------------------------------------- errors


def _error_cases():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 9, 11)).astype(np.float32)
    x16 = x.astype(np.float16)
    rois = _rois(rng)
    last_bad = rois.copy()
    last_bad[-1, 0] = 2  # batch index == N, found by the kernel's scan
    coord_bad = rois.copy()
    coord_bad[3, 2] = np.nan
    shape = (9, 6, 2, 2)

    def bufs(dt=np.float32):
        return dict(out=np.full(shape, SENTINEL, dt), argmax=np.full(shape, -7, np.int32))

    F = roipool.roi_pooling
    yield "data dtype", F, (x.astype(np.int32), rois, 2, 1.0), bufs(), TypeError
    yield "data rank", F, (x[0], rois, 2, 1.0), bufs(), ValueError
    yield "rois dtype", F, (x, rois.astype(complex), 2, 1.0), bufs(), TypeError
    yield "rois shape", F, (x, rois[:, :4], 2, 1.0), bufs(), ValueError
    yield "pooled_size", F, (x, rois, 0, 1.0), bufs(), ValueError
    yield "spatial_scale", F, (x, rois, 2, -1.0), bufs(), ValueError
    yield "num_threads", F, (x, rois, 2, 1.0), dict(bufs(), num_threads=0), ValueError
    yield "compat", F, (x, rois, 2, 1.0), dict(bufs(), compat="caffe"), ValueError
    b = bufs()
    b["argmax"] = np.full(shape, -7, np.int64)
    yield "argmax dtype", F, (x, rois, 2, 1.0), b, ValueError
    b = bufs()
    b["argmax"] = b["out"].view(np.int32)
    yield "argmax overlaps out", F, (x, rois, 2, 1.0), b, ValueError
    yield "batch index at N (kernel scan)", F, (x, last_bad, 2, 1.0), bufs(), ValueError
    yield "NaN coordinate (kernel scan)", F, (x, coord_bad, 2, 1.0), bufs(), ValueError
    yield "float16 batch NaN", F, (x16, coord_bad, 2, 1.0), bufs(np.float16), ValueError
    big = rois.copy()
    big[5, 1:] = [-60000, 0, 60000, 1]
    yield "float16 ROI size overflow", F, (x16, big, 2, 1.0), bufs(np.float16), ValueError
    yield "scaled coordinate too big", F, (x, rois * np.float32([1, 1, 1, 1, 3e9]), 2, 1.0), bufs(), ValueError

    B = roipool.roi_pooling_backward
    g = rng.standard_normal(shape).astype(np.float32)
    am = rng.integers(-1, 99, shape).astype(np.int32)
    ob = dict(out=np.full(x.shape, SENTINEL, np.float32))
    yield "bwd grad_out dtype", B, (g.astype(np.int8), rois, am, x.shape), dict(ob), TypeError
    yield "bwd argmax dtype", B, (g, rois, am.astype(np.float32), x.shape), dict(ob), TypeError
    am_bad = am.copy()
    am_bad[-1, -1, -1, -1] = 99
    yield "bwd argmax range", B, (g, rois, am_bad, x.shape), dict(ob), ValueError
    yield "bwd data_shape", B, (g, rois, am, (2, 7, 9, 11)), dict(ob), ValueError
    yield "bwd batch index (kernel scan)", B, (g, last_bad, am, x.shape), dict(ob), ValueError
    yield "bwd out overlaps grad_out", B, (g, rois, am, x.shape), \
        dict(out=np.full(x.shape, SENTINEL, np.float32)), None  # replaced below


@pytest.mark.parametrize("case", list(_error_cases()), ids=lambda c: c[0])
def test_raising_call_touches_nothing(case):
    name, fn, args, kwargs, exc = case
    if exc is None:  # out= aliasing grad_out's memory block
        g = args[0]
        base = np.zeros(int(np.prod(args[3])) + g.size, np.float32)
        base[: g.size] = g.ravel()
        g_view = base[: g.size].reshape(g.shape)
        out = base[g.size - 1: g.size - 1 + int(np.prod(args[3]))].reshape(args[3])
        out[...] = SENTINEL
        base[: g.size] = g.ravel()
        args = (g_view,) + args[1:]
        kwargs = dict(out=out)
        exc = ValueError
    _call_and_check(fn, args, kwargs, expect_exc=exc)


# ----------------------------------------------------------------------------- late MemoryError


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer needs an unlimited address space")
def test_out_of_memory_inside_the_kernel_leaves_out_untouched():
    """NCHW data is gathered per channel block: for a 2**26-pixel plane (a zero-stride
    view) that scratch is 2 GiB, which a 1.5 GiB address-space limit refuses. The
    MemoryError comes from inside the kernel, after every check -- out= must still
    hold its sentinel."""
    # The limit is set by the child itself: a preexec_fn would make subprocess
    # fork() this whole test process (with every peer's threads) instead of
    # spawning the interpreter.
    code = """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
        import numpy as np, roipool
        data = np.broadcast_to(np.float32(1), (1, 64, 8192, 8192))
        rois = np.array([[0, 0, 0, 3, 3]], np.float32)
        out = np.full((1, 64, 2, 2), -12345.0, np.float32)
        am = np.full((1, 64, 2, 2), -7, np.int32)
        try:
            roipool.roi_pooling(data, rois, 2, 1.0, out=out, argmax=am, num_threads=1)
            print("RESULT", bool((out == 1).all()), bool((am >= 0).all()))
        except MemoryError as e:
            print("MEMORYERROR", bool((out == -12345).all()), bool((am == -7).all()), e)
    """
    proc = run_python(["-c", textwrap.dedent(code)], 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("MEMORYERROR True True") or proc.stdout.startswith("RESULT True True"), \
        proc.stdout


# ----------------------------------------------------------------------------- read-only pages


def test_inputs_in_read_only_pages():
    """Every input lives in pages the OS will not let anyone write (mprotect
    PROT_READ): forward and backward, success and error paths, all layouts. One
    write anywhere would kill the subprocess with SIGSEGV."""
    code = r'''
        import ctypes, mmap, sys
        import numpy as np, roipool

        libc = ctypes.CDLL(None)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        keep = []

        def frozen(a):
            """a copy of `a` in its own read-only pages"""
            a = np.ascontiguousarray(a)
            n = max(a.nbytes, 1)
            size = (n + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
            mm = mmap.mmap(-1, size)
            buf = np.frombuffer(mm, np.uint8, count=a.nbytes)
            buf[...] = a.view(np.uint8).reshape(-1)
            addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
            assert libc.mprotect(addr, size, mmap.PROT_READ) == 0
            keep.append(mm)
            v = buf.view(a.dtype).reshape(a.shape)
            v.setflags(write=False)  # honest flags: NumPy cannot see the page protection
            return v

        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 16, 9, 11)).astype(np.float32)
        xy = rng.uniform(-3, 14, (12, 4))
        rois = np.column_stack([rng.integers(0, 2, 12), xy]).astype(np.float32)
        ref, ref_am = roipool.roi_pooling(x, rois, 3, 0.5, return_argmax=True)
        g = rng.standard_normal(ref.shape).astype(np.float32)
        ref_g = roipool.roi_pooling_backward(g, rois, ref_am, x.shape)

        X, Ro, G, A = frozen(x), frozen(rois), frozen(g), frozen(ref_am)
        Xcl = frozen(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
        X16, X64 = frozen(x.astype(np.float16)), frozen(x.astype(np.float64))
        n = 0
        for data in (X, Xcl, X[:, ::2, ::-1], X16, X64):
            for nt in (1, 2):
                out, am = roipool.roi_pooling(data, Ro, 3, 0.5, return_argmax=True, num_threads=nt)
                n += 1
        out, am = roipool.roi_pooling(X, Ro, 3, 0.5, return_argmax=True)
        assert np.array_equal(out, ref) and np.array_equal(am, ref_am)
        for nt in (1, 2):
            grad = roipool.roi_pooling_backward(G, Ro, A, x.shape, num_threads=nt)
            assert np.array_equal(grad, ref_g)
            grad = roipool.roi_pooling_backward(frozen(g.astype(np.float16)), Ro, frozen(ref_am.astype(np.int64)),
                                                x.shape, num_threads=nt)
            n += 2
        bad = rois.copy(); bad[-1, 0] = 5
        Bad = frozen(bad)
        for call in (lambda: roipool.roi_pooling(X, Bad, 3, 0.5),
                     lambda: roipool.roi_pooling_backward(G, Bad, A, x.shape),
                     lambda: roipool.roi_pooling(X, Ro, 3, 0.5, out=X[:12, :, :3, :3].copy()[:, :, :, ::-1])):
            try:
                call()
            except ValueError:
                n += 1
        # an out= in read-only memory (flagged so): refused, not written
        ro_out = frozen(np.zeros(ref.shape, np.float32))
        try:
            roipool.roi_pooling(X, Ro, 3, 0.5, out=ro_out)
        except ValueError:
            n += 1
        print("OK", n)
    '''
    proc = run_python(["-c", textwrap.dedent(code)], 300)
    assert proc.returncode == 0, f"exit {proc.returncode} (a write to read-only input?)\n{proc.stderr[-3000:]}"
    assert proc.stdout.startswith("OK 18"), proc.stdout + proc.stderr[-2000:]  # 14 calls + 4 raised
