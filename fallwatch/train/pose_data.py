"""Training samples for distilling an HRNet from the MoveNet teacher: stored crops, their labels and random views.

A stored crop (`fallwatch/train/pose_cache.py` builds them) is a square around the person, wider than the pipeline's
crop by `STORE_MARGIN` so that training can rotate (people on the floor) and zoom out without black corners. It
carries the teacher's keypoints and, when kept, the teacher's heatmaps with the matrix from stored-crop pixels to
their cells; for LSPET also the human labels.

Training samples (`make_sample`) are random affine views of a stored crop at the student's input size — rotation
up to +-100 degrees (sometimes upside down), scale, shift, mirror with left/right swap — then blur, occlusion
patches and lighting changes. Targets per joint: an unbiased Gaussian at the human label where there is one, else a
blend of an unbiased Gaussian at the teacher's keypoint (centred on the exact sub-pixel location, as DARK assumes)
and the teacher's own heatmap warped by the same view (soft targets: the teacher's uncertainty, its second
guesses), by `soft_weight`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fallwatch.pose import crop
from fallwatch.types import COCO_FLIP_INDEX, LSP_TO_COCO, NUM_KEYPOINTS

STORE_PX = 256  # side of a stored crop
STORE_MARGIN = 1.5  # stored square = this x the long side of the pipeline's (padded) crop
FLIP = np.array(COCO_FLIP_INDEX)
LSP_JOINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
              "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top")  # fmt: skip


@dataclass
class AugmentSettings:
    """Random view of a stored crop; probabilities per sample."""

    p_rotate: float = 0.6  # rotate by up to +-max_rotation (else up to +-small_rotation)
    max_rotation: float = 100.0
    small_rotation: float = 15.0
    p_upside_down: float = 0.1  # rotate by 180 +- small_rotation
    scale: tuple[float, float] = (0.75, 1.3)
    shift: float = 0.1  # fraction of the crop size
    p_flip: float = 0.5
    p_blur: float = 0.2
    p_occlude: float = 0.3
    lighting: float = 0.3  # brightness and contrast jitter (fraction)


@dataclass
class CropSet:
    """Every stored crop and its labels, in stored-crop pixels."""

    images: Any  # images[i] -> (S, S, 3) uint8 RGB: an array, or pose_cache.JpegImages
    teacher: np.ndarray  # (N, 17, 3) x, y, score (NaN x/y where the teacher saw nothing)
    labels: np.ndarray  # (N, 17, 3) x, y, visible (1) — human labels where they exist, else visible 0
    box: np.ndarray  # (N, 4) the person box (xyxy)
    crop_size: np.ndarray  # (N, 2) the pipeline's crop (w, h) at the student's aspect, before augmentation
    box_size: np.ndarray  # (N,) the person box's longer side (PCK normaliser)
    split: np.ndarray  # (N,) "train" | "val"
    source: np.ndarray  # (N,) clip or image name
    group: np.ndarray  # (N,) upright | falling | fallen | adl (videos) or LSPET's pose group
    soft: np.ndarray | None = None  # (N, 17, h, w) uint8 teacher heatmaps (x 255)
    soft_matrix: np.ndarray | None = None  # (N, 2, 3) stored-crop pixels -> cells of `soft`
    frame_box_px: np.ndarray | None = None  # (N,) the box's longer side in the frame (small people)
    frame: np.ndarray | None = None  # (N,) the video frame the crop comes from (-1: a photo)

    def __len__(self) -> int:
        return len(self.teacher)


def crop_keypoints(estimator, data: CropSet, idx: np.ndarray) -> np.ndarray:
    """(len(idx), 17, 3) keypoints of any PoseEstimator on stored crops `idx`, through its own crop path."""
    return np.stack([estimator.estimate(cv2.cvtColor(data.images[i], cv2.COLOR_RGB2BGR), data.box[i][None])[0]
                     for i in idx])


def sample_split(data: CropSet, split: str, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of `n` crops of `split` (all of them when `n` is None or not smaller)."""
    idx = np.flatnonzero(data.split == split)
    if n is None or n >= len(idx):
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))


def store_transforms(boxes: np.ndarray, aspect: float, padding: float,
                     store_px: int = STORE_PX) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame -> stored-crop matrices (N, 2, 3), the pipeline crop size (N, 2) and box long side (N,) in stored px."""
    centres, sizes = crop.center_size(boxes, aspect, padding)
    side = sizes.max(1) * STORE_MARGIN
    matrices = crop.crop_matrices(centres, np.stack([side, side], 1), (store_px, store_px))
    scale = store_px / side
    box_long = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return matrices, sizes * scale[:, None], box_long * scale


def lspet_items(folder: Path, val_every: int):
    """(image path, split, pose group, box (4,), COCO labels (17, 3)) per LSPET photo; every `val_every`-th photo
    (by its dataset index) is held out. The box is the visible joints' extent, as in scripts/eval_pose.py."""
    with open(folder / "joints.csv") as fh:
        rows = list(csv.DictReader(fh))
    coco = list(LSP_TO_COCO.items())
    for row in rows:
        joints = {n: (float(row[f"{n}_x"]), float(row[f"{n}_y"]), int(row[f"{n}_vis"])) for n in LSP_JOINTS}
        visible = np.array([[x, y] for x, y, v in joints.values() if v])
        if len(visible) < 2:
            continue
        labels = np.zeros((NUM_KEYPOINTS, 3))
        for name, k in coco:
            x, y, v = joints[name]
            labels[k] = (x, y, float(v == 1))
        split = "val" if int(row["lspet_index"]) % val_every == 0 else "train"
        yield folder / row["file"], split, row["pose_group"], np.r_[visible.min(0), visible.max(0)], labels


def clip_group(clip, index: int) -> str:
    """What the person in a labelled clip is doing at frame `index`, over every fall of the clip: falling from a
    fall's start to its end, fallen after a fall, upright before the first; adl in clips without a fall."""
    falls = [(clip.fall_start, clip.fall_end), *clip.more_falls] if clip.is_fall else []
    if not falls:
        return "adl"
    for start, end in falls:
        if start <= index < (end if end is not None else start + 30):
            return "falling"
    return "fallen" if any(index >= start for start, _ in falls) else "upright"


def gaussian_targets(xy: np.ndarray, heatmap_size: tuple[int, int], sigma: float) -> np.ndarray:
    """(K, 2) heatmap-pixel coordinates -> (K, h, w) Gaussians centred exactly there (unbiased, no rounding)."""
    w, h = heatmap_size
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    gx = np.exp(-((xs[None, :] - xy[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, :] - xy[:, 1:2]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def view_matrix(crop_size: np.ndarray, input_size: tuple[int, int], rng: np.random.Generator | None,
                aug: AugmentSettings, store_px: int = STORE_PX) -> tuple[np.ndarray, bool]:
    """Stored crop -> student input: the pipeline's own view when `rng` is None, else a random one."""
    centre = np.array([[store_px / 2, store_px / 2]])
    size = crop_size[None].astype(np.float64)
    angle, flip = 0.0, False
    if rng is not None:
        if rng.random() < aug.p_upside_down:
            angle = 180.0 + rng.uniform(-aug.small_rotation, aug.small_rotation)
        elif rng.random() < aug.p_rotate:
            angle = rng.uniform(-aug.max_rotation, aug.max_rotation)
        else:
            angle = rng.uniform(-aug.small_rotation, aug.small_rotation)
        size = size * rng.uniform(*aug.scale)
        centre = centre + rng.uniform(-aug.shift, aug.shift, 2) * size
        flip = rng.random() < aug.p_flip
    m = crop.crop_matrices(centre, size, input_size, np.array([angle]))[0]
    if flip:  # mirror the output: x -> (W - 1) - x
        m = np.array([[-1.0, 0, input_size[0] - 1], [0, 1, 0]]) @ np.vstack([m, [0, 0, 1]])
    return m, flip


def photometric(image: np.ndarray, rng: np.random.Generator, aug: AugmentSettings) -> np.ndarray:
    """Blur, an occlusion patch and brightness / contrast jitter on a uint8 RGB crop."""
    out = image.astype(np.float32)
    h, w = out.shape[:2]
    if rng.random() < aug.p_blur:
        k = int(rng.choice([3, 5, 7]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    if rng.random() < aug.p_occlude:
        pw, ph = int(w * rng.uniform(0.15, 0.4)), int(h * rng.uniform(0.15, 0.4))
        x0, y0 = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
        out[y0:y0 + ph, x0:x0 + pw] = rng.uniform(0, 255, 3)
    contrast = 1 + rng.uniform(-aug.lighting, aug.lighting)
    brightness = 255 * rng.uniform(-aug.lighting, aug.lighting) / 2
    out = (out - 128) * contrast + 128 + brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def targets_for(data: CropSet, i: int, min_teacher_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training keypoints (17, 2), weights (17,) and which are human labels (17,) of crop i: human labels where
    visible, else the teacher's keypoints it is confident about."""
    xy = data.teacher[i, :, :2].astype(np.float64).copy()
    weight = (data.teacher[i, :, 2] >= min_teacher_score) & np.isfinite(xy).all(1)
    labelled = data.labels[i, :, 2] > 0
    xy[labelled] = data.labels[i, labelled, :2]
    weight |= labelled
    return np.nan_to_num(xy), weight.astype(np.float32), labelled


def soft_targets(data: CropSet, i: int, view: np.ndarray, heatmap_size: tuple[int, int], stride: int) -> np.ndarray:
    """The teacher's heatmaps of crop i seen through `view` (stored crop -> student input), on the student's
    heatmap cells (cell j at input pixel j * stride): (17, h, w) float32 in 0..1."""
    cells = np.vstack([view / stride, [0, 0, 1]]) @ np.vstack([crop.invert(data.soft_matrix[i][None])[0], [0, 0, 1]])
    maps = np.ascontiguousarray(data.soft[i].transpose(1, 2, 0))  # (h, w, 17) for one warp of every joint
    warped = cv2.warpAffine(maps, cells[:2], heatmap_size, flags=cv2.INTER_LINEAR, borderValue=0)
    return warped.transpose(2, 0, 1).astype(np.float32) / 255.0


def make_sample(data: CropSet, i: int, input_size: tuple[int, int], stride: int, sigma: float,
                min_teacher_score: float, rng: np.random.Generator | None, aug: AugmentSettings,
                soft_weight: float = 0.0):
    """One (image uint8 (H, W, 3), heatmaps (17, h, w), weights (17,)) sample; random view if `rng` is given."""
    stored = data.images[i]
    m, flip = view_matrix(data.crop_size[i], input_size, rng, aug, stored.shape[1])
    image = cv2.warpAffine(stored, m, input_size, flags=cv2.INTER_LINEAR, borderValue=0)
    xy, weight, labelled = targets_for(data, i, min_teacher_score)
    xy = crop.apply(m[None], xy[None])[0]
    hm_size = (input_size[0] // stride, input_size[1] // stride)
    hm_xy = xy / stride
    targets = gaussian_targets(hm_xy, hm_size, sigma)
    if soft_weight > 0 and data.soft is not None:
        soft = soft_targets(data, i, m, hm_size, stride)
        teacher_joints = ~labelled
        targets[teacher_joints] = (1 - soft_weight) * targets[teacher_joints] + soft_weight * soft[teacher_joints]
    if flip:
        targets, weight, hm_xy = targets[FLIP], weight[FLIP], hm_xy[FLIP]
    if rng is not None:
        image = photometric(image, rng, aug)
    inside = (hm_xy[:, 0] >= 0) & (hm_xy[:, 0] <= hm_size[0] - 1) & (hm_xy[:, 1] >= 0) & (hm_xy[:, 1] <= hm_size[1] - 1)
    return image, targets, weight * inside
