"""bench/bench_align.py: its exactness check stops a one-ulp difference before
any timing, and a quick run on the seed workload writes well-formed results
with roipool's rows and ns per sample. Peers are used when installed.
No wall-clock assertions."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_align.py"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="bench/ not in this tree")


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_injected_mismatch_aborts_before_timing(tmp_path):
    p = _run("--quick", "--workload", "tiny-align", "--peers", "none", "--inject-mismatch",
             "--out", str(tmp_path / "r.json"), cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "EXACTNESS FAILURE" in p.stdout and "no timing done" in p.stdout
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["workloads"] == {}


def test_quick_run_is_well_formed(tmp_path):
    out = tmp_path / "r.json"
    p = _run("--quick", "--workload", "tiny-align", "--threads", "1,2", "--out", str(out),
             cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    w = res["workloads"]["tiny-align"]
    assert w["samples"] == 16  # 4 bins x 2 x 2 samples, one channel
    for nt in (1, 2):
        for impl in ("roipool_default", "roipool_out"):
            row = w["rows"][f"fwd/{impl}/{nt}"]
            assert row["median_ms"] > 0 and row["ns_per_sample"] > 0
            assert len(row["samples_s"]) == 3
    assert all(v == 0 for k, v in w["exact"].items() if k in ("torchvision", "ort"))
    assert "cpu" in res["machine"]
