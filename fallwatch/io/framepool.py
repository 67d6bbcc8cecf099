"""Frame-sized buffers that the decoder fills again once nobody holds them.

Why: a reader that asks OpenCV for a new array per frame allocates ~1-6 MB per frame on its own thread while the
frames are freed on others. Over hours glibc's arenas fragment around these blocks (malloc's allocated bytes stay
flat while its free bytes and the resident memory grow; docs/benchmarks.md, "Where the memory went"), and a live
reader that decodes 15 frames/s and drops half of them does this twice as often as the frames it delivers. Decoding
into a small set of reused buffers takes the largest allocation out of the frame loop.

A buffer is free when the pool's own reference is the only one left: the queue, the pipeline, the sinks and any
view of it (a view keeps its base alive) all count, so a frame is never overwritten while anything can still see it.
"""

from __future__ import annotations

import sys

import numpy as np


def _holders(buffers: list[np.ndarray], index: int) -> int:
    """How many references `buffers[index]` has, counted the one way the pool always counts them."""
    return sys.getrefcount(buffers[index])


def _free_refcount() -> int:
    """What `_holders` reports when only the list holds the array (measured rather than assumed: interpreters
    differ in the temporary references they count)."""
    return _holders([np.empty(1, np.uint8)], 0)


class FramePool:
    """At most `capacity` reusable arrays; beyond that (everything in flight) `take` allocates a plain new one."""

    _FREE = _free_refcount()

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("a frame pool needs room for at least one buffer")
        self.capacity = capacity
        self._buffers: list[np.ndarray] = []
        self.allocated = 0  # arrays created by `take` (pooled or not): flat in a steady run
        self.reused = 0

    def take(self, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        """An array of `shape`/`dtype` that no one else references (contents undefined)."""
        dtype = np.dtype(dtype)
        stale = None
        for index in range(len(self._buffers)):
            if _holders(self._buffers, index) != self._FREE:
                continue
            buf = self._buffers[index]
            if buf.shape == shape and buf.dtype == dtype:
                self.reused += 1
                return buf
            stale = index  # free but of an old size (a stream that changed resolution)
        self.allocated += 1
        fresh = np.empty(shape, dtype)
        if stale is not None:
            self._buffers[stale] = fresh
        elif len(self._buffers) < self.capacity:
            self._buffers.append(fresh)
        return fresh

    def __len__(self) -> int:
        return len(self._buffers)


def read_into(cap, pool: FramePool, like: np.ndarray | None) -> tuple[bool, np.ndarray | None]:
    """`cap.read()` into a pooled buffer shaped like the previous frame (OpenCV fills a given array of the right
    size in place and allocates a new one otherwise, e.g. after a resolution change)."""
    if like is None:
        return cap.read()
    return cap.read(pool.take(like.shape, like.dtype))


def copy_into(canvas: np.ndarray | None, image: np.ndarray) -> np.ndarray:
    """`image` copied into `canvas` when the sizes agree (a drawing surface kept by a single-threaded writer), into
    a new array otherwise."""
    if canvas is None or canvas.shape != image.shape or canvas.dtype != image.dtype:
        return image.copy()
    np.copyto(canvas, image)
    return canvas
