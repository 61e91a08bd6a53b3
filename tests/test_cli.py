"""`python -m roipool`: the main job, `info` and `bench`, run as a user runs them.

* `--help` documents both subcommands; `info` reports this very build (version,
  OpenMP, thread count from OMP_NUM_THREADS, SIMD path and the supported ones);
  `bench` prints a row per (workload, threads) with positive numbers; the main
  job checks the seed example and parity and says so.
* A bad argument exits with status 2 and argparse's usage line, never a traceback.
"""
import math
import os
import re
import subprocess
import sys

import pytest

import roipool


def cli(*args, omp_threads=None, timeout=120):
    env = dict(os.environ)
    env.pop("ROIPOOL_ISA", None)
    if omp_threads is None:
        env.pop("OMP_NUM_THREADS", None)
    else:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    return subprocess.run([sys.executable, "-m", "roipool", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_help_documents_subcommands():
    res = cli("--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: python -m roipool")
    assert re.search(r"^\s+info\s+version, OpenMP", res.stdout, re.M)
    assert re.search(r"^\s+bench\s+time the shared workloads", res.stdout, re.M)
    res = cli("bench", "--help")
    assert res.returncode == 0
    for opt in ("--workload", "--threads", "--dtype", "--repeat", "tiny", "vgg16-frcnn"):
        assert opt in res.stdout
    res = cli("info", "--help")
    assert res.returncode == 0 and "bug reports" in res.stdout


def test_info_reports_this_build():
    res = cli("info", omp_threads=3)
    assert res.returncode == 0, res.stderr
    lines = dict(line.split(": ", 1) if ": " in line else (line, "")
                 for line in res.stdout.splitlines())
    first = res.stdout.splitlines()[0]
    assert first == f"roipool {roipool.__version__}"
    assert lines["openmp"].startswith("yes" if roipool.openmp_enabled() else "no")
    assert lines["threads (omp_get_max_threads)"] == ("3" if roipool.openmp_enabled() else "1")
    assert lines["OMP_NUM_THREADS"] == "3"
    isa, supported = re.fullmatch(r"(\w+) \(supported: (.*)\)", lines["simd path"]).groups()
    # a fresh process picks the best path the CPU has (this process's tests may
    # have switched roipool.get_isa() with set_isa)
    assert isa == roipool.supported_isas()[-1]
    assert supported.split(", ") == roipool.supported_isas()
    assert lines["build flags"] == roipool._roi_pool.build_info()["flags"]


def test_bench_prints_a_row_per_workload_and_thread_count():
    res = cli("bench", "--workload", "tiny", "--repeat", "3", "--threads", "1,2")
    assert res.returncode == 0, res.stderr
    assert "median of 3" in res.stdout
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith("tiny ")]
    assert [r[:2] for r in rows] == [["tiny", "1"], ["tiny", "2"]]
    for r in rows:
        ms, ns_visit, x_limit = map(float, r[2:5])
        assert all(math.isfinite(v) and v > 0 for v in (ms, ns_visit, x_limit)), r


def test_main_job_checks_pass():
    res = cli()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "seed example, spatial_scale=0.7: [[7, 9], [19, 21]] == expected" in res.stdout
    assert res.stdout.count(": exact") == 3
    assert "RoIAlign seed example, sampling_ratio=2: [[7.0, 9.0], [19.0, 21.0]] == expected" \
        in res.stdout
    assert res.stdout.rstrip().endswith("all checks passed")


@pytest.mark.parametrize("args, complaint", [
    (["frob"], "invalid choice: 'frob'"),
    (["bench", "--workload", "nope"], "unknown workload(s) nope"),
    (["bench", "--workload", "tiny,nope"], "unknown workload(s) nope"),
    (["bench", "--repeat", "0"], "argument --repeat"),
    (["bench", "--repeat", "x"], "argument --repeat"),
    (["bench", "--threads", "0"], "argument --threads"),
    (["bench", "--threads", "1,two"], "argument --threads"),
    (["bench", "--dtype", "int8"], "argument --dtype"),
    (["info", "--verbose"], "unrecognized arguments: --verbose"),
])
def test_bad_arguments_exit_2_with_usage(args, complaint):
    res = cli(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("usage: python -m roipool")
    assert complaint in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
