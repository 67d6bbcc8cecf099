"""Fit a student checkpoint's score map (fallwatch/pose/scores.py) on training crops of the crop cache.

The student and the reference (MoveNet Thunder as `fallwatch run` runs it: one pass, no flip test) see the same
crops through the pipeline's own crop path; the map is fitted on a seeded uniform sample of the training split and
checked on a sample of the held-out split: the share of joints at or above the action stage's missing-joint
threshold, raw and mapped, beside the reference's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from fallwatch.pose.scores import ScoreCalibration
from fallwatch.train.pose_data import CropSet, crop_keypoints, sample_split


def crop_scores(estimator, data: CropSet, idx: np.ndarray) -> np.ndarray:
    """(len(idx), 17) keypoint scores of `estimator` on stored crops `idx`, through its own crop path."""
    return crop_keypoints(estimator, data, idx)[..., 2]


def calibrate_checkpoint(checkpoint: Path, student, reference, data: CropSet, out: Path | None = None,
                         fit_crops: int = 2000, check_crops: int = 1000, seed: int = 0,
                         threshold: float = 0.2) -> dict:
    """Fit the map of `student` (a PoseEstimator on `checkpoint`, scores raw) against `reference` and write the
    checkpoint with it to `out` (default: in place, atomically). Returns what was fitted on and the check."""
    fit_idx = sample_split(data, "train", fit_crops, seed)
    calibration = ScoreCalibration.fit(crop_scores(student, data, fit_idx), crop_scores(reference, data, fit_idx))
    check_idx = sample_split(data, "val", check_crops, seed)
    raw, ref = crop_scores(student, data, check_idx), crop_scores(reference, data, check_idx)
    mapped = np.where(raw > 0, calibration(raw), 0.0)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["score_calibration"] = calibration.to_dict()
    out = out or checkpoint
    tmp = out.with_name(out.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out)

    def share(s: np.ndarray) -> float:
        return round(float((s >= threshold).mean()), 4)

    return {"checkpoint": str(out), "fit_crops": int(len(fit_idx)), "check_crops": int(len(check_idx)),
            "threshold": threshold,
            "heldout_share_at_or_above": {"raw": share(raw), "mapped": share(mapped), "reference": share(ref)},
            "heldout_median": {"raw": round(float(np.median(raw)), 4), "mapped": round(float(np.median(mapped)), 4),
                               "reference": round(float(np.median(ref)), 4)}}
