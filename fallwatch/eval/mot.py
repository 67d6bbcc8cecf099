"""MOTChallenge files and detection recall against ground truth."""

from __future__ import annotations

import configparser
from collections import defaultdict
from pathlib import Path

import numpy as np

from fallwatch.track.matching import iou_matrix, linear_assignment


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
