"""Keeps a long run's resident memory from creeping: the heap's free pages go back to the system.

Every frame allocates and frees a few large buffers (the decoded frame, the detector's float input, crops, the
annotated copy), from five threads. glibc's malloc serves buffers above its mmap threshold with their own mapping,
returned at `free`; but that threshold is dynamic — each freed mapping raises it to the freed size (up to 32 MiB),
so after the first frames every frame buffer comes from the heap arenas instead. There, buffers of different sizes
freed in another order than allocated leave holes that stay resident: +6 kB per processed frame measured, with
malloc's allocated bytes flat (docs/benchmarks.md, "Where the memory went").

Two remedies: `HeapTrimmer` (the default, `run.heap_trim_s`) hands the whole free pages inside the arenas back every
few seconds, at no measurable cost — flat on file runs, live runs still creep more slowly; `set_mmap_threshold`
(`run.mmap_threshold_kib`, off by default) keeps every buffer above a fixed size out of the arenas, but makes every
large torch / numpy temporary pay for a mapping (1.27x slower on a crowded scene). glibc only: elsewhere (musl,
macOS, Windows) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time

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


class HeapTrimmer:
    """Every `every_s` seconds, hands the pages that lie free inside the heap arenas back to the system
    (`malloc_trim(0)`: since glibc 2.8 it releases whole free pages anywhere in every arena, not only at the top).
    Holes left by frame buffers stay holes in the address space but cost no memory. Called from the frame loop
    between two frames; `0` turns it off."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.libc = _libc() if every_s > 0 else None
        if self.libc is not None and not hasattr(self.libc, "malloc_trim"):
            self.libc = None
        self.next_at = time.monotonic() + every_s
        self.trims = 0
        self.total_s = 0.0

    def __call__(self) -> None:
        if self.libc is None or time.monotonic() < self.next_at:
            return
        start = time.monotonic()
        self.libc.malloc_trim(0)
        self.trims += 1
        self.total_s += time.monotonic() - start
        self.next_at = time.monotonic() + self.every_s
