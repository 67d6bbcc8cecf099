"""Frame sources: a video file, a folder of images, a webcam index or an rtsp/http URL.

A reader thread decodes ahead into a bounded queue so decoding overlaps inference. Files are read completely and in
order (the queue blocks); live sources keep only the newest few frames and drop stale ones instead of lagging, and
a dropped network stream is reopened with exponential back-off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fallwatch.errors import FallwatchError
from fallwatch.io.framepool import FramePool, read_into
from fallwatch.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.I)


class SourceError(FallwatchError, RuntimeError):
    """An input that cannot be opened or decoded; the message is one line."""


@dataclass(frozen=True)
class SourceInfo:
    spec: str
    name: str  # file stem used for output names
    kind: str  # file | folder | webcam | stream
    fps: float
    width: int
    height: int
    frame_count: int | None  # None for live sources
    is_live: bool


@dataclass(frozen=True)
class ReaderSettings:
    """The subset of `RunConfig` the readers need (kept separate so sources do not depend on the config tree)."""

    queue_size: int
    live_queue_size: int
    folder_fps: float
    reconnect_initial_s: float
    reconnect_max_s: float
    reconnect_attempts: int

    @classmethod
    def from_config(cls, run) -> ReaderSettings:
        """From a `RunConfig` (duck-typed: any object with the same attribute names)."""
        return cls(**{name: getattr(run, name) for name in cls.__dataclass_fields__})


@dataclass
class StreamStats:
    """What happened to a live stream: times it was reopened, and whether it was lost for good."""

    reconnects: int = 0
    lost: bool = False


class FrameSource:
    """Iterate `Frame`s from a background reader; use as a context manager so the thread is always stopped."""

    def __init__(self, info: SourceInfo, produce: Iterator[Frame], settings: ReaderSettings,
                 stats: StreamStats | None = None):
        self.info = info
        self.stats = stats or StreamStats()
        self._produce = produce
        live = info.is_live
        self._queue: queue.Queue = queue.Queue(maxsize=settings.live_queue_size if live else settings.queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fallwatch-reader", daemon=True)
        self.dropped = 0
        self._started = False

    _DONE = object()

    def _run(self) -> None:
        try:
            for frame in self._produce:
                if self._stop.is_set():
                    break
                self._put(frame)
        except Exception as exc:  # forwarded to the consumer, raised there
            self._put(exc)
        finally:
            self._put(self._DONE)

    def _put(self, item) -> None:
        """Files: wait for room, never drop. Live: make room by dropping the stalest frame."""
        live = self.info.is_live
        while not self._stop.is_set():
            try:
                self._queue.put(item, block=not live, timeout=None if live else 0.1)
                return
            except queue.Full:
                if live:
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()
                        self.dropped += 1

    def __iter__(self) -> Iterator[Frame]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._started:
            self._thread.join(timeout=5)
        with contextlib.suppress(queue.Full):  # a consumer still waiting for a frame ends instead of hanging
            self._queue.put_nowait(self._DONE)
        close = getattr(self._produce, "close", None)
        if close is not None and not self._thread.is_alive():
            close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(spec: str, settings: ReaderSettings) -> FrameSource:
    """Open `spec` (file, folder, webcam index, URL), check that it yields a frame, and start nothing yet."""
    spec = str(spec)
    if spec.isdigit():
        return _open_capture(spec, int(spec), "webcam", settings)
    if _URL.match(spec):
        return _open_capture(spec, spec, "stream", settings)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _open_folder(path, settings)
    if not path.exists():
        raise SourceError(f"input not found: {spec}")
    if not path.is_file():
        raise SourceError(f"input is not a file, folder, webcam index or URL: {spec}")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise SourceError(f"cannot read {spec}: {exc.strerror or exc}") from None
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _open_images([path], path.stem, spec, settings)
    return _open_video_file(path, settings)


def _open_video_file(path: Path, settings: ReaderSettings) -> FrameSource:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot decode {path}: not a video OpenCV can open")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise SourceError(f"{path} has no decodable frames (empty or corrupt video)")
    fps = _container_fps(cap, settings.folder_fps)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    info = SourceInfo(str(path), path.stem, "file", fps, first.shape[1], first.shape[0], count, False)
    return FrameSource(info, _video_frames(cap, first, fps, _pool(settings.queue_size)), settings)


def _pool(queue_size: int) -> FramePool:
    """Room for a full queue plus the frames the pipeline, the video writer and the evidence recorder hold."""
    return FramePool(queue_size + 8)


def _container_fps(cap: cv2.VideoCapture, fallback: float) -> float:
    """The rate the container declares, or `fallback` where it declares none or nonsense."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else fallback


def _video_frames(cap: cv2.VideoCapture, first: np.ndarray, fps: float, pool: FramePool) -> Iterator[Frame]:
    """Frames with container timestamps where they are monotonic; index / fps otherwise."""
    try:
        index, image, last_t = 0, first, -1.0
        while image is not None:
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = pos_ms / 1000.0 if pos_ms and np.isfinite(pos_ms) else index / fps
            if t <= last_t:
                t = index / fps if index / fps > last_t else last_t + 1.0 / fps
            last_t = t
            yield Frame(index, t, image)
            index += 1
            ok, image = read_into(cap, pool, image)
            if not ok:
                image = None
    finally:
        cap.release()


def _open_folder(path: Path, settings: ReaderSettings) -> FrameSource:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SourceError(f"folder {path} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return _open_images(files, path.name, str(path), settings)


def _open_images(files: list[Path], name: str, spec: str, settings: ReaderSettings) -> FrameSource:
    first = None
    for f in files:
        first = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if first is not None:
            break
    if first is None:
        raise SourceError(f"no readable image in {spec}")
    info = SourceInfo(spec, name, "folder", settings.folder_fps, first.shape[1], first.shape[0], len(files), False)
    return FrameSource(info, _image_frames(files, settings.folder_fps), settings)


def _image_frames(files: list[Path], fps: float) -> Iterator[Frame]:
    index = 0
    for f in files:
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable image %s", f)
            continue
        yield Frame(index, index / fps, image)
        index += 1


STREAM_TIMEOUT_MS = 5000  # opening or reading a network stream gives up after this (FFmpeg's own waits are long)


def _capture(target):
    """A webcam index as is; a URL through FFmpeg over TCP (no lost UDP packets, and a server that dies closes the
    connection at once) with open and read timeouts, so a dead stream is noticed in seconds."""
    if not isinstance(target, str):
        return cv2.VideoCapture(target)
    if target.lower().startswith("rtsp") and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                     cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])


def _open_capture(spec: str, target, kind: str, settings: ReaderSettings) -> FrameSource:
    spec = redact(spec)  # what is shown and recorded; `target` alone keeps the credentials
    cap = _capture(target)
    ok, first = (cap.read() if cap.isOpened() else (False, None))
    if not ok or first is None:
        cap.release()
        what = f"webcam {spec}" if kind == "webcam" else f"stream {spec}"
        raise SourceError(f"cannot open {what}: no frame received")
    fps = _container_fps(cap, settings.folder_fps)
    name = f"webcam{spec}" if kind == "webcam" else _stream_name(spec)
    info = SourceInfo(spec, name, kind, fps, first.shape[1], first.shape[0], None, True)
    stats = StreamStats()
    frames = _live_frames(cap, target, first, kind, settings, stats, _pool(settings.live_queue_size))
    return FrameSource(info, frames, settings, stats)


_SECRET_PARAMS = re.compile(r"(token|key|pass|pwd|secret|auth|sig|signature|credential)", re.I)


def redact(url: str) -> str:
    """A URL safe to show: the password of `user:password@` and the values of secret-looking query parameters
    (token, key, password, secret, auth, signature, ...) become `***`. Anything that is not a URL is returned as is.
    Camera URLs carry credentials; only the capture itself ever sees the real one."""
    if not re.match(r"^[a-z][a-z0-9+.-]*://", url, re.I):
        return url
    scheme, rest = url.split("://", 1)
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    path, question, query = tail.partition("?")
    if question:
        query = "&".join(f"{k}=***" if sep and _SECRET_PARAMS.search(k) else f"{k}{sep}{v}"
                         for k, sep, v in (item.partition("=") for item in query.split("&")))
    return f"{scheme}://{netloc}{slash}{path}{question}{query}"


def _stream_name(url: str) -> str:
    url = re.sub(r"^([a-z]+://)[^/@]*@", r"\1", url, flags=re.I)  # never the user or password in a file name
    tail = re.sub(r"^[a-z]+://", "", url, flags=re.I).split("?")[0].rstrip("/")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)[-60:] or "stream"


def _live_frames(cap, target, first: np.ndarray, kind: str, settings: ReaderSettings,
                 stats: StreamStats, pool: FramePool) -> Iterator[Frame]:
    """Wall-clock timestamps; a network stream that stops delivering is reopened with exponential back-off (counted
    in `stats`)."""
    t0 = time.monotonic()
    index, image, like = 0, first, first
    try:
        while True:
            if image is not None:
                yield Frame(index, time.monotonic() - t0, image)
                index += 1
                like = image
            ok, image = read_into(cap, pool, like)
            if ok:
                continue
            image = None
            if kind != "stream":
                return
            cap.release()
            cap = _reconnect(target, settings)
            if cap is None:
                stats.lost = True
                return
            stats.reconnects += 1
    finally:
        if cap is not None:
            cap.release()


def _reconnect(target, settings: ReaderSettings):
    wait = settings.reconnect_initial_s
    for attempt in range(1, settings.reconnect_attempts + 1):
        log.warning("stream %s dropped; reconnecting in %.1fs (attempt %d)", redact(str(target)), wait, attempt)
        time.sleep(wait)
        cap = _capture(target)
        if cap.isOpened():
            return cap
        cap.release()
        wait = min(wait * 2, settings.reconnect_max_s)
    log.error("stream %s did not come back after %d attempts", redact(str(target)), settings.reconnect_attempts)
    return None
