"""10,000 calls of each public function leave memory flat (issue 6, "Leaks").

Each path -- roi_pooling and roi_pooling_backward, every dtype family, out= buffers,
channels-last, and the error paths (bad ROI row found by the kernel's scan, bad
dtype, bad argmax, unallocatable output, overlapping buffer, bad arguments) -- is
called 10,000 times (the two OpenMP-parallel paths 2,000 times: on a busy 2-core
machine each parallel call can wait milliseconds for a core) in a fresh interpreter
after a warm-up, and three measures must stay flat. The bounds are per path,
whatever the number of calls:

  * tracemalloc's traced memory (Python objects and NumPy array data):
    growth <= 8 KiB -- a leak of one object per call is >= 16 bytes x 2,000;
  * the C heap in use (glibc mallinfo2: arena + mmapped bytes, which is where the
    kernels' malloc goes), less tracemalloc's own tables: growth <= 16 KiB -- the
    smallest block the kernels allocate per call is 16 bytes. (tracemalloc keeps
    a hash table of the live Python blocks on that heap, which doubles when their
    count passes a power of two: +32 KiB past 2,048. CPython's free list of
    4-tuples, shape tuples here, fills by one per call up to 2,000 blocks over a
    path's first 2,000 calls; with NumPy 1.25 that pushed the count past 2,048
    during the float32 backward. The instrument's growth, not roipool's.)
  * resident set size (/proc/self/statm): growth <= 4 MiB.

A measured no-op runs before the first path: the measures' own first use keeps
memory (under qemu-user, rss_bytes' first walk over the mappings put +21 KB on the
C heap, inside the first path's window: ctypes keeps an array type per length).

test_the_measures_see_a_leak shows each bound fails on a path that does leak.
Under AddressSanitizer (tools/asan.sh) only tracemalloc is checked: ASan's
allocator and quarantine make mallinfo and RSS meaningless there.

    python tests/test_leaks.py --calls 10000        # prints the table
"""
import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np

from helpers import SANITIZED, rss_bytes

CALLS = 10_000
PARALLEL_CALLS = 2_000  # paths that start OpenMP threads
TRACE_BOUND = 8 * 1024
HEAP_BOUND = 16 * 1024
RSS_BOUND = 4 * 1024 * 1024
WARMUP = 300


# ----------------------------------------------------------------------------- measures


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]


def _libc():
    try:
        libc = ctypes.CDLL(None)
        f = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    f.restype = _MallInfo2
    return f


_MALLINFO2 = _libc()


def heap_in_use():
    """Bytes malloc'ed and not freed (all arenas + mmapped blocks), less what
    tracemalloc holds for its own bookkeeping (see the module's docstring), or None."""
    if _MALLINFO2 is None or SANITIZED:
        return None
    m = _MALLINFO2()
    return m.uordblks + m.hblkhd - tracemalloc.get_tracemalloc_memory()


# ----------------------------------------------------------------------------- paths


def paths():
    import roipool

    rng = np.random.default_rng(0)
    N, C, H, W, R = 2, 8, 12, 14, 16
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    xy = rng.uniform(-8, 40, (R, 4))
    rois = np.column_stack([rng.integers(0, N, R), xy]).astype(np.float32)
    rois64 = rois.astype(np.float64)
    bad_rois = rois.copy()
    bad_rois[R - 1, 3] = np.inf  # found by the kernel's scan, after the checks
    out, am = roipool.roi_pooling(x, rois, 7, 0.5, return_argmax=True)
    out_cl = np.empty((R, 7, 7, C), np.float32).transpose(0, 3, 1, 2)
    am_cl = np.empty((R, 7, 7, C), np.int32).transpose(0, 3, 1, 2)
    x16 = x.astype(np.float16)
    x64 = x.astype(np.float64)
    g = rng.standard_normal(out.shape).astype(np.float32)
    g16 = g.astype(np.float16)
    grad_buf = np.empty(x.shape, np.float32)
    am_bad = am.copy()
    am_bad[-1, -1, -1, -1] = H * W
    huge = np.broadcast_to(np.float32(1), (1, 2**40, 1, 1))
    huge_n = np.broadcast_to(np.float32(1), (2**40, 3, 4, 4))
    rois_n = np.array([[2**39, 0, 0, 3, 3], [5, 1, 1, 2, 2]], np.float32)
    grad_cl = np.empty((N, H, W, C), np.float32).transpose(0, 3, 1, 2)

    def expect(exc, fn):
        def call():
            try:
                fn()
            except exc:
                return
            raise AssertionError(f"no {exc.__name__}")
        return call

    one = dict(num_threads=1)
    P = {
        "fwd f32 nchw argmax": lambda: roipool.roi_pooling(x, rois, 7, 0.5, return_argmax=True, **one),
        "fwd f32 channels-last out=": lambda: roipool.roi_pooling(
            x_cl, rois, 7, 0.5, out=out_cl, argmax=am_cl, **one),
        "fwd f32 2 threads": lambda: roipool.roi_pooling(x, rois, (3, 5), 0.7, num_threads=2),
        "fwd f16": lambda: roipool.roi_pooling(x16, rois, 7, 0.5, return_argmax=True, **one),
        "fwd f64 torchvision": lambda: roipool.roi_pooling(x64, rois64, 2, 0.25, compat="torchvision",
                                                           **one),
        "fwd empty": lambda: roipool.roi_pooling(x, rois[:0], 7, 0.5, return_argmax=True, **one),
        "fwd huge broadcast batch": lambda: roipool.roi_pooling(huge_n, rois_n, 2, 1.0, **one),
        "bwd f32": lambda: roipool.roi_pooling_backward(g, rois, am, x.shape, **one),
        "bwd f32 out= 2 threads": lambda: roipool.roi_pooling_backward(g, rois, am, x.shape,
                                                                       out=grad_buf, num_threads=2),
        "bwd f32 channels-last out=": lambda: roipool.roi_pooling_backward(g, rois, am, x.shape,
                                                                           out=grad_cl, **one),
        "bwd f16": lambda: roipool.roi_pooling_backward(g16, rois, am, x.shape, **one),
        "err fwd bad row (kernel scan)": expect(ValueError, lambda: roipool.roi_pooling(
            x, bad_rois, 7, 0.5, return_argmax=True, **one)),
        "err bwd bad row": expect(ValueError, lambda: roipool.roi_pooling_backward(
            g, bad_rois[:, [0, 1, 2, 1, 2]] * np.array([1, 1, 1, 1, np.nan], np.float32), am,
            x.shape, **one)),
        "err fwd dtype": expect(TypeError, lambda: roipool.roi_pooling(x.astype(np.int16), rois, 7, 0.5)),
        "err fwd pooled_size": expect(ValueError, lambda: roipool.roi_pooling(x, rois, (7, 0), 0.5)),
        "err fwd out overlaps": expect(ValueError, lambda: roipool.roi_pooling(
            x, rois[:1], (H, W), 1.0, out=x[:1, :, :, :].reshape(1, C, H, W))),
        "err fwd MemoryError": expect(MemoryError, lambda: roipool.roi_pooling(huge, rois, 7, 0.5)),
        "err bwd argmax range": expect(ValueError, lambda: roipool.roi_pooling_backward(
            g, rois, am_bad, x.shape)),
        "err bwd argmax dtype": expect(TypeError, lambda: roipool.roi_pooling_backward(
            g, rois, am.astype(np.float32), x.shape)),
        "err bwd data_shape": expect(ValueError, lambda: roipool.roi_pooling_backward(
            g, rois, am, (N, C + 1, H, W))),
    }
    return P


def self_test_paths():
    """Paths that do leak, to show the measures see it."""
    import roipool

    x = np.zeros((1, 1, 4, 4), np.float32)
    rois = np.zeros((1, 5), np.float32)
    kept = []
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    return {
        "LEAK python object": lambda: kept.append((roipool.roi_pooling(x, rois, 2, 1.0),
                                                   np.ones(1024, np.float32))),
        "LEAK 64 bytes of C heap": lambda: (libc.malloc(64), roipool.roi_pooling(x, rois, 2, 1.0)),
    }


def measure(fn, calls, warmup=WARMUP):
    for _ in range(warmup):
        fn()
    gc.collect()
    t0, h0, r0 = tracemalloc.get_traced_memory()[0], heap_in_use(), rss_bytes()
    for _ in range(calls):
        fn()
    gc.collect()
    t1, h1, r1 = tracemalloc.get_traced_memory()[0], heap_in_use(), rss_bytes()
    return {"calls": calls, "traced_before": t0, "traced_after": t1, "heap_before": h0,
            "heap_after": h1, "rss_before": r0, "rss_after": r1}


def run(calls, shard=(0, 1), self_test=False):
    tracemalloc.start()
    P = self_test_paths() if self_test else paths()
    # The measures' first use keeps memory of its own (see the module's docstring),
    # so a no-op is measured before the first path.
    measure(lambda: None, WARMUP)
    res = {}
    for i, (name, fn) in enumerate(P.items()):
        if i % shard[1] != shard[0]:
            continue
        res[name] = measure(fn, min(calls, PARALLEL_CALLS) if "2 threads" in name else calls)
    res["_process"] = {"rss_end": rss_bytes(), "sanitized": SANITIZED,
                       "heap_measured": heap_in_use() is not None}
    return res


def violations(res):
    bad = []
    for name, m in res.items():
        if name.startswith("_"):
            continue
        dt = m["traced_after"] - m["traced_before"]
        if dt > TRACE_BOUND:
            bad.append(f"{name}: tracemalloc +{dt} B over {m['calls']} calls (bound {TRACE_BOUND})")
        if m["heap_before"] is not None:
            dh = m["heap_after"] - m["heap_before"]
            if dh > HEAP_BOUND:
                bad.append(f"{name}: C heap +{dh} B over {m['calls']} calls (bound {HEAP_BOUND})")
        if not SANITIZED:
            dr = m["rss_after"] - m["rss_before"]
            if dr > RSS_BOUND:
                bad.append(f"{name}: RSS +{dr} B over {m['calls']} calls (bound {RSS_BOUND})")
    return bad


def table(res):
    lines = [f"{'path':34s} {'calls':>6s} {'RSS before→after (MiB)':>24s} {'traced Δ B':>11s} {'heap Δ B':>10s}"]
    for name, m in res.items():
        if name.startswith("_"):
            continue
        heap = "n/a" if m["heap_before"] is None else f"{m['heap_after'] - m['heap_before']:+d}"
        lines.append(f"{name:34s} {m['calls']:6d} {m['rss_before'] / 2**20:11.1f} → {m['rss_after'] / 2**20:8.1f} "
                     f"{m['traced_after'] - m['traced_before']:+11d} {heap:>10s}")
    return "\n".join(lines)


def run_subprocess(*args, shards=2, timeout=900):
    """This file as a script, in fresh interpreters with this one's executable and
    environment (the same installed roipool); the paths are split over `shards`
    processes running at once (tracemalloc makes each call ~3x slower)."""
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--json",
                               "--shard", f"{i}/{shards}", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(shards)]
    res = {}
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, f"leak run died ({p.returncode}):\n{err[-4000:]}"
            res.update(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return res


# ----------------------------------------------------------------------------- tests


def test_ten_thousand_calls_of_every_path_leave_memory_flat():
    res = run_subprocess("--calls", str(CALLS))
    print("\n" + table(res))
    bad = violations(res)
    assert not bad, "\n".join(bad) + "\n" + table(res)


def test_the_measures_see_a_leak():
    """The bounds can fail: a path that keeps 4 KiB of NumPy array per call (seen by
    tracemalloc and RSS), and one that leaks 64 bytes of C heap per call (seen by the
    heap measure, where glibc provides it), are reported -- over 2,000 calls, the
    smallest count used above."""
    res = run_subprocess("--calls", str(PARALLEL_CALLS), "--self-test", shards=1)
    bad = violations(res)
    assert any("LEAK python object: tracemalloc" in b for b in bad), bad
    if not SANITIZED:
        assert any("LEAK python object: RSS" in b for b in bad), bad
    if res["LEAK 64 bytes of C heap"]["heap_before"] is not None:
        assert any("LEAK 64 bytes of C heap: C heap" in b for b in bad), bad
    assert not any(b.startswith("LEAK 64 bytes of C heap: tracemalloc") for b in bad), bad


def main():
    ap = argparse.ArgumentParser(description="roipool leak check")
    ap.add_argument("--calls", type=int, default=CALLS)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th path from the i-th")
    args = ap.parse_args()
    i, n = map(int, args.shard.split("/"))
    res = run(args.calls, shard=(i, n), self_test=args.self_test)
    if args.json:
        print(json.dumps(res))
        return 0
    print(table(res))
    bad = violations(res)
    for b in bad:
        print("LEAK:", b)
    print(f"bounds per path: tracemalloc {TRACE_BOUND} B, C heap {HEAP_BOUND} B, RSS {RSS_BOUND} B"
          + (" (sanitized: tracemalloc only)" if SANITIZED else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
