"""Shared by the test files: where the checkout is, whether this run is the
sanitized one (tools/asan.sh), bfloat16 when ml_dtypes is installed, loading
the scripts under tools/ and bench/, and running code in a fresh interpreter
so a crash or a hang fails a test instead of killing pytest.

The rule the tests compare against is roipool._reference (plain loops,
independent of the kernels)."""
import ctypes
import importlib
import importlib.util
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

try:  # bfloat16 is optional (the ml_dtypes test extra)
    from ml_dtypes import bfloat16
except ImportError:  # pragma: no cover
    bfloat16 = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANITIZED = bool(os.environ.get("ROIPOOL_SANITIZED"))


def bits(a):
    """The bytes of an array: equal bits, not merely equal values (-0.0, NaN)."""
    return np.ascontiguousarray(a).view(np.uint8)


def _emulated():
    """True under qemu-user (CI's aarch64 phase): the kernel's architecture
    is not the one this interpreter was built for."""
    try:
        with open("/proc/sys/kernel/arch") as f:
            return f.read().strip() != platform.machine()
    except OSError:
        return False


EMULATED = _emulated()


# Pages per mincore call: one page vector, made once, serves every mapping.
_MINCORE_PAGES = 1 << 16
_LOW_BIT = bytes(b & 1 for b in range(256))  # mincore: bit 0 = resident


def _mincore():
    """libc's mincore and a page vector for it, made once at import. Nothing
    per call may stay allocated, or test_leaks' C-heap measure would count
    it: ctypes keeps every array type it makes (one per length, ~1.7 KB each
    under qemu), NumPy caches small freed buffers."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.mincore
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    vec = (ctypes.c_ubyte * _MINCORE_PAGES)()
    return fn, vec, ctypes.addressof(vec)


_MINCORE = _mincore() if EMULATED else None


def _mapped_resident_bytes():
    """Resident bytes of the mappings this process sees in /proc/self/maps,
    page by page (mincore). Under qemu-user that listing is the emulated
    process's own, without the emulator's code cache and heap."""
    mincore, _, addr = _MINCORE
    page = os.sysconf("SC_PAGE_SIZE")
    step = _MINCORE_PAGES * page
    pages = 0
    with open("/proc/self/maps") as f:
        spans = [[int(x, 16) for x in line.split()[0].split("-")] for line in f]
    for lo, hi in spans:
        for start in range(lo, hi, step):
            size = min(hi - start, step)
            if mincore(start, size, addr) == 0:  # fails on [vsyscall] and the like
                n = (size + page - 1) // page
                pages += ctypes.string_at(addr, n).translate(_LOW_BIT).count(1)
    return pages * page


def rss_bytes():
    """This process's resident memory: /proc/self/statm natively. Under
    qemu-user statm is the emulator's process, whose own memory grows as the
    emulated one maps and unmaps (over the 1,000 calls of test_output_cache's
    RSS test: statm +133 MB and still +99 MB after empty_cache(), the
    emulated process's mappings +34 MB and -0.5 MB): there the emulated
    process's mappings are counted instead."""
    if EMULATED:
        return _mapped_resident_bytes()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def import_peer(name, required_by="ROIPOOL_REQUIRE_TORCH"):
    """An optional peer (torch, torchvision, onnx, ...): skip the test module or
    test without it, except where the environment variable `required_by` is 1
    (CI's peer phase sets ROIPOOL_REQUIRE_TORCH and ROIPOOL_REQUIRE_PEERS; its
    packaging phase, which installs torch but not the benchmark's peers, only
    the first): there a missing peer is a failure, not a skip."""
    if os.environ.get(required_by) == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name)


def load_script(relpath, name):
    """A script of the checkout (e.g. tools/fuzz.py) imported as module `name`."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relpath))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def import_tool(name):
    """A module of the checkout's tools/ directory, e.g. "fuzzing.model" (tools/
    is not a package, so it goes on sys.path)."""
    tools = os.path.join(ROOT, "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module(name)


def run_python(args, timeout, env=None, what="the subprocess", **kw):
    """sys.executable with `args` (same environment, so the same installed
    roipool, plus `env`); the CompletedProcess, text mode. A timeout fails the
    test as a hang, with the output so far."""
    full_env = dict(os.environ, PYTHONFAULTHANDLER="1")
    full_env.update(env or {})
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env, **kw)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"{what} hung (killed after {timeout} s); output so far:\n"
                    f"{(out or '')[-2000:]}\n{(err or '')[-3000:]}")


def asks_argmax(kw):
    """Whether a roi_pooling call (its keyword arguments) computes the argmax:
    into argmax=, or returned with return_argmax=True."""
    return kw.get("argmax") is not None or bool(kw.get("return_argmax"))
