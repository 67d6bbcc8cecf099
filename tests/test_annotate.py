"""The video and the evidence clips share one drawing per frame: a real frame drawn once however many sinks ask."""

from __future__ import annotations

import threading

import cv2
import numpy as np
from conftest import DATA

from fallwatch.types import Detections, FrameResult
from fallwatch.viz import annotate
from fallwatch.viz.shared import SharedAnnotator


def test_each_frame_is_drawn_once_for_two_threads():
    cap = cv2.VideoCapture(str(DATA / "mot" / "TUD-Stadtmitte" / "TUD-Stadtmitte.mp4"))
    ok, image = cap.read()
    assert ok
    results = [FrameResult(i, i / 25, Detections(np.array([[100, 80, 160, 260], [300, 90, 380, 330]]), [0.9, 0.6]))
               for i in range(40)]
    shared = SharedAnnotator(annotate, keep=8)
    canvases: dict[str, list[np.ndarray]] = {"video": [], "clips": []}

    def sink(name: str) -> None:
        for result in results:
            canvases[name].append(shared(image.copy(), result))

    threads = [threading.Thread(target=sink, args=(name,)) for name in canvases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared.drawn <= len(results) + 32  # once per frame, unless a sink fell more than `keep` frames behind...
    expected = annotate(image.copy(), results[7])
    for name in canvases:  # ...and every sink got the drawing of its own frame
        assert len(canvases[name]) == 40
        np.testing.assert_array_equal(canvases[name][7], expected)
    assert not np.array_equal(canvases["video"][7], image)


def test_a_sink_far_behind_draws_its_own():
    calls = []

    def draw(image, result):
        calls.append(result.index)
        return image

    shared = SharedAnnotator(draw, keep=4)
    frames = [FrameResult(i, 0.0, Detections.empty()) for i in range(10)]
    blank = np.zeros((4, 4, 3), np.uint8)
    for result in frames:
        shared(blank, result)
    shared(blank, frames[0])  # 10 frames behind: no longer kept, drawn again
    shared(blank, frames[8])  # recent: shared
    assert calls == [*range(10), 0]
