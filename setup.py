"""Build the compiled kernels of roipool.

Metadata lives in pyproject.toml; this file only defines the extension and
chooses compiler flags: -O3 and OpenMP when the compiler supports it, a serial
build with a warning when it does not (never a failed install).
Environment switches:
  ROIPOOL_NO_OPENMP=1   build without OpenMP
  ROIPOOL_DEBUG=1       keep bounds checks and build with -O0 -g (debugging)
  ROIPOOL_SANITIZE=1    add -fsanitize=address,undefined (tools/asan.sh)
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0 && omp_get_max_threads() > 0);
        return 0;
    }
    """
)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP with this compiler, or None.

    The flags are tried by compiling and linking a tiny OpenMP program, so an
    Apple clang without libomp or a gcc without libgomp falls back to serial.
    """
    ctype = compiler.compiler_type
    if ctype == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [
            (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
            (["-fopenmp"], ["-fopenmp"]),
        ]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    tmp = tempfile.mkdtemp(prefix="roipool-omp-")
    try:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        for cflags, lflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                exe = os.path.join(tmp, "omp_test")
                compiler.link_executable(objs, exe, extra_postargs=lflags)
                if sys.platform != "win32":
                    # Linking is not enough: the runtime must load.
                    out = subprocess.run([exe], capture_output=True, timeout=60)
                    if out.returncode != 0 or out.stdout.strip() != b"1":
                        continue
                return cflags, lflags
            except Exception:  # any compile/link/run failure means "no OpenMP"
                continue
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        debug = _env_flag("ROIPOOL_DEBUG")
        if ctype == "msvc":
            cflags, lflags = ["/O2"], []
        else:
            # -ffp-contract=off: no fused multiply-add, every product is
            # rounded as MXNet's compiled kernel rounds it.
            cflags = ["-O0", "-g"] if debug else ["-O3"]
            cflags += ["-ffp-contract=off", "-fno-math-errno"]
            lflags = []
            if _env_flag("ROIPOOL_SANITIZE"):
                san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
                cflags, lflags = cflags + san, lflags + san
        omp = None if _env_flag("ROIPOOL_NO_OPENMP") else openmp_flags(self.compiler)
        if omp is None:
            warnings.warn(
                "roipool: this compiler has no usable OpenMP; building a serial "
                "extension (roipool.openmp_enabled() will return False).",
                stacklevel=1,
            )
            print("*** roipool: building WITHOUT OpenMP (serial kernels) ***", file=sys.stderr)
            omp = ([], [])
        flags = " ".join(cflags + omp[0] + lflags + omp[1]).replace('"', "'")
        for ext in self.extensions:
            ext.extra_compile_args = cflags + omp[0]
            ext.extra_link_args = lflags + omp[1]
            # recorded for roipool.show_config(), pasted into bug reports
            ext.define_macros.append(("ROIPOOL_BUILD_FLAGS", '"%s"' % flags))
        super().build_extensions()


def extensions():
    import numpy
    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "boundscheck": _env_flag("ROIPOOL_DEBUG"),
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
        "nonecheck": False,
        "embedsignature": True,
    }
    ext = Extension(
        "roipool._roi_pool",
        sources=["src/roipool/_roi_pool.pyx"],
        depends=sorted(glob.glob("src/roipool/simd/*.h") + glob.glob("src/roipool/*.pxd")
                       + glob.glob("src/roipool/*.pxi")),
        include_dirs=["src/roipool", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    return cythonize([ext], compiler_directives=directives)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
