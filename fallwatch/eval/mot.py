"""MOTChallenge files and detection recall against ground truth."""

from __future__ import annotations

import configparser
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fallwatch.track.matching import iou_matrix, linear_assignment
from fallwatch.types import Detections


def read_mot(path: str | Path, drop_ignored: bool = True) -> dict[int, np.ndarray]:
    """Rows of a MOT txt grouped by 1-based frame: (N, 6) of id, x1, y1, x2, y2, score-or-flag.

    In gt files column 7 is the evaluate flag: with `drop_ignored`, rows with flag 0 are left out.
    """
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    if data.size == 0:
        return {}
    if drop_ignored and "gt" in Path(path).parts:
        data = data[data[:, 6] != 0]
    out: dict[int, list] = defaultdict(list)
    for row in data:
        x, y, w, h = row[2:6]
        out[int(row[0])].append([row[1], x, y, x + w, y + h, row[6]])
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def sequence_info(folder: str | Path) -> dict[str, float]:
    parser = configparser.ConfigParser()
    parser.read(Path(folder) / "seqinfo.ini")
    seq = parser["Sequence"]
    return {
        "fps": float(seq["frameRate"]),
        "frames": int(seq["seqLength"]),
        "width": int(seq["imWidth"]),
        "height": int(seq["imHeight"]),
    }


def recall_at_iou(
    gt: dict[int, np.ndarray], pred: dict[int, np.ndarray], iou_thresh: float = 0.5
) -> tuple[float, int, int]:
    """One-to-one recall of ground-truth boxes: (recall, matched, total). Boxes are xyxy in columns 1:5."""
    matched = total = 0
    for frame, g in gt.items():
        total += len(g)
        p = pred.get(frame)
        if p is None or len(p) == 0:
            continue
        cost = 1.0 - iou_matrix(g[:, 1:5], p[:, 1:5])
        matches, _, _ = linear_assignment(cost, 1.0 - iou_thresh)
        matched += len(matches)
    return (matched / total if total else 0.0), matched, total


class UltralyticsBoxes:
    """The minimal Results-like object ultralytics' trackers read (conf, cls, xywh, xyxy, boolean indexing)."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray):
        self.xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, np.float32).reshape(-1)
        self.cls = np.zeros(len(self.conf), np.float32)
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([self.xyxy[:, :2] + wh / 2, wh], 1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, idx):
        return UltralyticsBoxes(self.xyxy[idx], self.conf[idx])


def ultralytics_tracker(kind: str, track_cfg):
    """ultralytics' own BYTETracker or BOTSORT with our config's thresholds, as `update(detections, image) ->
    (ids, xyxy)`: the reference our trackers are compared with (scripts/eval_mot.py, tests)."""
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.byte_tracker import BYTETracker

    args = SimpleNamespace(
        tracker_type=kind,
        track_high_thresh=track_cfg.track_high_thresh,
        track_low_thresh=track_cfg.track_low_thresh,
        new_track_thresh=track_cfg.new_track_thresh,
        track_buffer=track_cfg.track_buffer,
        match_thresh=track_cfg.match_thresh,
        fuse_score=track_cfg.fuse_score,
        gmc_method="sparseOptFlow",
        proximity_thresh=track_cfg.proximity_thresh,
        appearance_thresh=track_cfg.appearance_thresh,
        with_reid=False,
        model="auto",
    )
    tracker = BOTSORT(args) if kind == "botsort" else BYTETracker(args)

    def update(dets: Detections, image):
        out = tracker.update(UltralyticsBoxes(dets.boxes, dets.scores), image)
        out = np.asarray(out).reshape(-1, 8) if len(out) else np.zeros((0, 8))
        return out[:, 4].astype(int), out[:, :4]

    return update
