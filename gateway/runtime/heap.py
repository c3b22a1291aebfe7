"""Large buffers go back to the operating system when freed (glibc's malloc).

glibc serves a block of 128 KiB or more with its own mmap, but after the first such block
is freed it raises that threshold (up to 32 MiB), so later reply buffers come from the
heap, where freed memory mostly stays: a burst of twenty 2 MiB replies then left ~30 MiB
more resident than it held (`test_twenty_dense_2_mib_replies_at_once_cost_*`). Fixing the
threshold turns that adjustment off. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt's parameter, from glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold; whether it was set."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
