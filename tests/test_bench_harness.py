"""bench/bench.py: its checks catch a mismatch, and its results are well formed.

Runs the harness from the checkout (bench/ next to tests/) against the
installed roipool, in a subprocess, on the tiny workloads only. Peers
(torchvision, ONNX Runtime, OpenCV dnn) are used when installed and skipped
otherwise.
No wall-clock assertions: timings on a shared machine prove nothing."""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import roipool

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="bench/bench.py not in this tree")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("roipool_bench_harness", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_compare_catches_one_ulp(bench):
    a = np.linspace(-3, 3, 60, dtype=np.float32).reshape(3, 4, 5)
    assert bench.compare("same", a, a.copy())["ok"]
    bad = bench.perturb(a)
    res = bench.compare("perturbed", bad, a)
    assert not res["ok"] and res["mismatches"] == 1 and "(2, 3, 4)" in res["detail"]
    # bit-exact: -0.0 is not 0.0, NaN equals the same NaN
    z = np.zeros(3, np.float32)
    assert not bench.compare("signed zero", -z, z)["ok"]
    n = np.full(2, np.nan, np.float32)
    assert bench.compare("nan", n, n.copy())["ok"]
    assert not bench.compare("dtype", a.astype(np.float64), a)["ok"]
    assert not bench.compare("shape", a[:2], a)["ok"]
    arg = np.arange(6, dtype=np.int32)
    assert not bench.compare("argmax", bench.perturb(arg), arg)["ok"]


def test_check_workload_catches_perturbed_output(bench):
    peers = dict.fromkeys(bench.PEER_NAMES)
    checks, _, _ = bench.check_workload("tiny", peers, inject=False)
    assert checks and all(c["ok"] for c in checks)
    checks, _, _ = bench.check_workload("tiny", peers, inject=True)
    assert any(not c["ok"] for c in checks)


@pytest.mark.parametrize("peer,label", [("torchvision", "torchvision"),
                                        ("ort", "ONNX Runtime"), ("opencv", "OpenCV"),
                                        ("openvino", "OpenVINO")])
def test_each_peer_check_catches_perturbed_output(bench, peer, label):
    loaded, why = bench.load_peers(peer)
    if loaded[peer] is None:
        # CI's torch phase installs every peer and sets this: a missing one fails there.
        if os.environ.get("ROIPOOL_REQUIRE_PEERS") == "1":
            pytest.fail(f"{peer} not installed: {why[peer]}")
        pytest.skip(f"{peer} not installed: {why[peer]}")
    for inject in (False, True):
        checks, _, _ = bench.check_workload("tiny-0.7", loaded, inject=inject)
        mine = [c for c in checks if label in c["check"] and "out ==" in c["check"]]
        assert mine and all(c["ok"] != inject for c in mine)


def test_injected_mismatch_aborts_before_timing(tmp_path):
    p = _run("--quick", "--workload", "tiny", "--peers", "none", "--inject-mismatch",
             "--out-dir", str(tmp_path),
             cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL" in p.stdout and "no timing done" in p.stdout
    assert not (tmp_path / "partial.json").exists()


@pytest.mark.parametrize("peers", ["auto", "none"])
def test_quick_run_is_well_formed(tmp_path, peers):
    p = _run("--quick", "--workload", "tiny,tiny-0.7", "--peers", peers,
             "--out-dir", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads((tmp_path / "partial.json").read_text())
    assert not (tmp_path / "latest.json").exists()  # a partial run never replaces latest.*
    md = (tmp_path / "partial.md").read_text()
    assert "| workload | threads | **default ms** | out= ms |" in md and "## Targets" in md
    hist = (tmp_path / "history.jsonl").read_text().splitlines()
    assert len(hist) == 1 and json.loads(hist[0])["quick"] is True

    m = res["machine"]
    for key in ("cpu", "cores", "compiler", "isa", "date", "versions"):
        assert m[key] not in (None, ""), key
    assert m["isa"] in roipool._config.ISA_NAMES
    assert res["limit"]["ns_per_element"] > 0
    assert res["checks"] and all(c["ok"] for c in res["checks"])

    threads = res["threads"]
    assert threads[0] == 1
    rows = res["forward"]
    assert {(r["workload"], r["threads"]) for r in rows} == \
        {(w, t) for w in ("tiny", "tiny-0.7") for t in threads}
    for r in rows:
        for k in ("roipool_default_ms", "roipool_out_ms", "roipool_argmax_ms", "ns_per_visit"):
            assert math.isfinite(r[k]) and r[k] > 0, k
        assert len(r["roipool_out_s"]) == res["repeat"]
        assert r["visits"] == (36 if r["workload"] == "tiny" else 16)
        if peers == "none":
            assert not any(f"{p}_ms" in r for p in ("torchvision", "ort", "opencv", "openvino",
                                                    "roipool_torch", "roipool_bf16"))
        # the headline ratios are of the default call; out= ratios beside them
        assert r["default_over_out"] == pytest.approx(r["roipool_default_ms"] / r["roipool_out_ms"])
        for peer in ("torchvision", "ort", "opencv", "openvino"):
            if f"{peer}_ms" in r:
                assert r[f"speedup_{peer}"] == pytest.approx(r[f"{peer}_ms"] / r["roipool_default_ms"])
                assert r[f"speedup_{peer}_out"] == pytest.approx(r[f"{peer}_ms"] / r["roipool_out_ms"])
    assert res["backward"] == []  # no backward timing for the tiny workloads
    assert set(res["tiny_default_us"]) == {"tiny", "tiny-0.7"}
    assert all(u > 0 for u in res["tiny_default_us"].values())
    results = {s for _, _, s in res["targets"]}
    assert results <= {"PASS", "MISS", "N/A", "info"}
    assert "targets (reported, not asserted)" in p.stdout
