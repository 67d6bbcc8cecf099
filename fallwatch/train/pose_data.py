"""Crops and teacher labels for distilling a small HRNet from the MoveNet teacher.

The cache (built once, `build_cache`): person boxes (the real YOLOv8n on the labelled videos; the annotated joints'
extent on the LSPET photos), each cut out by `pose/crop.py` as a square of `STORE_PX` pixels around the box, wider
than the pipeline's crop by `STORE_MARGIN` so that training can rotate (people on the floor) and zoom out without
black corners. Each crop carries the teacher's keypoints, computed by the same crop -> heatmap -> DARK path the
pipeline runs, and, for LSPET, the human labels — all in the stored crop's pixels. An epoch therefore never reruns
the teacher.

Training samples (`make_sample`) are random affine views of a stored crop at the student's input size — rotation
up to +-100 degrees (sometimes upside down), scale, shift, mirror with left/right swap — then blur, occlusion
patches and lighting changes, with unbiased Gaussian heatmap targets (centred on the exact sub-pixel location, as
DARK assumes).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

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

    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    teacher: np.ndarray  # (N, 17, 3) x, y, score (NaN x/y where the teacher saw nothing)
    labels: np.ndarray  # (N, 17, 3) x, y, visible (1) — human labels where they exist, else visible 0
    box: np.ndarray  # (N, 4) the person box (xyxy)
    crop_size: np.ndarray  # (N, 2) the pipeline's crop (w, h) at the student's aspect, before augmentation
    box_size: np.ndarray  # (N,) the person box's longer side (PCK normaliser)
    split: np.ndarray  # (N,) "train" | "val"
    source: np.ndarray  # (N,) clip or image name
    group: np.ndarray  # (N,) upright | falling | fallen | adl (videos) or LSPET's pose group

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: Path) -> CropSet:
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.images)


def store_transforms(boxes: np.ndarray, aspect: float, padding: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame -> stored-crop matrices (N, 2, 3), the pipeline crop size (N, 2) and box long side (N,) in stored px."""
    centres, sizes = crop.center_size(boxes, aspect, padding)
    side = sizes.max(1) * STORE_MARGIN
    matrices = crop.crop_matrices(centres, np.stack([side, side], 1), (STORE_PX, STORE_PX))
    scale = STORE_PX / side
    box_long = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return matrices, sizes * scale[:, None], box_long * scale


class CropCollector:
    """Accumulates stored crops with teacher labels; `teacher` is a PoseEstimator on the teacher model."""

    def __init__(self, teacher, aspect: float, padding: float):
        self.teacher = teacher
        self.aspect = aspect
        self.padding = padding
        self.rows: dict[str, list] = {k: [] for k in CropSet.__dataclass_fields__}

    def add(self, image_bgr: np.ndarray, boxes: np.ndarray, split: str, source: str, group: str,
            labels: np.ndarray | None = None) -> None:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return
        teacher = self.teacher.estimate(image_bgr, boxes)
        matrices, crop_size, box_size = store_transforms(boxes, self.aspect, self.padding)
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        images = crop.warp_crops(rgb, matrices, (STORE_PX, STORE_PX))
        teacher_xy = crop.apply(matrices, teacher[:, :, :2].astype(np.float64))
        if labels is None:
            labels = np.zeros((len(boxes), NUM_KEYPOINTS, 3))
        label_xy = crop.apply(matrices, np.nan_to_num(labels[:, :, :2]))
        box_xy = crop.apply(matrices, boxes.reshape(-1, 2, 2))
        for i in range(len(boxes)):
            self.rows["box"].append(box_xy[i].ravel())
            self.rows["images"].append(images[i])
            self.rows["teacher"].append(np.concatenate([teacher_xy[i], teacher[i, :, 2:]], 1))
            self.rows["labels"].append(np.concatenate([label_xy[i], labels[i, :, 2:]], 1))
            self.rows["crop_size"].append(crop_size[i])
            self.rows["box_size"].append(box_size[i])
            self.rows["split"].append(split)
            self.rows["source"].append(source)
            self.rows["group"].append(group)

    def result(self) -> CropSet:
        r = self.rows
        return CropSet(
            images=np.asarray(r["images"], np.uint8).reshape(-1, STORE_PX, STORE_PX, 3),
            teacher=np.asarray(r["teacher"], np.float32).reshape(-1, NUM_KEYPOINTS, 3),
            labels=np.asarray(r["labels"], np.float32).reshape(-1, NUM_KEYPOINTS, 3),
            box=np.asarray(r["box"], np.float32).reshape(-1, 4),
            crop_size=np.asarray(r["crop_size"], np.float32).reshape(-1, 2),
            box_size=np.asarray(r["box_size"], np.float32),
            split=np.asarray(r["split"]), source=np.asarray(r["source"]), group=np.asarray(r["group"]),
        )


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


def frame_group(clip, index: int) -> str:
    """What the person in a labelled clip is doing at `index`: upright before the fall, falling, fallen after it;
    adl in clips without a fall."""
    if clip.fall_start is None:
        return "adl"
    if index < clip.fall_start:
        return "upright"
    return "falling" if clip.fall_end is None or index < clip.fall_end else "fallen"


def gaussian_targets(xy: np.ndarray, heatmap_size: tuple[int, int], sigma: float) -> np.ndarray:
    """(K, 2) heatmap-pixel coordinates -> (K, h, w) Gaussians centred exactly there (unbiased, no rounding)."""
    w, h = heatmap_size
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    gx = np.exp(-((xs[None, :] - xy[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, :] - xy[:, 1:2]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def view_matrix(crop_size: np.ndarray, input_size: tuple[int, int], rng: np.random.Generator | None,
                aug: AugmentSettings) -> tuple[np.ndarray, bool]:
    """Stored crop -> student input: the pipeline's own view when `rng` is None, else a random one."""
    centre = np.array([[STORE_PX / 2, STORE_PX / 2]])
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


def targets_for(data: CropSet, i: int, min_teacher_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Training keypoints (17, 2) and weights (17,) of crop i: human labels where visible, else the teacher's
    keypoints it is confident about."""
    xy = data.teacher[i, :, :2].astype(np.float64).copy()
    weight = (data.teacher[i, :, 2] >= min_teacher_score) & np.isfinite(xy).all(1)
    labelled = data.labels[i, :, 2] > 0
    xy[labelled] = data.labels[i, labelled, :2]
    weight |= labelled
    return np.nan_to_num(xy), weight.astype(np.float32)


def make_sample(data: CropSet, i: int, input_size: tuple[int, int], stride: int, sigma: float,
                min_teacher_score: float, rng: np.random.Generator | None, aug: AugmentSettings):
    """One (image uint8 (H, W, 3), heatmaps (17, h, w), weights (17,)) sample; random view if `rng` is given."""
    m, flip = view_matrix(data.crop_size[i], input_size, rng, aug)
    image = cv2.warpAffine(data.images[i], m, input_size, flags=cv2.INTER_LINEAR, borderValue=0)
    xy, weight = targets_for(data, i, min_teacher_score)
    xy = crop.apply(m[None], xy[None])[0]
    if flip:
        xy, weight = xy[FLIP], weight[FLIP]
    if rng is not None:
        image = photometric(image, rng, aug)
    hm_size = (input_size[0] // stride, input_size[1] // stride)
    hm_xy = xy / stride
    inside = (hm_xy[:, 0] >= 0) & (hm_xy[:, 0] <= hm_size[0] - 1) & (hm_xy[:, 1] >= 0) & (hm_xy[:, 1] <= hm_size[1] - 1)
    return image, gaussian_targets(hm_xy, hm_size, sigma), weight * inside
