"""Recycled output memory (issue 11): large default-call outputs reuse blocks
that no caller can reach any more, and nothing else.

Memory a caller still reaches -- the result, a view of it, a memoryview, a
torch tensor from ``torch.from_numpy`` -- keeps its contents while more
calls run; idle memory stays within the cap; ``empty_cache()`` and the
environment switches work; threads and fork are safe. Results are compared
bit for bit with the plain-loop reference.

CI's torch phase must run test_torch_tensor_from_result_is_never_reused
(with ROIPOOL_REQUIRE_TORCH=1, as tests/test_torch.py).
"""
import os
import sys
import textwrap
import threading

import numpy as np
import pytest

import roipool
from roipool import _outcache

from helpers import SANITIZED, import_peer, rss_bytes, run_python
from roipool._reference import backward as ref_backward, forward as ref_forward

MIB = 1 << 20
SENTINEL = np.float32(-12345.5)


def case(seed, R=40, C=256, pooled=16, H=9, W=11):
    """Small data, large output: R * C * pooled**2 * 4 bytes (10 MiB by default)."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((2, C, H, W), dtype=np.float32)
    xy = rng.uniform(-4, 16 * max(H, W) + 4, (R, 4))
    rois = np.column_stack([rng.integers(0, 2, R), xy]).astype(np.float32)
    return data, rois, pooled, 0.0625


def expected(args):
    return ref_forward(*args)[0]


def pool_holds():
    return _outcache.stats()[1]


def pool_blocks():
    """(blocks tracked, blocks idle)."""
    stats = _outcache.stats()
    return stats[2], stats[4]


def test_a_dropped_result_is_reused_bit_exact():
    args = case(0)
    ref = expected(args)
    first = roipool.roi_pooling(*args)
    assert first.nbytes >= _outcache.MIN_BYTES
    tracked, idle = pool_blocks()
    np.testing.assert_array_equal(first, ref)
    addr = first.ctypes.data
    first.fill(SENTINEL)  # the next call must overwrite all of it
    del first
    assert pool_blocks() == (tracked, idle + 1)  # its block turned idle
    second = roipool.roi_pooling(*args)
    # the same block again (an address alone could be the OS's reuse of a mapping)
    assert pool_blocks() == (tracked, idle) and second.ctypes.data == addr
    np.testing.assert_array_equal(second, ref)


def test_held_results_and_views_are_never_reused():
    args = case(1)
    ref = expected(args)
    held = roipool.roi_pooling(*args)
    view = roipool.roi_pooling(*args)[3:, ::2]  # the result itself is dropped
    mem = memoryview(roipool.roi_pooling(*args))
    derived = np.asarray(roipool.roi_pooling(*args).reshape(-1)[5:])
    kept = [held, view, np.asarray(mem), derived]
    for a in kept:
        a[...] = SENTINEL
    fresh = []
    for i in range(6):
        r = roipool.roi_pooling(*args)
        np.testing.assert_array_equal(r, ref)
        if i % 2:
            fresh.append(r)  # half held, half dropped
        del r
    for a in kept:
        assert (a == SENTINEL).all()
    live = kept + fresh
    for i in range(len(live)):
        for j in range(i + 1, len(live)):
            assert not np.shares_memory(live[i], live[j])


def test_argmax_and_backward_outputs_come_from_the_pool_exactly():
    args = case(2)
    ref_out, ref_am = ref_forward(*args)
    out, am = roipool.roi_pooling(*args, return_argmax=True)
    assert am.base is not None  # pooled
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(am, ref_am)
    # A gradient of 4.5 MiB, written into a dirty recycled block.
    args = case(3, R=6, pooled=4, H=48, W=48)
    out, am = roipool.roi_pooling(*args, return_argmax=True)
    grad_out = np.random.default_rng(3).standard_normal(out.shape, dtype=np.float32)
    ref_grad = ref_backward(grad_out, args[1], am, args[0].shape)
    dirty = _outcache.empty(args[0].shape, np.float32)
    dirty.fill(SENTINEL)
    addr = dirty.ctypes.data
    del dirty
    grad = roipool.roi_pooling_backward(grad_out, args[1], am, args[0].shape)
    assert grad.ctypes.data == addr
    np.testing.assert_array_equal(grad, ref_grad)


def test_torch_tensor_from_result_is_never_reused():
    torch = import_peer("torch")
    import roipool.torch as rt

    args = case(4)
    ref = expected(args)
    t = torch.from_numpy(roipool.roi_pooling(*args))  # only the tensor holds it
    t.fill_(float(SENTINEL))
    data, rois = torch.from_numpy(args[0]), torch.from_numpy(args[1])
    tt = rt.roi_pool(data, rois, args[2], args[3])
    tt.fill_(float(SENTINEL))
    others = [roipool.roi_pooling(*args) for _ in range(3)]
    for _ in range(3):
        np.testing.assert_array_equal(rt.roi_pool(data, rois, args[2], args[3]).numpy(), ref)
        np.testing.assert_array_equal(roipool.roi_pooling(*args), ref)
    assert bool((t == float(SENTINEL)).all()) and bool((tt == float(SENTINEL)).all())
    for o in others:
        np.testing.assert_array_equal(o, ref)
        assert not np.shares_memory(o, t.numpy()) and not np.shares_memory(o, tt.numpy())


def test_torch_front_end_outputs_are_recycled():
    # roipool.torch allocates through the same pool: a dropped tensor's block
    # serves the next call (same memory), a held one never does.
    torch = import_peer("torch")
    import roipool.torch as rt

    args = case(5)
    ref = expected(args)
    data, rois = torch.from_numpy(args[0]), torch.from_numpy(args[1])
    with torch.inference_mode():  # no argmax: one output per call
        first = rt.roi_pool(data, rois, args[2], args[3])
        tracked, idle = pool_blocks()
        addr = first.data_ptr()
        del first
        assert pool_blocks() == (tracked, idle + 1)  # the tensor's memory was a block
        again = rt.roi_pool(data, rois, args[2], args[3])
        assert pool_blocks() == (tracked, idle) and again.data_ptr() == addr
        held = rt.roi_pool(data, rois, args[2], args[3])
        assert held.data_ptr() != again.data_ptr()
    np.testing.assert_array_equal(again.numpy(), ref)
    np.testing.assert_array_equal(held.numpy(), ref)


def test_empty_cache_releases_idle_blocks():
    # In a fresh process with malloc's mmap threshold fixed, so a freed block
    # leaves RSS at once (in this process, glibc's threshold depends on what
    # earlier tests freed); under ASan only the pool's own counts are checked.
    run_script(f"""
        CHECK_RSS = {not SANITIZED}
        args = case(5, R=90)  # 22.5 MiB
        r = roipool.roi_pooling(*args)
        r[...] = 1.0  # resident
        held_busy = _outcache.stats()[1]
        assert held_busy >= r.nbytes
        del r
        assert _outcache.stats()[3] >= 22 << 20  # idle
        before = rss_bytes()
        roipool.empty_cache()
        assert _outcache.stats()[3] == 0
        assert _outcache.stats()[1] <= held_busy - (22 << 20)
        assert not CHECK_RSS or before - rss_bytes() >= 20 << 20, before - rss_bytes()
    """, env={"MALLOC_MMAP_THRESHOLD_": str(1 << 20)})


def test_results_held_for_long_do_not_block_reuse():
    # Two held 10 MiB results fill a 24 MiB cap; the next call makes room by
    # no longer tracking the oldest held block (which stays intact), and a
    # loop after it still reuses memory.
    args = case(6)
    old = _outcache.set_limit(24 * MIB)
    try:
        roipool.empty_cache()
        first, second = roipool.roi_pooling(*args), roipool.roi_pooling(*args)
        first.fill(SENTINEL)
        third = roipool.roi_pooling(*args)
        assert _outcache.stats()[1] <= 24 * MIB
        addr = third.ctypes.data
        del third
        again = roipool.roi_pooling(*args)
        assert again.ctypes.data == addr
        np.testing.assert_array_equal(again, expected(args))
        assert (first == SENTINEL).all()
        assert not np.shares_memory(first, again) and not np.shares_memory(second, again)
    finally:
        _outcache.set_limit(old)


def test_show_config_reports_the_pool(capsys):
    roipool.show_config()
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("output cache:")]
    assert line and "MiB" in line[0]


def test_threads_get_their_own_blocks():
    cases = [case(10 + k) for k in range(4)]
    refs = [expected(a) for a in cases]
    errors, results = [], [[] for _ in cases]
    start = threading.Barrier(len(cases))

    def work(k):
        try:
            start.wait()
            for i in range(8):
                r = roipool.roi_pooling(*cases[k], num_threads=1)
                np.testing.assert_array_equal(r, refs[k])
                if i % 2:
                    r.fill(SENTINEL)
                    results[k].append(r)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    live = [r for rs in results for r in rs]
    assert len(live) == 4 * len(cases)
    for i, a in enumerate(live):
        assert (a == SENTINEL).all()
        for b in live[i + 1:]:
            assert not np.shares_memory(a, b)


# The subprocess tests share this prologue: the cases and the reference.
PROLOGUE = f"""
import os, sys, threading
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import numpy as np, roipool
from roipool import _outcache
from test_output_cache import case, expected, rss_bytes, SENTINEL
"""


def run_script(body, env=None, timeout=300):
    proc = run_python(["-c", PROLOGUE + textwrap.dedent(body)], timeout, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS from /proc (Linux)")
def test_rss_after_1000_dropped_calls_stays_within_the_cap():
    # Four output sizes (5, 9, 17, 33 MiB of float32) cycle: together more
    # than the 40 MiB cap, so the pool must drop idle blocks to stay under it.
    # malloc's mmap threshold is fixed so freed blocks leave RSS at once and
    # the RSS seen is the pool's, not glibc's free-list policy. Under ASan
    # (tools/asan.sh) freed memory sits in the sanitizer's quarantine, so RSS
    # says nothing there and only the pool's own count is checked.
    out = run_script(f"""
        CHECK_RSS = {not SANITIZED}
        sizes = [case(k, R=R) for k, R in enumerate((20, 36, 68, 132))]
        for a in sizes:
            roipool.roi_pooling(*a)
        roipool.empty_cache()
        base = rss_bytes()
        cap = _outcache.stats()[0]
        worst = 0
        for i in range(1000):
            r = roipool.roi_pooling(*sizes[i % 4])
            worst = max(worst, _outcache.stats()[1])
            del r
        grown = rss_bytes() - base
        print(cap, worst, grown)
        assert worst <= cap, (worst, cap)
        assert not CHECK_RSS or grown <= cap + (4 << 20), (grown, cap)
        roipool.empty_cache()
        assert _outcache.stats()[1] == 0
        assert not CHECK_RSS or rss_bytes() - base <= 4 << 20
    """, env={"ROIPOOL_OUTPUT_CACHE_MB": "40", "MALLOC_MMAP_THRESHOLD_": str(1 << 20)})
    assert out.split()[0] == str(40 << 20)


@pytest.mark.parametrize("env", [{"ROIPOOL_OUTPUT_CACHE": "0"},
                                 {"ROIPOOL_OUTPUT_CACHE_MB": "0"}])
def test_environment_turns_the_pool_off(env):
    run_script("""
        a = case(0)
        ref = expected(a)
        r = roipool.roi_pooling(*a)
        np.testing.assert_array_equal(r, ref)
        assert r.flags.owndata and r.base is None  # a plain np.empty
        del r
        np.testing.assert_array_equal(roipool.roi_pooling(*a), ref)
        assert _outcache.stats() == (0, 0, 0, 0, 0)
        import io; f = io.StringIO(); roipool.show_config(file=f)
        assert "output cache: off" in f.getvalue()
    """, env=env)


def test_environment_sets_the_cap():
    run_script("""
        assert _outcache.stats()[0] == 12 << 20
        small, big = case(0, R=20), case(1, R=60)  # 5 MiB, 15 MiB
        r = roipool.roi_pooling(*small)
        assert r.base is not None
        b = roipool.roi_pooling(*big)  # beyond the cap: a plain array
        assert b.flags.owndata and _outcache.stats()[1] < 12 << 20
        np.testing.assert_array_equal(b, expected(big))
    """, env={"ROIPOOL_OUTPUT_CACHE_MB": "12"})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork (POSIX)")
def test_fork_after_use():
    # The parent uses the pool from two threads, one of them still calling
    # while the other forks; the child calls roipool (held and dropped
    # results) and must neither hang nor alias the parent's held result.
    # (Plain comparisons: np.testing is not fork-safe while another thread
    # is inside it.)
    run_script("""
        import time, signal
        a = case(0)
        ref = expected(a)
        held = roipool.roi_pooling(*a)
        held.fill(SENTINEL)
        stop = threading.Event()
        errors = []
        def busy():
            try:
                while not stop.is_set():
                    assert np.array_equal(roipool.roi_pooling(*a, num_threads=1), ref)
            except BaseException as exc:
                errors.append(exc)
        t = threading.Thread(target=busy)
        t.start()
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                ok = 1
                try:
                    keep = roipool.roi_pooling(*a)
                    same = [np.array_equal(roipool.roi_pooling(*a), ref) for _ in range(3)]
                    ok = 0 if all(same) and np.array_equal(keep, ref) \\
                        and (held == SENTINEL).all() else 1
                finally:
                    os._exit(ok)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the forked child hung")
            assert os.waitstatus_to_exitcode(status) == 0, status
        stop.set()
        t.join(60)
        if errors:
            raise errors[0]
        assert (held == SENTINEL).all()
    """, timeout=400)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS from /proc (Linux)")
@pytest.mark.skipif(SANITIZED, reason="ASan's quarantine keeps freed memory resident "
                    "(the RSS bounds are off there too)")
def test_rss_bytes_sees_this_processs_memory():
    # The measure the RSS tests use (statm natively; under qemu-user the
    # emulated process's own mappings, see helpers.rss_bytes) must see 64 MiB
    # being touched and given back.
    out = run_script("""
        res = []
        before = rss_bytes()
        a = np.ones(64 << 18, np.float32)  # 64 MiB, its own mmap
        during = rss_bytes()
        del a
        res.append((during - before, during - rss_bytes()))
        print(res)
    """, env={"MALLOC_MMAP_THRESHOLD_": str(1 << 20)})
    for grown, released in eval(out):
        assert 62 << 20 <= grown <= 72 << 20 and 62 << 20 <= released <= 72 << 20, out
