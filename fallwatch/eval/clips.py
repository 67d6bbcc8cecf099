"""Labelled video clips for fall evaluation and skeleton extraction.

The generic label format (`fallwatch eval falls VIDEOS --labels CSV`) is one row per clip:
    file,fall_start_frame,fall_end_frame,roi,group
`file` is relative to the CSV's folder (or absolute); the fall frames are 0-based in decode order and empty for a
clip without a fall; `roi` (optional) is "x1,y1,x2,y2" in pixels to process only that region (URFD's RGB half);
`group` (optional) names the recording or subject, so splits never put one recording on both sides.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fallwatch.errors import FallwatchError
from fallwatch.types import Detections


@dataclass(frozen=True)
class Clip:
    path: Path
    name: str
    fall_start: int | None
    fall_end: int | None
    roi: tuple[int, int, int, int] | None = None
    group: str = ""
    more_falls: tuple[tuple[int, int], ...] = ()  # further (start, end) falls in the same clip

    @property
    def is_fall(self) -> bool:
        return self.fall_start is not None

    def view(self, image: np.ndarray) -> np.ndarray:
        """The part of a decoded frame this clip is about (its `roi`, e.g. URFD's RGB half), or the whole frame."""
        if self.roi is None:
            return image
        x1, y1, x2, y2 = self.roi
        return np.ascontiguousarray(image[y1:y2, x1:x2])


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def read_labels_csv(path: str | Path) -> list[Clip]:
    path = Path(path)
    clips = []
    with open(path) as fh:
        for row in csv.DictReader(fh):
            video = Path(row["file"])
            video = video if video.is_absolute() else path.parent / video
            roi = tuple(int(v) for v in row["roi"].split(",")) if row.get("roi") else None
            clips.append(Clip(video, video.stem, _int_or_none(row.get("fall_start_frame")),
                              _int_or_none(row.get("fall_end_frame")), roi, row.get("group") or video.stem))
    return clips


def urfd_clips(folder: Path) -> list[Clip]:
    """URFD falls, camera 0: the RGB half of each frame; onset = first 'falling' (0) frame, end = first 'lying'."""
    labels: dict[str, list[tuple[int, int]]] = {}
    with open(folder / "labels" / "urfall-cam0-falls.csv") as fh:
        for row in csv.DictReader(fh):
            labels.setdefault(row["name"], []).append((int(row["frame"]) - 1, int(row["label"])))
    clips = []
    for name, rows in sorted(labels.items()):
        start = min(f for f, lab in rows if lab == 0)
        end = min((f for f, lab in rows if lab == 1), default=start + 30)
        clips.append(Clip(folder / "videos" / f"{name}-cam0.mp4", name, start, end, (320, 0, 640, 240), f"urfd-{name}"))
    return clips


def gmdcsa_clips(folder: Path) -> list[Clip]:
    clips = []
    with open(folder / "labels.csv") as fh:
        for row in csv.DictReader(fh):
            video = folder / row["file"]
            clips.append(Clip(video, video.stem, _int_or_none(row["fall_start_frame"]),
                              _int_or_none(row["fall_end_frame"]), None, f"gmdcsa-S{row['subject']}"))
    return clips


def pedestrian_clips(folder: Path) -> list[Clip]:
    """Fall-free MOT videos (people walking): every alarm there is false."""
    videos = {"TUD-Campus": "TUD-Campus.mp4", "TUD-Stadtmitte": "TUD-Stadtmitte.mp4", "PETS09-S2L1": "vtest.avi"}
    return [Clip(folder / seq / f, seq, None, None, None, f"mot-{seq}") for seq, f in videos.items()]


def _recording(name: str) -> str:
    """The recording a clip of videos/falls or videos/fall_free belongs to, so a split never cuts through one:
    a Le2i room, a dataset's own sequence, one phone author; `urfd_fall01_cam1` is URFD fall-01 seen from the
    ceiling, the same event as the development clip fall-01."""
    if name.startswith("le2i_"):
        return "le2i-" + name.split("_")[1]
    if name.startswith("urfd_fall01"):
        return "urfd-fall-01"
    if name.startswith("urfd_adl"):
        return "urfd-" + name.split("_")[1]
    for family in ("fdd_bedroom", "thanhnc58", "tawinz", "clideo_office", "mattress_gray", "vut_hall", "kth_",
                   "park_path"):
        if name.startswith(family):
            return family.rstrip("_")
    return name


def labelled_fall_clips(folder: Path) -> list[Clip]:
    """videos/falls: one row per fall (a clip with two falls has two rows), `other` clips one row without."""
    by_file: dict[str, list[dict]] = {}
    with open(folder / "labels.csv") as fh:
        for row in csv.DictReader(fh):
            by_file.setdefault(row["file"], []).append(row)
    clips = []
    for file, rows in sorted(by_file.items()):
        video = folder / file
        falls = sorted((int(r["fall_start_frame"]), int(r["fall_end_frame"])) for r in rows if r["fall_start_frame"])
        first = falls[0] if falls else (None, None)
        clips.append(Clip(video, video.stem, first[0], first[1], None, _recording(video.stem), tuple(falls[1:])))
    return clips


def fall_free_clips(folder: Path) -> list[tuple[str, Clip]]:
    """videos/fall_free: (category, clip) - street cameras, crowds, handheld, indoor daily life, other."""
    with open(folder / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    return [(r["category"], Clip(folder / r["file"], Path(r["file"]).stem, None, None, None,
                                 _recording(Path(r["file"]).stem))) for r in rows]


# The second test split (issue 13), fixed before any model was trained on these sources or any result on them was
# seen: whole sources held out - the Le2i home room (both camera views, falls and daily activities), FDD's bedroom,
# the office and grey-mattress staged falls and the 1080p60 phone clips - and half of the fall-free recordings
# (by category, recordings sorted by name, alternately test and train, the first to test).
TEST_NEW_SOURCES = ("le2i-home", "fdd_bedroom", "clideo_office", "mattress_gray", "tawinz")


def new_clips(data: Path) -> dict[str, list[Clip]]:
    """The new sources of ../shared/data (videos/falls, videos/fall_free) split by source and recording."""
    falls = labelled_fall_clips(data / "videos" / "falls")
    test = [c for c in falls if c.group in TEST_NEW_SOURCES]
    train = [c for c in falls if c.group not in TEST_NEW_SOURCES]
    by_category: dict[str, list[Clip]] = {}
    for category, clip in fall_free_clips(data / "videos" / "fall_free"):
        by_category.setdefault(category, []).append(clip)
    for category in sorted(by_category):
        recordings = sorted({c.group for c in by_category[category]})
        for i, recording in enumerate(recordings):
            side = test if i % 2 == 0 else train
            side.extend(c for c in by_category[category] if c.group == recording)
    return {"train_new": train, "test_new": test}


def shared_clips(data: Path) -> dict[str, list[Clip]]:
    """The splits of ../shared/data, by recording. Development split: test = URFD falls 21-30, GMDCSA subject 3
    (5 falls, 5 daily activities incl. squats and bending) and the pedestrian videos (`fall_free`); train = every
    other clip. New sources: `test_new` and `train_new` (`new_clips`)."""
    urfd = urfd_clips(data / "videos" / "urfd")
    gmd = gmdcsa_clips(data / "videos" / "gmdcsa24")
    test = [c for c in urfd if int(c.name.split("-")[1]) >= 21] + [c for c in gmd if c.group == "gmdcsa-S3"]
    train = [c for c in urfd + gmd if c not in test]
    return {"train": train, "test": test, "fall_free": pedestrian_clips(data / "mot"), **new_clips(data)}


def frame_size(clip: Clip) -> tuple[int, int]:
    """(width, height) of the part of the clip's frames that is processed (its `roi`, or the whole frame)."""
    if clip.roi is not None:
        x1, y1, x2, y2 = clip.roi
        return x2 - x1, y2 - y1
    import cv2

    cap = cv2.VideoCapture(str(clip.path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()


class DetectionCache:
    """Per-clip detector output in `folder/<clip>.npz` (frame, box, score rows + the detect config)."""

    def __init__(self, folder: Path | None, detect_cfg: dict):
        self.folder, self.key = folder, json.dumps(detect_cfg, sort_keys=True)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def load(self, clip: Clip) -> dict[int, Detections] | None:
        path = None if self.folder is None else self.folder / f"{clip.name}.npz"
        if path is None or not path.is_file():
            return None
        with np.load(path) as z:
            if str(z["detect_config"]) != self.key:
                raise FallwatchError(f"{path}: made with other detector settings; use another cache folder")
            order = np.argsort(z["frame"], kind="stable")
            frame, box, score = z["frame"][order], z["box"][order], z["score"][order]
        bounds = np.searchsorted(frame, np.arange((int(frame.max()) + 2) if len(frame) else 1))
        spans = zip(bounds[:-1], bounds[1:], strict=True)
        return {f: Detections(box[a:b], score[a:b]) for f, (a, b) in enumerate(spans)}

    def save(self, clip: Clip, per_frame: dict[int, Detections]) -> None:
        if self.folder is None:
            return
        items = sorted(per_frame.items())
        frame = np.concatenate([np.full(len(d.scores), f, np.int64) for f, d in items] or [np.zeros(0, np.int64)])
        box = np.concatenate([d.boxes for _, d in items] or [np.zeros((0, 4), np.float32)])
        score = np.concatenate([d.scores for _, d in items] or [np.zeros(0, np.float32)])
        np.savez_compressed(self.folder / f"{clip.name}.npz", frame=frame, box=box, score=score,
                            detect_config=self.key)
