"""Evidence of every fall: a JPEG of the alarm frame and an mp4 clip from `clip_pre_s` before the alarm to
`clip_post_s` after it, both annotated, beside the other outputs (`<name>.event<ID>.jpg`, `<name>.event<ID>.mp4`).

Why a ring of JPEGs on a worker thread: the seconds before an alarm are only known once it is raised, so the last
`clip_pre_s` of frames are always kept — encoded (a 720p frame is ~100 kB as JPEG, 2.7 MB raw), and annotated and
encoded off the frame loop, which only hands each frame over (and drops it, counted, if the worker lags) and never
waits. Works the same for files and live streams.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fallwatch.io.framepool import copy_into
from fallwatch.types import Frame, FrameResult


class EvidenceSink:
    def __init__(self, outdir: Path, name: str, fps: float, pre_s: float, post_s: float, codec: str,
                 annotate: Callable[[np.ndarray, FrameResult], np.ndarray], queue_size: int = 64):
        self.outdir, self.name, self.fps, self.post_s, self.codec = outdir, name, fps, post_s, codec
        self._annotate = annotate
        self._canvas: np.ndarray | None = None  # reused drawing surface (this writer's thread only)
        self._ring: deque = deque(maxlen=max(1, math.ceil(pre_s * fps)))
        self._open: dict[int, dict] = {}  # event_id -> frames collected so far and the time to stop
        self._done: dict[int, dict] = {}
        self._seen: set[int] = set()
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="fallwatch-evidence", daemon=True)
        self._thread.start()

    def snapshot_path(self, event_id: int) -> Path:
        return self.outdir / f"{self.name}.event{event_id}.jpg"

    def clip_path(self, event_id: int) -> Path:
        return self.outdir / f"{self.name}.event{event_id}.mp4"

    def evidence(self, event_id: int) -> dict:
        """What events.json records for the event: the files once written, and the frames the clip covers."""
        snapshot = self.snapshot_path(event_id)
        return self._done.get(event_id, {"snapshot": str(snapshot) if event_id in self._seen else None, "clip": None})

    def write(self, frame: Frame, result: FrameResult) -> None:
        try:
            self._queue.put_nowait((frame, result))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            frame, result = item
            self._canvas = copy_into(self._canvas, frame.image)
            image = self._annotate(self._canvas, result)
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                continue
            entry = (frame.index, frame.time, jpeg)
            self._ring.append(entry)
            for event in result.events:
                if event.event_id in self._seen or event.end_frame is not None:
                    continue
                self._seen.add(event.event_id)
                self.snapshot_path(event.event_id).write_bytes(jpeg.tobytes())
                self._open[event.event_id] = {"frames": list(self._ring), "until": frame.time + self.post_s}
            for event_id, clip in list(self._open.items()):
                if clip["frames"][-1][0] != frame.index:
                    clip["frames"].append(entry)
                if frame.time >= clip["until"]:
                    self._finish(event_id)
        for event_id in list(self._open):  # the input ended first: a shorter clip
            self._finish(event_id)

    def _finish(self, event_id: int) -> None:
        frames = self._open.pop(event_id)["frames"]
        first = cv2.imdecode(frames[0][2], cv2.IMREAD_COLOR)
        size = (first.shape[1], first.shape[0])
        path = self.clip_path(event_id)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*self.codec), self.fps, size)
        for _, _, jpeg in frames:
            writer.write(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
        writer.release()
        self._done[event_id] = {"snapshot": str(self.snapshot_path(event_id)), "clip": str(path),
                                "clip_start_frame": int(frames[0][0]), "clip_end_frame": int(frames[-1][0]),
                                "clip_frames": len(frames)}

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
