"""Run-time configuration: SIMD path and a report for bug reports."""
import os

from roipool import _outcache, _roi_pool

# Path ids, in the order of the C enum (simd/dispatch.h). Families: x86
# avx512 -> avx2 -> baseline, aarch64 neon -> baseline.
ISA_NAMES = ("baseline", "avx2", "avx512", "neon")


def supported_isas():
    """The SIMD paths this build and CPU can run, baseline first.

    Of "baseline", "avx2", "avx512" (x86_64) and "neon" (aarch64). Every path
    gives bit-identical results.

    Returns
    -------
    list of str
        The names, from the portable path to the widest.

    Examples
    --------
    >>> import roipool
    >>> isas = roipool.supported_isas()
    >>> isas[0], roipool.get_isa() in isas
    ('baseline', True)
    """
    return [name for level, name in enumerate(ISA_NAMES) if _roi_pool.isa_supported(level)]


def set_isa(name):
    """Use the named SIMD path, or the best one below it that this build and
    CPU support.

    The families fall back avx512 -> avx2 -> baseline and neon -> baseline.
    Every path gives bit-identical results; this exists for testing and
    benchmarking. ``ROIPOOL_ISA=<name>`` does the same at import, where the
    default is the best supported path. The choice is process-wide.

    Parameters
    ----------
    name : {"baseline", "avx2", "avx512", "neon"}
        The path wanted.

    Returns
    -------
    str
        The path now in use.

    Raises
    ------
    ValueError
        name is not one of the four (``docs/semantics.md``, "Bad input",
        covers the operators' arguments).

    Examples
    --------
    >>> import roipool
    >>> best = roipool.get_isa()
    >>> roipool.set_isa("baseline")
    'baseline'
    >>> roipool.set_isa(best) == best
    True
    """
    if name not in ISA_NAMES:
        raise ValueError(f"isa must be one of {ISA_NAMES}, got {name!r}")
    return ISA_NAMES[_roi_pool.set_isa(ISA_NAMES.index(name))]


def get_isa():
    """The SIMD path in use.

    Returns
    -------
    str
        One of :func:`supported_isas`.

    Examples
    --------
    >>> import roipool
    >>> roipool.get_isa() in roipool.supported_isas()
    True
    """
    return ISA_NAMES[_roi_pool.get_isa()]


def block_budget():
    """Bytes for one gathered channel block of the feature map: half the L2
    cache the C library reports (the rest holds the bin results and ROI
    tables), within 128 KiB - 1 MiB; 256 KiB where the size is unknown."""
    l2 = _roi_pool.l2_cache_bytes()
    return min(max(l2 // 2, 128 << 10), 1 << 20) if l2 > 0 else 256 << 10


def _configure_at_import():
    # ROIPOOL_ISA=baseline forces the portable path (e.g. to compare paths);
    # unset or unknown: the best path this CPU supports.
    want = os.environ.get("ROIPOOL_ISA", "").strip().lower()
    set_isa(want if want in ISA_NAMES else supported_isas()[-1])
    _roi_pool._set_tuning(cache_budget=block_budget())


def _outcache_line():
    cap, held, blocks, idle, _ = _outcache.stats()
    if not cap:
        return "output cache: off (ROIPOOL_OUTPUT_CACHE=0 or ROIPOOL_OUTPUT_CACHE_MB=0)"
    return (f"output cache: cap {cap >> 20} MiB (ROIPOOL_OUTPUT_CACHE_MB), "
            f"holding {held / 2**20:.0f} MiB in {blocks} blocks, {idle / 2**20:.0f} MiB idle")


def show_config(file=None):
    """Print version, build, OpenMP and SIMD facts: paste it into bug reports.

    ``python -m roipool info`` prints the same.

    Parameters
    ----------
    file : file-like, optional
        Where to write; None is ``sys.stdout``.

    Returns
    -------
    None

    Raises
    ------
    OSError
        Writing to file failed. (The operators' bad input is in
        ``docs/semantics.md``, "Bad input".)

    Examples
    --------
    >>> import io, roipool
    >>> report = io.StringIO()
    >>> roipool.show_config(file=report)
    >>> report.getvalue().splitlines()[0] == "roipool " + roipool.__version__
    True
    """
    import platform
    import sys

    import numpy as np

    from roipool._version import __version__

    info = _roi_pool.build_info()
    lines = [
        f"roipool {__version__}",
        f"python {sys.version.split()[0]} on {platform.platform()} ({platform.machine()})",
        f"numpy {np.__version__}",
        f"compiler: {info['compiler']}",
        f"build flags: {info['flags']}",
        f"openmp: {'yes' if _roi_pool.openmp_enabled() else 'no (serial build)'}"
        + (f" (version {info['openmp_version']})" if info["openmp_version"] else ""),
        f"threads (omp_get_max_threads): {_roi_pool.omp_max_threads()}",
        f"OMP_NUM_THREADS: {os.environ.get('OMP_NUM_THREADS', '(unset)')}",
        f"simd path: {get_isa()} (supported: {', '.join(supported_isas())})",
        f"channel block budget: {_roi_pool._set_tuning()[0] // 1024} KiB",
        _outcache_line(),
    ]
    print("\n".join(lines), file=file)
