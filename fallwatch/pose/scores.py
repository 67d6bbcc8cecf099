"""Keypoint scores on a common scale: a per-joint monotone map from one model's scores to a reference model's.

Why: the action stage treats a joint scored below `action.min_keypoint_score` as missing, and that threshold and
the ST-GCN were set on MoveNet's scores. A distilled student ranks its joints sensibly but scores them lower (its
sigmoid maps are trained towards blurred, blended targets): at epoch 12 of its training our W18-small-like student
scored a median 0.31 where MoveNet scored 0.54 on the same people, and handed the action stage windows with 30 % of
the joints missing instead of 7 %. Quantile matching on the same crops — the model's k-th percentile of a joint's
score becomes the reference's k-th percentile — keeps the model's ranking of its joints (the map is increasing) and
gives its scores the reference's distribution, so thresholds mean the same whichever model ran. Fitted once per
checkpoint on training crops and stored in it (`fallwatch train pose`, `scripts/calibrate_pose_scores.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScoreCalibration:
    source: np.ndarray  # (K, Q) the model's raw scores at Q quantiles, strictly increasing per joint
    target: np.ndarray  # (K, Q) the reference's scores at the same quantiles, non-decreasing per joint

    @classmethod
    def fit(cls, raw: np.ndarray, reference: np.ndarray, knots: int = 41) -> ScoreCalibration:
        """(N, K) raw scores of the model and (N, K) scores of the reference on the same N crops (NaN: left out)."""
        raw, reference = np.asarray(raw, np.float64), np.asarray(reference, np.float64)
        if raw.shape != reference.shape or raw.ndim != 2 or len(raw) < 2:
            raise ValueError(f"need (N, K) scores of both models on the same crops, got {raw.shape} and "
                             f"{reference.shape}")
        q = np.linspace(0.0, 1.0, knots)
        source, target = [], []
        for j in range(raw.shape[1]):
            a, b = raw[:, j], reference[:, j]
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if len(a) < 2 or len(b) < 2:
                raise ValueError(f"joint {j}: fewer than two finite scores to fit")
            source.append(_strictly_increasing(np.quantile(a, q)))
            target.append(np.maximum.accumulate(np.quantile(b, q)))
        return cls(np.array(source, np.float32), np.array(target, np.float32))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """(..., K) raw scores -> (..., K) on the reference's scale (clamped to its range at the ends)."""
        scores = np.asarray(scores, np.float32)
        out = np.empty_like(scores)
        for j in range(scores.shape[-1]):
            out[..., j] = np.interp(scores[..., j], self.source[j], self.target[j])
        return out

    def to_dict(self) -> dict:
        return {"source": self.source.tolist(), "target": self.target.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> ScoreCalibration:
        return cls(np.asarray(d["source"], np.float32), np.asarray(d["target"], np.float32))


def _strictly_increasing(x: np.ndarray) -> np.ndarray:
    """Quantiles repeat where many scores are equal (e.g. 0); interpolation needs distinct knots."""
    x = np.maximum.accumulate(x)
    return x + np.arange(len(x)) * 1e-6
