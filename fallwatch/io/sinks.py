"""Output sinks. Each takes `write(frame, result)` per frame and `close()` once.

`frames.jsonl` is flushed every frame so an interrupted run keeps every finished frame; JSON documents are written
to a temporary file and renamed so a reader never sees half a file; the video is encoded on a writer thread.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fallwatch.io.framepool import copy_into
from fallwatch.types import FallEvent, Frame, FrameResult, HeldPerson


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _r(x: float, digits: int) -> float | None:
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def persons_of(result: FrameResult) -> list[dict[str, Any]]:
    """The `persons` list of one frames.jsonl line. Fields of stages that did not run are absent, not faked."""
    if result.tracks is not None:
        boxes, scores, ids = result.tracks.boxes, result.tracks.scores, result.tracks.ids
    else:
        boxes, scores, ids = result.detections.boxes, result.detections.scores, None
    persons = []
    for i in range(len(boxes)):
        person: dict[str, Any] = {}
        if ids is not None:
            person["id"] = int(ids[i])
        person["box"] = [_r(v, 1) for v in boxes[i]]
        person["score"] = _r(scores[i], 3)
        if result.poses is not None:
            kp = result.poses.keypoints[i]
            person["keypoints"] = [[_r(x, 1), _r(y, 1), _r(s, 3)] for x, y, s in kp]
        if result.actions is not None:
            actions = result.actions
            p = actions.fall_prob[i]
            person["fall_prob"] = _r(p, 3) if np.isfinite(p) else None
            person["state"] = actions.state[i]
            if actions.event_id is not None and actions.event_id[i]:
                person["event_id"] = int(actions.event_id[i])
                person["down_since"] = _r(actions.down_since[i], 3)
                person["long_lie"] = bool(actions.long_lie[i])
        persons.append(person)
    if result.actions is not None:
        persons.extend(_held(h) for h in result.actions.held)
    return persons


def _held(person: HeldPerson) -> dict[str, Any]:
    """An unseen person kept at the last position (fallen, down or pending): no score or keypoints of this frame."""
    out: dict[str, Any] = {"id": int(person.id), "box": [_r(v, 1) for v in person.box], "seen": False,
                           "fall_prob": _r(person.fall_prob, 3) if np.isfinite(person.fall_prob) else None,
                           "state": person.state}
    if person.event_id:
        out["event_id"] = int(person.event_id)
        out["down_since"] = _r(person.down_since, 3)
        out["long_lie"] = person.long_lie
    return out


def event_dict(event: FallEvent, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    down_s = None
    if event.end_time is not None and event.down_since is not None:
        down_s = _r(max(0.0, event.end_time - event.down_since), 3)
    return {
        "event_id": int(event.event_id),
        "id": int(event.id),
        "track_ids": [int(t) for t in event.track_ids],
        "start_frame": int(event.start_frame),
        "end_frame": None if event.end_frame is None else int(event.end_frame),
        "start_time": _r(event.start_time, 3),
        "end_time": None if event.end_time is None else _r(event.end_time, 3),
        "alarm_frame": int(event.alarm_frame),
        "alarm_time": _r(event.alarm_time, 3),
        "peak_prob": _r(event.peak_prob, 3),
        "box_at_start": [_r(v, 1) for v in event.box_at_start],
        "down_since": None if event.down_since is None else _r(event.down_since, 3),
        "down_s": down_s,
        "long_lie_frame": event.long_lie_frame,
        "long_lie_time": None if event.long_lie_time is None else _r(event.long_lie_time, 3),
        "end_reason": event.end_reason,
        **(extra or {}),
    }


class _LineFile:
    """A text file written line by line and flushed each time; `rotate` closes it and continues in another."""

    def __init__(self, path: Path):
        self._open(path)

    def _open(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.bytes_written = 0

    def _write(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()
        self.bytes_written += len(text)  # the lines are ASCII (json.dumps escapes the rest)

    def rotate(self, path: Path) -> None:
        self.close()
        self._open(path)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class JsonlSink(_LineFile):
    """One JSON object per frame, flushed as soon as the frame is done."""

    def write(self, frame: Frame, result: FrameResult) -> None:
        line = {"frame": result.index, "time": _r(result.time, 3), "persons": persons_of(result)}
        self._write(json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n")


class MotSink(_LineFile):
    """MOTChallenge rows `frame,id,left,top,width,height,conf,-1,-1,-1` with 1-based frames (tracked runs only)."""

    def write(self, frame: Frame, result: FrameResult) -> None:
        tracks = result.tracks
        if tracks is None:
            return
        rows = []
        for tid, (x1, y1, x2, y2), s in zip(tracks.ids, tracks.boxes, tracks.scores, strict=True):
            w, h = x2 - x1, y2 - y1
            rows.append(f"{result.index + 1},{int(tid)},{x1:.2f},{y1:.2f},{w:.2f},{h:.2f},{s:.3f},-1,-1,-1\n")
        self._write("".join(rows))


class EventSink:
    """`events.json`: rewritten whenever an event opens, changes (a new track id, a long lie) or closes, and once
    at the end; open events have `end_frame: null`."""

    def __init__(self, path: Path, source: str, fps: float, extra: Callable[[int], dict] | None = None):
        self.path = path
        self._extra = extra  # event_id -> more fields: the evidence files, what became of the alert messages
        self._head = {"source": source, "fps": _r(fps, 3)}
        self._events: dict[int, FallEvent] = {}
        self._dump()

    @property
    def events(self) -> list[FallEvent]:
        return list(self._events.values())

    def write(self, frame: Frame, result: FrameResult) -> None:
        self.record(result.events)

    def record(self, events) -> None:
        for event in events:
            self._events[event.event_id] = event
        if events:
            self._dump()

    def _dump(self) -> None:
        events = sorted(self._events.values(), key=lambda e: (e.alarm_frame, e.event_id))
        write_json_atomic(self.path, {**self._head, "events": [
            event_dict(e, self._extra(e.event_id) if self._extra else None) for e in events]})

    def close(self) -> None:
        self._dump()


class VideoSink:
    """Annotated video, same size, rate and frame count as the input, encoded on a writer thread."""

    def __init__(
        self,
        path: Path,
        fps: float,
        size: tuple[int, int],
        codec: str,
        annotate: Callable[[np.ndarray, FrameResult], np.ndarray],
        queue_size: int,
    ):
        self.path = path
        self.size = size
        self.fps = fps
        self.codec = codec
        self._annotate = annotate
        self._canvas: np.ndarray | None = None  # reused drawing surface (this writer's thread only)
        self._writer = self._open(path)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self.frames_written = 0
        self._thread = threading.Thread(target=self._run, name="fallwatch-writer", daemon=True)
        self._thread.start()

    def _open(self, path: Path):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*self.codec), self.fps, self.size)
        if not writer.isOpened():
            raise OSError(f"cannot open a {self.codec} video writer for {path}")
        return writer

    def rotate(self, path: Path) -> None:
        """Frames written after this go to `path`; the current file is closed (playable) by the writer thread."""
        if self._error is not None:
            raise self._error
        self.path = path
        self._queue.put(path)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                if isinstance(item, Path):
                    self._writer.release()
                    self._writer = self._open(item)
                    continue
                image, result = item
                self._canvas = copy_into(self._canvas, image)
                canvas = self._annotate(self._canvas, result)
                if (canvas.shape[1], canvas.shape[0]) != self.size:
                    canvas = cv2.resize(canvas, self.size, interpolation=cv2.INTER_AREA)
                self._writer.write(canvas)
                self.frames_written += 1
            except Exception as exc:  # reported on the main thread at the next write/close
                self._error = exc

    def write(self, frame: Frame, result: FrameResult) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame.image, result))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._writer.release()
        if self._error is not None:
            raise self._error
