"""Labelled video clips for fall evaluation and skeleton extraction.

The generic label format (`fallwatch eval falls VIDEOS --labels CSV`) is one row per clip:
    file,fall_start_frame,fall_end_frame,roi,group
`file` is relative to the CSV's folder (or absolute); the fall frames are 0-based in decode order and empty for a
clip without a fall; `roi` (optional) is "x1,y1,x2,y2" in pixels to process only that region (URFD's RGB half);
`group` (optional) names the recording or subject, so splits never put one recording on both sides.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Clip:
    path: Path
    name: str
    fall_start: int | None
    fall_end: int | None
    roi: tuple[int, int, int, int] | None = None
    group: str = ""

    @property
    def is_fall(self) -> bool:
        return self.fall_start is not None


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


def shared_clips(data: Path) -> dict[str, list[Clip]]:
    """The development split of ../shared/data, by recording: test = URFD falls 21-30, GMDCSA subject 3 (5 falls,
    5 daily activities incl. squats and bending) and the pedestrian videos; train = every other clip."""
    urfd = urfd_clips(data / "videos" / "urfd")
    gmd = gmdcsa_clips(data / "videos" / "gmdcsa24")
    test = [c for c in urfd if int(c.name.split("-")[1]) >= 21] + [c for c in gmd if c.group == "gmdcsa-S3"]
    train = [c for c in urfd + gmd if c not in test]
    return {"train": train, "test": test, "fall_free": pedestrian_clips(data / "mot")}
