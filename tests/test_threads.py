"""roipool's OpenMP threads: the same bits for any thread count, and the pool as a
service sees it. (Python threads calling roipool at once: test_concurrency.py.)

* num_threads=1, 2, 3, the default and ``threadpool_limits(1)`` give bit-identical
  out and argmax, equal to the plain-loop rule; more threads than work is fine.
* ``threadpoolctl.threadpool_info()`` lists the OpenMP runtime that importing
  roipool loaded (and nothing when the build is serial).
* Under ``threadpool_limits(1)`` a call starts no OpenMP worker thread (counted
  in /proc/self/task), while the same call outside the limit starts one: the
  probe can see a worker. ``OMP_NUM_THREADS`` sets the worker count the same way.
* After ``os.fork()`` in a process whose thread pool already ran, the child's
  calls finish with the right result (raw ``os.fork`` and multiprocessing's
  "fork" context). GNU libgomp keeps the parent's pool in the child without its
  threads, so without roipool's before-fork hook the child's first parallel
  region waits forever; each child here has an alarm and each script a timeout,
  so a hang fails the test instead of hanging pytest.

Every check of the pool runs in a fresh interpreter (``sys.executable -c``) with
OMP_NUM_THREADS set explicitly, so the result does not depend on the
machine's core count or on the environment pytest was started with.
num_threads argument validation is tested in test_errors.py.
"""
import json
import os
import sys
import textwrap

import numpy as np
import pytest
import threadpoolctl

import roipool
from roipool._reference import forward as ref_forward
from helpers import bits, run_python

LINUX = sys.platform.startswith("linux")
HAS_FORK = hasattr(os, "fork")
OPENMP = roipool.openmp_enabled()

# A workload with many tasks (64 ROIs, 64 channels): a call with 2+ threads
# enters the parallel region, a call with one thread never does.
PRELUDE = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import roipool

    def os_threads():
        return len(os.listdir("/proc/self/task"))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 40, 40), dtype=np.float32)
    rois = np.column_stack([rng.integers(0, 2, 64), rng.uniform(-5, 45, (64, 4))]).astype(np.float32)

    def work(nt=None):
        out, am = roipool.roi_pooling(x, rois, 7, 1.0, return_argmax=True, num_threads=nt)
        g = roipool.roi_pooling_backward(out, rois, am, x.shape, num_threads=nt)
        return out, am, g

    def same(a, b):
        return all(np.array_equal(p, q) for p, q in zip(a, b))

    REF = work(1)  # one thread: no parallel region
    """
)


def run_py(code, omp_threads=2, timeout=60, prelude=True):
    """Run PRELUDE + code in a fresh interpreter; return the JSON it prints last."""
    code = (PRELUDE if prelude else "") + textwrap.dedent(code)
    proc = run_python(["-c", code], timeout, env={"OMP_NUM_THREADS": str(omp_threads)},
                      what="the script")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- same bits


def workload(seed, N=2, C=48, H=24, W=30, R=300, dtype=np.float32):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    wh = np.exp(rng.uniform(np.log(8), np.log(8 * W), (R, 2)))
    x1 = rng.uniform(-20, 8 * W, R)
    y1 = rng.uniform(-20, 8 * H, R)
    rois = np.column_stack([rng.integers(0, N, R), x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]])
    return data, rois.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_result_for_any_thread_count(dtype):
    data, rois = workload(1, dtype=dtype)

    def call(nt=None):
        return roipool.roi_pooling(data, rois, (7, 7), 0.125, return_argmax=True, num_threads=nt)

    results = [call(t) for t in (1, 2, 3)] + [call()]
    with threadpoolctl.threadpool_limits(1):
        results.append(call())
    for out, am in results[1:]:
        np.testing.assert_array_equal(bits(out), bits(results[0][0]))
        np.testing.assert_array_equal(am, results[0][1])
    # and those are the rule's values (checked on a slice: the reference is slow)
    want = ref_forward(data, rois[:25], (7, 7), 0.125)
    np.testing.assert_array_equal(results[0][0][:25], want[0])
    np.testing.assert_array_equal(results[0][1][:25], want[1])


def test_more_threads_than_work():
    data, rois = workload(2, C=1, R=1)
    want = ref_forward(data, rois, 2, 0.125)
    for t in (1, 2, 3, 16):
        out, am = roipool.roi_pooling(data, rois, 2, 0.125, return_argmax=True, num_threads=t)
        np.testing.assert_array_equal(out, want[0])
        np.testing.assert_array_equal(am, want[1])


# ----------------------------------------------------------------------------- threadpoolctl


def test_threadpool_info_lists_roipools_openmp_runtime():
    res = run_py(
        """
        import json, numpy, threadpoolctl
        before = {e["filepath"] for e in threadpoolctl.threadpool_info()}
        import roipool
        new = [e for e in threadpoolctl.threadpool_info() if e["filepath"] not in before]
        print(json.dumps({"new": new, "max": roipool._roi_pool.omp_max_threads()}))
        """,
        prelude=False,
    )
    new_openmp = [e for e in res["new"] if e["user_api"] == "openmp"]
    if not OPENMP:
        assert new_openmp == []  # a serial build loads no OpenMP runtime
        return
    assert len(new_openmp) == 1, res["new"]
    lib, = new_openmp
    assert lib["internal_api"] == "openmp"
    assert lib["prefix"] in ("libgomp", "libomp", "libiomp", "vcomp"), lib
    assert os.path.isfile(lib["filepath"])
    assert lib["num_threads"] == res["max"] == 2  # OMP_NUM_THREADS=2 in run_py


def test_threadpool_limits_sets_the_default_in_process():
    before = roipool._roi_pool.omp_max_threads()
    with threadpoolctl.threadpool_limits(1):
        assert roipool._roi_pool.omp_max_threads() == 1
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert roipool._roi_pool.omp_max_threads() == 1
    assert roipool._roi_pool.omp_max_threads() == before


@pytest.mark.skipif(not LINUX, reason="counts OS threads in /proc/self/task")
def test_threadpool_limits_1_starts_no_worker_thread():
    res = run_py(
        """
        from threadpoolctl import threadpool_limits
        t0 = os_threads()
        with threadpool_limits(1):
            limited = roipool._roi_pool.omp_max_threads()
            ok_limited = same(work(), REF)
            t_limited = os_threads()
        t1 = os_threads()
        ok_default = same(work(), REF)
        t_default = os_threads()
        print(json.dumps(dict(limited=limited, t0=t0, t_limited=t_limited, t1=t1,
                              t_default=t_default, ok=ok_limited and ok_default)))
        """,
        omp_threads=2,
    )
    assert res["ok"]
    assert res["limited"] == 1
    assert res["t_limited"] <= res["t0"], res  # no OpenMP worker was started
    # the probe sees a worker when there is one: the unlimited call starts it
    assert res["t_default"] == res["t1"] + (1 if OPENMP else 0), res


@pytest.mark.skipif(not LINUX, reason="counts OS threads in /proc/self/task")
@pytest.mark.parametrize("omp", [1, 3])
def test_omp_num_threads_is_honoured(omp):
    res = run_py(
        """
        t0 = os_threads()
        ok = same(work(), REF)
        print(json.dumps(dict(max=roipool._roi_pool.omp_max_threads(), t0=t0,
                              t1=os_threads(), ok=ok)))
        """,
        omp_threads=omp,
    )
    assert res["ok"]
    if OPENMP:
        assert res["max"] == omp
        assert res["t1"] - res["t0"] == omp - 1, res  # omp - 1 workers beside the caller
    else:
        assert res["max"] == 1 and res["t1"] == res["t0"]


# ----------------------------------------------------------------------------- fork

FORK_CHILD = """
def child_checks():
    # an alarm instead of a hang: SIGALRM kills the child after 10 s
    import signal
    signal.alarm(10)
    ok = all(same(work(nt), REF) for nt in (None, 2, 1, 2))
    signal.alarm(0)
    return ok
"""


@pytest.mark.skipif(not HAS_FORK, reason="no os.fork on this platform")
def test_child_of_os_fork_after_parallel_calls():
    res = run_py(
        FORK_CHILD + textwrap.dedent("""
        assert same(work(2), REF)  # the parent's pool has run
        statuses = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                os._exit(0 if child_checks() else 1)
            _, status = os.waitpid(pid, 0)
            statuses.append(status)
            assert same(work(2), REF)  # and the parent's pool still works
        print(json.dumps(dict(statuses=statuses)))
        """),
        omp_threads=2,
    )
    # 0: exited 0; 14 (SIGALRM): hung; other signals: crashed; 256: wrong result
    assert res["statuses"] == [0, 0], (
        f"child wait statuses {res['statuses']}: 14 means SIGALRM killed a hung child")


@pytest.mark.skipif(not HAS_FORK, reason="no os.fork on this platform")
def test_multiprocessing_fork_workers_after_parallel_calls():
    res = run_py(
        FORK_CHILD + textwrap.dedent("""
        import multiprocessing as mp

        def task(i):
            return child_checks(), os.getpid()

        assert same(work(2), REF)
        with mp.get_context("fork").Pool(2) as pool:
            try:
                results = pool.map_async(task, range(4)).get(timeout=20)
            except mp.TimeoutError:
                results = None
            pool.terminate()
        print(json.dumps(dict(results=results, parent=os.getpid())))
        """),
        omp_threads=2,
    )
    assert res["results"] is not None, "the fork workers hung"
    assert all(ok for ok, _ in res["results"])
    assert all(pid != res["parent"] for _, pid in res["results"])
