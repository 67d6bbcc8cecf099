"""Output segments for long runs: a week-long live run never writes one endless file.

The streamed outputs (frames.jsonl, the annotated video, mot.txt) start a new segment together, between two frames,
when the segment has covered `output.rotate_s` seconds of input or its frames.jsonl has reached `output.rotate_mb`:
a line is never split and every segment's video is closed (so playable) when the next one starts. The first
segment keeps the plain names (`cam.frames.jsonl`, `cam.mp4`); a later one is named after its first frame
(`cam.from90000.frames.jsonl`, `cam.from90000.mp4`), so a reader finds each frame's segment without the summary.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from pathlib import Path

_FROM = re.compile(r"\.from(\d+)$")


def segment_name(name: str, start_frame: int) -> str:
    return name if start_frame == 0 else f"{name}.from{start_frame}"


def base_name(stem: str) -> str:
    """`cam.from90000` -> `cam`; any other name unchanged."""
    return _FROM.sub("", stem)


def segment_files(outdir: Path, name: str, suffix: str) -> list[tuple[int, Path]]:
    """(first frame, path) of every segment of `<name><suffix>` in `outdir`, in frame order."""
    found = []
    plain = outdir / f"{name}{suffix}"
    if plain.is_file():
        found.append((0, plain))
    pattern = f"{glob.escape(name)}.from*{glob.escape(suffix)}"
    for path in outdir.glob(pattern):
        match = _FROM.search(path.name[: -len(suffix)])
        if match and base_name(path.name[: -len(suffix)]) == name:
            found.append((int(match.group(1)), path))
    return sorted(found)


ROTATED = ("jsonl", "video", "mot")  # the outputs streamed frame by frame
SEGMENT_SUFFIXES = (".frames.jsonl", ".mp4", ".mot.txt")


def remove_stale_segments(outdir: Path, name: str) -> None:
    """Later segments an earlier run of the same name left in `outdir`: a new run must not be read with them."""
    for suffix in SEGMENT_SUFFIXES:
        for start, path in segment_files(outdir, name, suffix):
            if start > 0:
                path.unlink(missing_ok=True)


class Segmenter:
    """Starts new segments of the streamed sinks after `every_s` seconds of input or `max_bytes` of frames.jsonl;
    `paths_for(stem)` gives a segment's output paths. `segments` lists them for the run summary."""

    def __init__(self, name: str, paths_for: Callable[[str], dict[str, Path]], every_s: float | None,
                 max_bytes: int | None, first: dict[str, Path]):
        self.name = name
        self.paths_for = paths_for
        self.every_s = every_s
        self.max_bytes = max_bytes
        self.start_time: float | None = None
        self.segments = [{"start_frame": 0, "start_time": None, "files": _files(first)}]

    def before_write(self, index: int, time: float, sinks: dict) -> None:
        """Called before frame `index` reaches the sinks: rotates them first if the current segment is done."""
        if self.start_time is None:
            self.start_time = time
            self.segments[0]["start_time"] = round(time, 3)
            return
        size = sinks["jsonl"].bytes_written if "jsonl" in sinks else 0
        by_time = self.every_s is not None and time - self.start_time >= self.every_s
        by_size = self.max_bytes is not None and size >= self.max_bytes
        if not (by_time or by_size):
            return
        paths = self.paths_for(segment_name(self.name, index))
        for key in ROTATED:
            if key in sinks:
                sinks[key].rotate(paths[key])
        self.start_time = time
        self.segments.append({"start_frame": index, "start_time": round(time, 3), "files": _files(paths)})


def _files(paths: dict[str, Path]) -> dict[str, str]:
    return {key: str(paths[key]) for key in ROTATED if key in paths}
