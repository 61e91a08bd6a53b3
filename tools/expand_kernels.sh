#!/usr/bin/env bash
# Print the kernels of one ISA and element type as the compiler sees them:
# src/roipool/simd/ preprocessed (ops and RP_ names expanded into the ISA's
# intrinsics or vector code), cut to the functions the kernel bodies
# (roi_max.inc.h, backward.inc.h) make for that pair.
#
#   tools/expand_kernels.sh ISA TYPE      ISA: base avx2 avx512 neon
#                                         TYPE: f32 f64 f16 bf16
#   CC=clang tools/expand_kernels.sh avx2 f16
#
# neon needs an aarch64 compiler: CC, else aarch64-linux-gnu-gcc on other
# hosts (Debian: apt-get install gcc-aarch64-linux-gnu). The backward's
# helpers exist for f16 and bf16 only, and AVX-512 uses AVX2's (dispatch.h).
set -euo pipefail
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -eq 2 ] || usage
isa=$1 type=$2
case $isa in base | avx2 | avx512 | neon) ;; *) usage ;; esac
case $type in f32 | f64 | f16 | bf16) ;; *) usage ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}
if [ "$isa" = neon ] && [ -z "${CC:-}" ] && [ "$(uname -m)" != aarch64 ]; then
    cc=aarch64-linux-gnu-gcc
fi
command -v "$cc" >/dev/null || { echo "expand_kernels.sh: no compiler $cc" >&2; exit 1; }

# -O3 as setup.py builds (intrinsic headers differ without __OPTIMIZE__);
# line markers say which file each line came from.
echo '#include "simd/simd.h"' |
    "$cc" -E -O3 -ffp-contract=off -I"$root/src/roipool" -x c - |
    awk -v want="_${type}_${isa}(" '
        /^# [0-9]+ "/ { body = ($3 ~ /(roi_max|backward)\.inc\.h"$/); next }
        !body { next }
        # top-level chunks: a function runs from its first line to the line
        # where its braces close again
        {
            chunk = chunk $0 "\n"
            n = gsub(/\{/, "{"); m = gsub(/\}/, "}")
            depth += n - m
            if (n > 0) opened = 1
            if (opened && depth == 0) {
                head = substr(chunk, 1, index(chunk, "{"))
                if (index(head, want)) { printf "%s\n", chunk; found = 1 }
                chunk = ""; opened = 0
            } else if (!opened && $0 ~ /^[ \t]*$/) {
                chunk = ""
            }
        }
        END { if (!found) { print "no kernels of that ISA in this build" > "/dev/stderr"; exit 1 } }'
