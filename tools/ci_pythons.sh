#!/usr/bin/env bash
# CI phase: the wheels of the other CPythons the package claims (3.11, the
# default, is the packaging phase's). For each version, tools/build_wheel.sh
# --python X.Y builds and repairs its manylinux wheel (with the same checks as
# the cp311 one), the wheel goes into a fresh venv of that CPython with the
# test extra, and the suite runs against it (tools/ci_lib.sh's ci_wheel_suite,
# as in the packaging phase).
#
# The whole suite runs for FULL_SUITE (the newest); the others run SUBSET, the
# files that touch what differs between CPythons (the compiled module, the
# buffer and dtype handling, the threads, the installed package), leaving out
# the long-running leak, fuzz, limits, concurrency and benchmark-harness files
# (about 6 of the whole suite's 8 minutes on this busy machine). torch is not
# installed for these CPythons (a multi-GB download each): the torch tests
# skip here and run in the cp311 phases, and so does test_wheel.py's
# torch + scikit-learn runtime test (deselected).
#
#   bash tools/ci_pythons.sh                   # 3.10 3.12 3.13
#   PYTHONS="3.12" FULL_SUITE=3.12 bash tools/ci_pythons.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONS=${PYTHONS:-"3.10 3.12 3.13"}
FULL_SUITE=${FULL_SUITE:-3.13}
SUBSET=(tests/test_wheel.py tests/test_packaging.py tests/test_parity.py
        tests/test_formats.py tests/test_errors.py tests/test_backward.py
        tests/test_simd_paths.py tests/test_mxnet_golden.py tests/test_threads.py
        tests/test_cli.py tests/test_untouched.py tests/test_output_cache.py
        tests/test_kernel_edges.py tests/test_rule.py)
NEEDS_TORCH=tests/test_wheel.py::test_with_torch_and_sklearn_openmp_in_one_process
T0=$(date +%s)
source tools/ci_lib.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for v in $PYTHONS; do
    t=$(date +%s)
    echo "== CPython $v: tools/build_wheel.sh --python $v"
    bash tools/build_wheel.sh --python "$v" >"$WORK/build-$v.log" 2>&1 \
        || { tail -40 "$WORK/build-$v.log"; echo "ci_pythons.sh: the $v wheel failed" >&2; exit 1; }
    tag=cp${v/./}
    wheel=$(ls wheelhouse/roipool-*-"$tag"-"$tag"-manylinux*.whl)
    echo "   $(basename "$wheel") ($(( $(date +%s) - t )) s)"
    py=$(sed -n 's/^== --python [0-9.]*: //p' "$WORK/build-$v.log")
    mkdir "$WORK/venv-$v"
    ci_venv "$py" "$WORK/venv-$v"
    "$VPY" -m pip install --quiet "$wheel[test]"
    if [ "$v" = "$FULL_SUITE" ]; then what=(); echo "   the whole suite";
    else what=("${SUBSET[@]}"); echo "   subset: ${SUBSET[*]#tests/}"; fi
    ci_wheel_suite "$WORK/run-$v" "$VPY" -- --deselect "$NEEDS_TORCH" "${what[@]}"
    rm -rf "$WORK/venv-$v" "$WORK/run-$v"
    echo "   CPython $v took $(( $(date +%s) - t )) s"
done
echo "   pythons phase ($PYTHONS) took $(( $(date +%s) - T0 )) s"
