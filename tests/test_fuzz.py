"""Fuzzing roi_pooling / roi_pooling_backward (issue 6): the normal-suite sample.

tools/fuzz.py (code in tools/fuzzing/) draws cases with hypothesis -- wrong ranks,
shapes and dtypes (bool, complex, object, str, longdouble, big-endian, read-only,
non-contiguous, unaligned, zero-size, zero-stride), NaN/inf and huge coordinates,
batch indices at and past the edges, pooled sizes 0/negative/huge, scales
0/negative/subnormal/1e30/1e39, wrong argmax values and dtypes for backward, bad
out=/argmax= buffers -- and checks each against its model of the contract: a
bit-exact result (roipool._reference's values), or an allowed exception
(TypeError/ValueError/MemoryError) naming the argument; inputs untouched; buffers
fully written or untouched. The cases run in a child process, so a crash or a hang
fails a test here instead of killing pytest.

The dedicated run is ``python tools/fuzz.py --cases 10000`` (about 3-5 minutes).
``ROIPOOL_FUZZ_CASES=n pytest tests/test_fuzz.py`` sets the sample size here.
"""
import json
import os
import subprocess
import sys

import numpy as np

from helpers import ROOT, SANITIZED, import_tool

model = import_tool("fuzzing.model")
check = import_tool("fuzzing.check")

FUZZ = os.path.join(ROOT, "tools", "fuzz.py")
CASES = int(os.environ.get("ROIPOOL_FUZZ_CASES", "400"))


def run_fuzz(*args, timeout=900):
    """tools/fuzz.py with this interpreter and environment: the same installed roipool."""
    return subprocess.run([sys.executable, FUZZ, *args], capture_output=True, text=True,
                          timeout=timeout)


def test_fuzz_sample(tmp_path):
    summary = tmp_path / "fuzz.json"
    proc = run_fuzz("--cases", str(CASES), "--seed", "6", "--json", str(summary),
                    timeout=3600 if SANITIZED else 600)
    print(proc.stdout)
    assert proc.returncode == 0, "fuzzing found problems:\n" + proc.stdout[-12000:] + proc.stderr[-3000:]
    res = json.loads(summary.read_text())
    assert res["cases"] >= 0.9 * CASES
    # the sample reaches every kind of outcome, so it exercises both sides of the contract
    assert res["outcomes"].get("ok", 0) > CASES // 10
    assert res["outcomes"].get("ValueError", 0) > CASES // 10
    assert res["outcomes"].get("TypeError", 0) > 0
    assert set(res["by_function"]) == {"fwd", "bwd", "afwd", "abwd"}


# ----------------------------------------------------------------------------- the harness can fail


def test_harness_reports_a_crash():
    proc = run_fuzz("--cases", "30", "--seed", "1", "--self-test", "crash")
    assert proc.returncode == 1
    assert "crashes: 1" in proc.stdout and "CRASH: killed by signal 6 (SIGABRT)" in proc.stdout
    assert "replay: python tools/fuzz.py --replay" in proc.stdout
    assert "cases run" in proc.stdout  # and it carried on after the crash


def test_harness_reports_a_hang():
    proc = run_fuzz("--cases", "20", "--seed", "1", "--self-test", "hang", "--hang", "3")
    assert proc.returncode == 1
    assert "hangs: 1" in proc.stdout and "CRASH: hang" in proc.stdout


def test_harness_reports_a_wrong_result():
    proc = run_fuzz("--cases", "80", "--seed", "1", "--self-test", "corrupt")
    assert proc.returncode == 1
    assert "out " in proc.stdout and "elements differ" in proc.stdout


# ----------------------------------------------------------------------------- the model is right


def test_model_gives_the_seed_example():
    x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    rois = np.array([[0, 0, 0, 4, 4]], np.float32)
    for scale, want in ((1.0, [[14, 16], [26, 28]]), (0.7, [[7, 9], [19, 21]])):
        exp = model.expect_forward(x, rois, (2, 2), scale, return_argmax=True)
        assert exp.valid and exp.results[0][0, 0].tolist() == want


def test_model_matches_real_mxnet_golden_data():
    """The fuzzer's model (its values: roipool._reference) against outputs of the
    real MXNet 1.9.1 (tests/data/mxnet_golden.npz): an oracle independent of roipool."""
    path = os.path.join(ROOT, "tests", "data", "mxnet_golden.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    n = 0
    for case in meta["cases"]:
        if not case.get("semantics_agrees", True):
            continue  # the file marks where MXNet's own float16 build departs from docs/semantics.md
        g = lambda name: arrays[f"{case['key']}_{name}"]  # noqa: E731
        exp = model.expect_forward(g("data"), g("rois"), tuple(case["pooled"]), case["scale"],
                                return_argmax=True)
        assert exp.valid, case["name"]
        assert check.bits_equal(exp.results[0], g("out")), case["name"]
        assert np.array_equal(exp.results[1], g("argmax")), case["name"]
        if case.get("has_grad"):
            expb = model.expect_backward(g("grad_out"), g("rois"), g("argmax"), g("data").shape)
            assert expb.valid and check.bits_equal(expb.results[0], g("grad")), case["name"]
        n += 1
    assert n >= 60


def test_model_rejects_what_the_contract_rejects():
    x = np.zeros((2, 3, 4, 4), np.float32)
    r = np.array([[0, 0, 0, 3, 3], [1, 0, 0, 3, 3]], np.float32)
    bad_row = r.copy()
    bad_row[1, 0] = 2
    cases = [
        ((x.astype(bool), r, 2, 1.0), "data", TypeError),
        ((x[0], r, 2, 1.0), "data", ValueError),
        ((x, r.astype(complex), 2, 1.0), "rois", TypeError),
        ((x, r, (2, 0), 1.0), "pooled_size", ValueError),
        ((x, r, True, 1.0), "pooled_size", ValueError),
        ((x, r, 2, 0.0), "spatial_scale", ValueError),
        ((x, bad_row, 2, 1.0), "row 1", ValueError),
    ]
    for args, needle, exc in cases:
        exp = model.expect_forward(*args)
        assert not exp.valid
        assert any(exc in f.exc and needle in f.needles for f in exp.faults), (needle, exp.faults)


def test_out_beside_an_input_in_one_block_is_not_a_modified_input():
    """The harness snapshots the whole memory block behind an input view; an
    out= buffer in the same block, beside (not over) the input's elements, is
    a valid call and may be written. A write next to the input is still seen."""
    block = np.zeros(4096, np.float32)
    grad_out = block[2048:].reshape(2, 2, 16, 32)[:, :, ::2, ::2]  # strided, high half
    out = block[:1024].reshape(1, 2, 16, 32)                       # low part of the block
    snap = check.snapshot(grad_out)
    out[...] = 1.0
    assert not check.unchanged(snap)                # without exemptions a change is seen
    assert check.unchanged(snap, writable=(out,))   # the out= buffer's bytes are exempt
    block[1500] = 2.0                            # not out, not grad_out's elements
    assert not check.unchanged(snap, writable=(out,))
