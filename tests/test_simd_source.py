"""The C side's source tools: every ISA table is checked complete when it
compiles (simd/ops.h), and tools/expand_kernels.sh prints what one ISA runs.

Both need the checkout's src/roipool/simd/ and a C compiler; the suite run
against an installed wheel (no src/) has neither to test."""
import os
import pathlib
import platform
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SIMD = REPO / "src" / "roipool" / "simd"
CC = os.environ.get("CC", "cc")

pytestmark = pytest.mark.skipif(not SIMD.is_dir() or shutil.which(CC) is None,
                                reason="needs the source tree and a C compiler")

# this machine's vector ISA, an op its header defines and an intrinsic it uses
if platform.machine().lower() in ("x86_64", "amd64"):
    ISA, HEADER, SAMPLE = "avx2", "ops_avx2.h", "_mm256_max_ps"
elif platform.machine().lower() in ("aarch64", "arm64"):
    ISA, HEADER, SAMPLE = "neon", "ops_neon.h", "vbslq_f32"
else:
    ISA, HEADER, SAMPLE = "base", "ops_base.h", "roipool_base_f32_max"


def _compile(include_dir, tmp_path):
    src = tmp_path / "use.c"
    src.write_text('#include "simd/simd.h"\n'
                   "const void *use(int i) { roipool_set_isa(i); return roipool_kernels; }\n")
    return subprocess.run([CC, "-O1", "-fsyntax-only", f"-I{include_dir}", str(src)],
                          capture_output=True, text=True, timeout=300)


def test_a_table_missing_an_op_does_not_compile(tmp_path):
    assert _compile(SIMD.parent, tmp_path).returncode == 0
    copy = tmp_path / "src"
    shutil.copytree(SIMD, copy / "simd")
    header = copy / "simd" / HEADER
    op = f"roipool_{ISA}_f32_kinc"
    lines = header.read_text().splitlines(keepends=True)
    kept = [line for line in lines if op not in line]
    assert len(kept) < len(lines), f"{HEADER} no longer defines {op}"
    header.write_text("".join(kept))
    res = _compile(copy, tmp_path)
    assert res.returncode != 0
    assert op in res.stderr


def test_expand_kernels_prints_one_isa_and_type():
    run = subprocess.run(["bash", str(REPO / "tools" / "expand_kernels.sh"), ISA, "f32"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"roipool_roi_max_f32_{ISA}(" in run.stdout
    assert SAMPLE in run.stdout
    # only that pair: no other type's or ISA's kernels, no template names left
    assert f"roipool_roi_max_f64_{ISA}(" not in run.stdout
    assert "roipool_roi_max_f32_base(" not in run.stdout or ISA == "base"
    assert "RP_" not in run.stdout
    bad = subprocess.run(["bash", str(REPO / "tools" / "expand_kernels.sh"), "sse9", "f32"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
