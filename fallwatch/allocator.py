"""Keeps a long run's resident memory flat: large buffers are given to the system when freed.

Every frame allocates and frees a few large buffers (the decoded frame, the detector's float input, crops, the
annotated copy), from five threads. glibc's malloc serves buffers above its mmap threshold with their own mapping,
returned at `free`; but that threshold is dynamic — each freed mapping raises it to the freed size (up to 32 MiB),
so after the first frames every frame buffer comes from the heap arenas instead. There, buffers of slightly
different sizes freed in another order than allocated leave holes the next frame cannot use: a live run measured
+6 kB per processed frame (arena +12.9 MB over 2,255 frames, allocated bytes flat), gigabytes over a week. A fixed
threshold (`mallopt(M_MMAP_THRESHOLD)`, which also stops the dynamic adjustment) keeps every buffer above it out of
the arenas. glibc only: elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc has it, musl and others may not
        libc.gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def set_mmap_threshold(kib: int) -> bool:
    """Serve every allocation of at least `kib` KiB with its own mapping, for the rest of the process (0: leave
    glibc's default). Returns whether the allocator took the setting."""
    if kib <= 0:
        return False
    libc = _libc()
    if libc is None:
        return False
    taken = bool(libc.mallopt(M_MMAP_THRESHOLD, int(kib) * 1024))
    if not taken:
        log.warning("the C library refused a malloc mmap threshold of %d KiB", kib)
    return taken
