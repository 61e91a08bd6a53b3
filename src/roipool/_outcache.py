"""Recycled memory for large outputs.

A fresh output larger than glibc's mmap threshold (at most 32 MiB) is a new
mapping on every call, and the OS zeroes and faults in every page while the
kernel writes it: that doubled the cost of a 200 MB default call. Outputs of
at least ``MIN_BYTES`` are therefore views on blocks this pool keeps.

A block is handed out again only when the pool holds the sole reference to
it. Every array derived from a result (views, slices, ``memoryview``, a
tensor from ``torch.from_numpy``) references the block through its base
chain, so memory a caller can still reach is never reused. A result dropped
by the caller becomes idle at once; the pool notices at its next call.

The cap bounds every block the pool tracks, idle or in use. To make room,
the pool frees idle blocks and then stops tracking blocks still in use,
oldest first (they stay the caller's, freed when dropped, like any array),
so results held for long do not keep a loop from reusing memory.
Environment: ``ROIPOOL_OUTPUT_CACHE=0`` turns the pool off,
``ROIPOOL_OUTPUT_CACHE_MB`` sets the cap (default 1024 MiB; 0 is off).
``roipool.empty_cache()`` frees the idle blocks. Free-threaded Python (no
GIL) gets no pool.
"""
import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 4 << 20  # smaller outputs come from malloc's heap, already reused
DEFAULT_LIMIT_MB = 1024
ALIGN = 64  # a cache line: no output starts mid-line
SLACK = 2  # a block serves requests down to 1/SLACK of its size

_lock = threading.RLock()  # re-entrant: a finalizer run by gc may call roipool
_blocks = []  # uint8 arrays, oldest first
_limit = 0  # bytes; 0 means off


def _refs(blocks, i):
    return sys.getrefcount(blocks[i])


# References to an idle block seen by _refs: the list's and the call's own.
_IDLE_REFS = _refs([np.empty(1, np.uint8)], 0)


def _idle(i):
    return _refs(_blocks, i) <= _IDLE_REFS


def _limit_from_env(environ):
    # Without the GIL a reference count read from another thread is not a
    # proof that nobody holds the block: no pool there.
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return 0
    if environ.get("ROIPOOL_OUTPUT_CACHE", "").strip().lower() in ("0", "off", "false", "no"):
        return 0
    mb = environ.get("ROIPOOL_OUTPUT_CACHE_MB", "").strip()
    try:
        return max(int(mb), 0) << 20 if mb else DEFAULT_LIMIT_MB << 20
    except ValueError:
        return DEFAULT_LIMIT_MB << 20


def set_limit(nbytes):
    """Cap the bytes of blocks tracked (0 turns the pool off); idle blocks
    beyond the new cap are freed. Returns the previous cap."""
    global _limit
    with _lock:
        old, _limit = _limit, max(int(nbytes), 0)
        _shrink_to(_limit, forget_busy=True)
    return old


def _shrink_to(budget, forget_busy):
    """Free idle blocks, oldest first, until the tracked bytes fit budget;
    then, if asked, stop tracking blocks in use, oldest first."""
    held = sum(b.nbytes for b in _blocks)
    i = 0
    while held > budget and i < len(_blocks):
        if _idle(i):
            held -= _blocks.pop(i).nbytes
        else:
            i += 1
    while forget_busy and held > budget:
        held -= _blocks.pop(0).nbytes
    return held


def empty_cache():
    """Free the output blocks roipool keeps for reuse that no result uses.

    Large outputs (at least 4 MiB) of the default call are views on blocks
    that roipool recycles once every array made from them is gone; the pool
    holds at most ``ROIPOOL_OUTPUT_CACHE_MB`` MiB (default 1024, 0 or
    ``ROIPOOL_OUTPUT_CACHE=0`` to turn it off). ``show_config()`` prints its
    state. Blocks still referenced stay yours.

    Returns
    -------
    None

    Examples
    --------
    >>> import numpy as np, roipool
    >>> x = np.ones((1, 512, 38, 50), np.float32)
    >>> out = roipool.roi_pooling(x, [[0, 0, 0, 99, 99]] * 50, 7, 1 / 16)  # 5 MB
    >>> del out              # its block is idle now, kept for the next call
    >>> roipool.empty_cache()  # handed back to the OS
    """
    with _lock:
        _shrink_to(0, forget_busy=False)


def stats():
    """(cap, bytes tracked, blocks tracked, bytes idle, blocks idle)."""
    with _lock:
        idle = [_blocks[i].nbytes for i in range(len(_blocks)) if _idle(i)]
        return _limit, sum(b.nbytes for b in _blocks), len(_blocks), sum(idle), len(idle)


def empty(shape, dtype):
    """An uninitialised C-contiguous array, on a recycled block when large."""
    dtype = np.dtype(dtype)
    need = math.prod(shape) * dtype.itemsize
    if need < MIN_BYTES or need + ALIGN > _limit:
        return np.empty(shape, dtype)
    with _lock:
        # Loops hold no name for a block: it would count as a reference.
        best, best_size = -1, 0
        for i in range(len(_blocks)):
            size = _blocks[i].nbytes
            if need + ALIGN <= size <= SLACK * (need + ALIGN) and (best < 0 or size < best_size) \
                    and _idle(i):
                best, best_size = i, size
        if best >= 0:
            return _view(_blocks[best], shape, dtype)
        _shrink_to(_limit - need - ALIGN, forget_busy=True)
        block = np.empty(need + ALIGN, np.uint8)
        _blocks.append(block)
        return _view(block, shape, dtype)


def _view(block, shape, dtype):
    # The view's base is the block itself, so the block's refcount sees it
    # and everything made from it.
    offset = -block.ctypes.data % ALIGN
    return np.ndarray(shape, dtype, buffer=block, offset=offset)


def _after_fork_in_child():
    global _lock
    _lock = threading.RLock()


set_limit(_limit_from_env(os.environ))
if hasattr(os, "register_at_fork"):
    # Fork with the lock held so the child's list is never half-updated.
    os.register_at_fork(before=lambda: _lock.acquire(),
                        after_in_parent=lambda: _lock.release(),
                        after_in_child=_after_fork_in_child)
