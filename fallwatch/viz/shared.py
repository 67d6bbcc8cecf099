"""One drawing per frame for every sink that shows it.

The annotated video and the evidence clips each run on their own thread and each want the frame drawn; drawing
it twice costs CPU that the frame loop needs on a small machine. `SharedAnnotator` draws a frame once and hands
the same canvas to the second caller. It keeps only the last few canvases: a caller that lags further behind
draws its own, so the cache stays small whatever the frame size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from fallwatch.types import FrameResult


class SharedAnnotator:
    """`annotator(image copy, result) -> canvas`, drawn once per frame index; callers must not modify the canvas.
    A caller that asks for a frame another thread is drawing waits for that drawing instead of making its own."""

    def __init__(self, draw: Callable[[np.ndarray, FrameResult], np.ndarray], keep: int = 8):
        self._draw = draw
        self._keep = keep
        self._lock = threading.Lock()
        self._canvases: OrderedDict[int, _Drawing] = OrderedDict()
        self.drawn = 0

    def __call__(self, image: np.ndarray, result: FrameResult) -> np.ndarray:
        with self._lock:
            drawing = self._canvases.get(result.index)
            mine = drawing is None
            if mine:
                drawing = self._canvases[result.index] = _Drawing()
                while len(self._canvases) > self._keep:
                    self._canvases.popitem(last=False)
        if not mine:
            drawing.done.wait()
            if drawing.canvas is not None:
                return drawing.canvas
            return self._draw(image, result)  # the other thread's drawing failed: try ours
        try:
            drawing.canvas = self._draw(image, result)
            with self._lock:
                self.drawn += 1
            return drawing.canvas
        finally:
            drawing.done.set()


class _Drawing:
    __slots__ = ("canvas", "done")

    def __init__(self) -> None:
        self.canvas: np.ndarray | None = None
        self.done = threading.Event()
