"""Global (camera) motion between consecutive frames: sparse optical flow and a RANSAC partial affine.

Corners are found on the frame downscaled by `downscale`, followed with pyramidal Lucas-Kanade into the next frame,
and a 4-DoF similarity (rotation, uniform scale, translation) is fitted robustly; its translation is scaled back to
full resolution. A frame of a different size, or too few tracked corners, gives the identity; so does an estimate
smaller than `min_motion_px` (the largest displacement it causes at the frame's corners): on a static camera the
fit only measures noise, and applying it perturbs the filters for nothing.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_CORNERS = 1000
QUALITY_LEVEL = 0.01
MIN_DISTANCE = 1
BLOCK_SIZE = 3
MIN_POINTS = 5  # fewer matched corners than this: no reliable estimate


class SparseFlowGMC:
    """`apply(image) -> (2, 3)` affine mapping the previous frame's coordinates onto this frame's."""

    def __init__(self, downscale: int = 2, min_motion_px: float = 0.0):
        self.downscale = max(1, int(downscale))
        self.min_motion_px = float(min_motion_px)
        self._prev_gray: np.ndarray | None = None
        self._prev_points: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_gray, self._prev_points = None, None

    def apply(self, image: np.ndarray) -> np.ndarray:
        identity = np.eye(2, 3)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        if self.downscale > 1:
            h, w = gray.shape[:2]
            gray = cv2.resize(gray, (w // self.downscale, h // self.downscale), interpolation=cv2.INTER_AREA)
        points = cv2.goodFeaturesToTrack(gray, MAX_CORNERS, QUALITY_LEVEL, MIN_DISTANCE, blockSize=BLOCK_SIZE)
        prev_gray, prev_points = self._prev_gray, self._prev_points
        self._prev_gray, self._prev_points = gray, points
        if prev_gray is None or prev_points is None or prev_gray.shape != gray.shape or len(prev_points) < MIN_POINTS:
            return identity
        moved, status, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, prev_points, None)
        if moved is None:
            return identity
        ok = status.reshape(-1) == 1
        if ok.sum() < MIN_POINTS:
            return identity
        affine, _ = cv2.estimateAffinePartial2D(prev_points[ok], moved[ok], method=cv2.RANSAC)
        if affine is None or not np.isfinite(affine).all():
            return identity
        affine[:, 2] *= self.downscale
        if self.min_motion_px > 0 and largest_shift(affine, image.shape[1], image.shape[0]) < self.min_motion_px:
            return identity
        return affine


def largest_shift(affine: np.ndarray, width: int, height: int) -> float:
    """Largest displacement (pixels) the affine gives the frame's four corners."""
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], np.float64)
    return float(np.abs(corners @ affine.T - corners[:, :2]).max())
