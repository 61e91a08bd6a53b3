"""The repaired wheel of tools/build_wheel.sh, installed as a user installs it.

Runs only with ROIPOOL_WHEEL_TEST=1: the packaging phase of .ci/run installs
wheelhouse/roipool-*.whl into a fresh venv (with torch and scikit-learn) and
runs the whole suite there from a copy of tests/, with LD_LIBRARY_PATH unset.
Then nothing here skips:

* roipool comes from that venv's site-packages, installed from a manylinux
  wheel whose RECORD has the bundled OpenMP runtime and its licence;
* ``ldd`` resolves the extension's OpenMP runtime to roipool.libs/, and a
  process that ran a parallel call maps that libgomp and no other;
* threadpoolctl lists the bundled runtime and ``threadpool_limits(1)`` reaches
  it: roipool's own omp_get_max_threads() drops to 1;
* a process that also runs torch's and scikit-learn's OpenMP runtimes (their
  own libgomp copies), in turn and at the same time from Python threads, gets
  right results from all three, and a fork after that still works.
"""
import importlib.metadata
import importlib.util
import os
import pathlib
import platform
import re
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("ROIPOOL_WHEEL_TEST") != "1",
                                reason="tests the installed wheel: set ROIPOOL_WHEEL_TEST=1")

import roipool  # noqa: E402
from test_threads import FORK_CHILD, run_py  # noqa: E402

PKG = pathlib.Path(roipool.__file__).resolve().parent
EXT = pathlib.Path(roipool._roi_pool.__file__).resolve()
PLAT = os.environ.get("ROIPOOL_WHEEL_PLAT", f"manylinux_2_17_{platform.machine()}")


@pytest.fixture(scope="module")
def bundled():
    """The one OpenMP runtime in roipool.libs/ (resolved path)."""
    assert "LD_LIBRARY_PATH" not in os.environ, "run the wheel tests with LD_LIBRARY_PATH unset"
    libs = sorted((PKG.parent / "roipool.libs").glob("libgomp-*.so*"))
    assert len(libs) == 1, f"roipool.libs/ holds {libs}"
    return libs[0].resolve()


def test_installed_from_the_manylinux_wheel(bundled):
    dist = importlib.metadata.distribution("roipool")
    assert PKG.parent.name == "site-packages", PKG
    assert pathlib.Path(dist.locate_file("roipool/__init__.py")).resolve() == PKG / "__init__.py"
    tags = re.findall(r"^Tag: (\S+)$", dist.read_text("WHEEL"), re.M)
    assert any(t.endswith("-" + PLAT) for t in tags), tags
    assert all("-manylinux" in t for t in tags), tags
    record = {str(f) for f in dist.files}
    assert f"roipool.libs/{bundled.name}" in record
    licence = [f for f in dist.files if str(f).endswith("licenses/LICENSE-libgomp.txt")]
    assert licence, sorted(record)
    assert "GCC RUNTIME LIBRARY EXCEPTION" in pathlib.Path(dist.locate_file(licence[0])).read_text()


def test_ldd_resolves_the_bundled_runtime(bundled):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    out = subprocess.run(["ldd", str(EXT)], capture_output=True, text=True, env=env,
                         check=True, timeout=60).stdout
    assert "not found" not in out, out
    resolved = dict(re.findall(r"^\s*(\S+) => (\S+) \(", out, re.M))
    gomp = {name: str(pathlib.Path(path).resolve()) for name, path in resolved.items()
            if "gomp" in name}
    assert gomp == {bundled.name: str(bundled)}, out


def test_parallel_call_maps_only_the_bundled_runtime(bundled):
    res = run_py(
        """
        assert same(work(2), REF)
        maps = {line.split()[-1] for line in open("/proc/self/maps") if "gomp" in line}
        print(json.dumps(dict(maps=sorted(os.path.realpath(m) for m in maps),
                              openmp=roipool.openmp_enabled(),
                              version=roipool._roi_pool.build_info()["openmp_version"])))
        """
    )
    assert res["openmp"] and res["version"] >= 201511, res  # OpenMP 4.5 at least
    assert res["maps"] == [str(bundled)], res


def test_threadpoolctl_sees_and_limits_the_bundled_runtime(bundled):
    res = run_py(
        """
        import threadpoolctl
        def openmp():
            return {os.path.realpath(e["filepath"]): e["num_threads"]
                    for e in threadpoolctl.threadpool_info() if e["user_api"] == "openmp"}
        listed = openmp()
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            limited, inside = roipool._roi_pool.omp_max_threads(), openmp()
            ok = same(work(), REF)
        print(json.dumps(dict(listed=listed, limited=limited, inside=inside, ok=ok,
                              after=roipool._roi_pool.omp_max_threads())))
        """,
        omp_threads=2,
    )
    assert res["listed"] == {str(bundled): 2}, res
    assert res["inside"] == {str(bundled): 1} and res["limited"] == 1, res
    assert res["ok"] and res["after"] == 2, res


# Three OpenMP runtimes in one process: roipool's bundled libgomp, torch's
# (torch/lib/libgomp.so.1, used by its parallel elementwise ops) and
# scikit-learn's (KMeans' Lloyd iterations run in an OpenMP prange). Each
# result is checked against a value computed without threads or known exactly.
MIXED = FORK_CHILD + textwrap.dedent(
    """
    import importlib, threading
    from concurrent.futures import ThreadPoolExecutor
    for name in ORDER:
        importlib.import_module(name)
    import threadpoolctl, torch, sklearn.cluster
    torch.set_num_threads(2)

    big = torch.arange(1 << 22, dtype=torch.float64)
    blobs = np.concatenate([rng.normal(c, 0.1, (2000, 4)) for c in (0.0, 10.0, 20.0)])
    truth = np.repeat(np.arange(3), 2000)

    def torch_ok():
        n = big.numel()
        return float((big * 2.0).sum()) == float(n * (n - 1))  # exact in float64

    def sklearn_ok():
        km = sklearn.cluster.KMeans(3, n_init=1, random_state=0).fit(blobs)
        labels = km.labels_
        # the same partition as the blobs, whatever the cluster numbering
        return all(len(set(labels[truth == k])) == 1 for k in range(3)) and len(set(labels)) == 3

    def roipool_ok():
        return same(work(2), REF)

    checks = [roipool_ok, torch_ok, sklearn_ok]
    sequential = [f() for _ in range(3) for f in checks]
    with ThreadPoolExecutor(3) as pool:  # all three runtimes at once
        futures = [pool.submit(f) for _ in range(4) for f in checks]
        concurrent = [f.result() for f in futures]  # re-raises a thread's exception
    runtimes = sorted(os.path.realpath(e["filepath"]) for e in threadpoolctl.threadpool_info()
                      if e["user_api"] == "openmp")
    with threadpoolctl.threadpool_limits(1):
        limited = roipool._roi_pool.omp_max_threads()
    pid = os.fork()
    if pid == 0:
        os._exit(0 if child_checks() else 1)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(dict(sequential=sequential, concurrent=concurrent, runtimes=runtimes,
                          limited=limited, fork_status=status, torch=torch.__file__,
                          after=roipool_ok() and torch_ok() and sklearn_ok())))
    """
)


@pytest.mark.parametrize("order", [("roipool", "torch", "sklearn"),
                                   ("sklearn", "torch", "roipool")], ids=["roipool-first",
                                                                          "roipool-last"])
def test_with_torch_and_sklearn_openmp_in_one_process(bundled, order):
    for name in ("torch", "sklearn"):  # required here, never skipped
        assert importlib.util.find_spec(name), f"{name} is not installed in this venv"
    res = run_py(f"ORDER = {order!r}\n" + MIXED, omp_threads=2, timeout=300)
    assert all(res["sequential"]) and all(res["concurrent"]) and res["after"], res
    torch_dir = pathlib.Path(res["torch"]).resolve().parent
    ours = [r for r in res["runtimes"] if pathlib.Path(r) == bundled]
    theirs = [r for r in res["runtimes"] if pathlib.Path(r) != bundled]
    assert ours and any(pathlib.Path(r).is_relative_to(torch_dir) for r in theirs) \
        and any("scikit_learn.libs" in r for r in theirs), res["runtimes"]
    assert res["limited"] == 1, res
    # 0: the child exited 0; 14 (SIGALRM): it hung; 256: wrong result
    assert res["fork_status"] == 0, res
