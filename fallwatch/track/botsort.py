"""BoT-SORT (Aharon et al., 2022): ByteTrack with an (x, y, w, h) Kalman state, camera-motion compensation and an
optional appearance cue.

Before association, predicted track states are warped by the camera motion estimated between frames, so a pan or
a shaking camera does not break every match. With an embedder, the first-round cost is min(IoU cost, appearance
cost), where the appearance cost only counts for pairs that overlap (IoU >= proximity_thresh) and look alike
(similarity >= appearance_thresh) - so appearance can rescue a match but never create one across the room.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fallwatch.config import TrackConfig
from fallwatch.track.bytetrack import ByteTracker, Track
from fallwatch.track.gmc import SparseFlowGMC
from fallwatch.track.kalman import XYWH, warp_states
from fallwatch.track.matching import cosine_cost, fuse_score, iou_cost

Embedder = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (image, boxes (N, 4)) -> (N, D) L2-normalised


class BoTSORT(ByteTracker):
    kalman = XYWH

    def __init__(self, cfg: TrackConfig, fps: float, embedder: Embedder | None = None):
        super().__init__(cfg, fps)
        self.gmc = None
        if cfg.gmc_method == "sparseOptFlow":
            self.gmc = SparseFlowGMC(cfg.gmc_downscale, cfg.gmc_min_motion_px)
        self.embedder = embedder if cfg.with_reid else None
        self.last_warp = np.eye(2, 3)

    def _features(self, image, boxes):
        if self.embedder is None or image is None or len(boxes) == 0:
            return None
        feats = np.asarray(self.embedder(image, boxes), np.float64)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def _compensate_motion(self, image, tracks: list[Track], boxes) -> None:
        if self.gmc is None or image is None:
            return
        self.last_warp = self.gmc.apply(image)
        if not tracks or np.allclose(self.last_warp, np.eye(2, 3)):
            return
        mean, cov = warp_states(np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]), self.last_warp)
        for t, m, c in zip(tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _first_cost(self, tracks, boxes, scores, feats) -> np.ndarray:
        cost = iou_cost(self._predicted_boxes(tracks), boxes)
        far = cost > 1.0 - self.cfg.proximity_thresh
        if self.cfg.fuse_score:
            cost = fuse_score(cost, scores)
        if feats is not None and len(tracks) and len(boxes):
            track_feats = np.stack([t.feature if t.feature is not None else np.zeros(feats.shape[1]) for t in tracks])
            appearance = cosine_cost(track_feats, feats) / 2.0
            appearance[appearance > 1.0 - self.cfg.appearance_thresh] = 1.0
            appearance[far] = 1.0
            cost = np.minimum(cost, appearance)
        return cost

    def _update_feature(self, track: Track, feature: np.ndarray) -> None:
        if track.feature is None:
            track.feature = feature
            return
        m = self.cfg.feature_momentum
        smoothed = m * track.feature + (1.0 - m) * feature
        track.feature = smoothed / max(np.linalg.norm(smoothed), 1e-12)
