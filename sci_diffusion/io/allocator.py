"""Keep freed memory in the process instead of handing it back to the kernel at every step.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB by default) with
a fresh ``mmap`` and returns it with ``munmap`` when freed. A training step of the dense graph
transformer on MOSES-sized graphs (batch 128-256, 27 nodes) allocates several such tensors per
layer, so each step maps, zero-fills and unmaps hundreds of megabytes: measured on the 2-core
CPU machine, 12 steps of ``task=moses_graph`` took 146 s of user and 236 s of system time
without tuning and 57 s user / 17 s system with it (docs/benchmarks.md, "Allocator").

:func:`keep_freed_memory` raises the mmap and trim thresholds with ``mallopt`` so that freed
blocks are reused. The cost is a higher resident set after a peak (the memory is kept for the
next step, as the CUDA caching allocator does on GPU). It changes nothing when the user set any
``MALLOC_*_`` variable (theirs wins), off glibc, or with ``SCI_DIFFUSION_ALLOCATOR=system``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV_SWITCH = "SCI_DIFFUSION_ALLOCATOR"
"""``system`` leaves glibc's defaults alone; anything else (or unset) tunes."""

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's <malloc.h> constants
_ONE_GIB = 1 << 30
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "GLIBC_TUNABLES")  # fmt: skip

_tuned: bool | None = None


def keep_freed_memory(threshold_bytes: int = _ONE_GIB) -> bool:
    """Serve blocks below ``threshold_bytes`` from the heap and keep up to that much free
    memory instead of trimming it. Idempotent; returns whether glibc accepted the settings."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get(ENV_SWITCH, "").lower() == "system" or not sys.platform.startswith("linux"):
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    value = min(int(threshold_bytes), 2**31 - 1)
    _tuned = all(
        mallopt(option, value) == 1
        for option in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD, _M_TOP_PAD)
    )
    return _tuned
