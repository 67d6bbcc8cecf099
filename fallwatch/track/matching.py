"""Association costs and assignment: IoU matrix, score fusion, appearance distance, `lap.lapjv` with a cost limit."""

from __future__ import annotations

import lap
import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes `a` (N, 4) and `b` (M, 4); 0 where a box has no area."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - iou_matrix(a, b)


def fuse_score(cost: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ByteTrack's score fusion: cost = 1 - IoU x detection score, so confident detections win ties."""
    if cost.size == 0:
        return cost
    return 1.0 - (1.0 - cost) * np.asarray(scores)[None, :]


def cosine_cost(track_features: np.ndarray, det_features: np.ndarray) -> np.ndarray:
    """(N, M) cosine distance in [0, 2] between L2-normalised embeddings."""
    if len(track_features) == 0 or len(det_features) == 0:
        return np.zeros((len(track_features), len(det_features)))
    return np.clip(1.0 - track_features @ det_features.T, 0.0, 2.0)


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching with pairs above `thresh` forbidden.

    Returns matches (K, 2) of (row, col), unmatched rows and unmatched cols.
    """
    rows, cols = cost.shape
    if cost.size == 0:
        return np.zeros((0, 2), int), np.arange(rows), np.arange(cols)
    _, x, y = lap.lapjv(np.ascontiguousarray(cost, np.float64), extend_cost=True, cost_limit=thresh)
    matched_rows = np.flatnonzero(x >= 0)
    matches = np.stack([matched_rows, x[matched_rows]], axis=1).astype(int)
    return matches, np.flatnonzero(x < 0), np.flatnonzero(y < 0)
