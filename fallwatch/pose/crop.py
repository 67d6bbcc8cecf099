"""Top-down crops: each box becomes a fixed-aspect, enlarged region warped to the model's input size, and the
inverse maps (heatmap or crop) coordinates back to frame pixels.

The box is grown to the model's aspect (3:4 for 192x256) around its centre, never squashed, then enlarged by
`padding` (mmpose uses 1.25) so that limbs outside a tight detector box are still seen. All matrices are built and
inverted in one batch; the warp itself is one `cv2.warpAffine` per crop (pixels outside the frame are zero).
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_SIZE_PX = 1.0  # a box is never treated as smaller than this, so tiny boxes still give a finite transform


def center_size(boxes: np.ndarray, aspect: float, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) xyxy -> centres (N, 2) and sizes (N, 2) with w / h == aspect, enlarged by `padding`."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    w = np.maximum(boxes[:, 2] - boxes[:, 0], MIN_SIZE_PX)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], MIN_SIZE_PX)
    w, h = np.where(w > aspect * h, w, h * aspect), np.where(w > aspect * h, w / aspect, h)
    return centre, np.stack([w, h], axis=1) * padding


def crop_matrices(
    centres: np.ndarray, sizes: np.ndarray, out_size: tuple[int, int], angles_deg: np.ndarray | None = None
) -> np.ndarray:
    """(N, 2, 3) affine maps from frame pixels to crop pixels (`out_size` = (width, height)); an optional rotation
    (degrees) about the box centre is used by training augmentation."""
    n = len(centres)
    out_w, out_h = out_size
    scale = out_w / sizes[:, 0]
    theta = np.zeros(n) if angles_deg is None else np.deg2rad(np.asarray(angles_deg, np.float64))
    cos, sin = np.cos(theta) * scale, np.sin(theta) * scale
    m = np.empty((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1] = cos, sin
    m[:, 1, 0], m[:, 1, 1] = -sin, cos
    m[:, :, 2] = np.array([out_w / 2, out_h / 2]) - np.einsum("nij,nj->ni", m[:, :, :2], centres)
    return m


def invert(matrices: np.ndarray) -> np.ndarray:
    """Batch inverse of (N, 2, 3) affine maps."""
    a_inv = np.linalg.inv(matrices[:, :, :2])
    t = -np.einsum("nij,nj->ni", a_inv, matrices[:, :, 2])
    return np.concatenate([a_inv, t[:, :, None]], axis=2)


def apply(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, K, 2) points with (N, 2, 3) matrices."""
    return np.einsum("nij,nkj->nki", matrices[:, :, :2], points) + matrices[:, None, :, 2]


def warp_crops(image: np.ndarray, matrices: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """(N, out_h, out_w, C) crops of `image`; pixels outside the frame are zero."""
    out_w, out_h = out_size
    crops = np.zeros((len(matrices), out_h, out_w, image.shape[2]), image.dtype)
    for i, m in enumerate(matrices):
        cv2.warpAffine(image, m, (out_w, out_h), dst=crops[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crops
