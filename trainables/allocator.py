"""Keep freed memory in the process for reuse (glibc), so CPU training stops page-faulting.

PyTorch's CPU tensors come from malloc. glibc serves every block over 32 MB (a pack's weight
gradients, one per layer and step) with a fresh `mmap` and unmaps it on free, so each step
the kernel zero-fills the same memory again, page by page: on the 2-core development machine
that was 7,800 page faults and 27 ms of system time per step for one model, 166,000 faults for
a pack of ten, and a 1.3-1.7x slower step. With mmap disabled and the heap never trimmed
below 1 GiB of free space, the blocks freed by one step serve the next (what jemalloc or
tcmalloc would do, without a preloaded library). One arena for all threads: Tune runs a
function trainable in a thread of its own, and glibc's per-thread arenas give memory back
to the system regardless (a thread saw 11,400 faults per step with the other two settings
alone). The process keeps its peak memory.

Called at the start of a Tune trial that trains on the CPU (the trial owns its process) and by
the throughput benchmark; elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
M_ARENA_MAX = -8
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before returning any to the system


def reuse_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed blocks instead of unmapping them; True if it did."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all([bool(libc.mallopt(param, value)) for param, value in settings])
