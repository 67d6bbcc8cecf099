"""PoseEstimator: tracked boxes + frame -> 17 COCO keypoints per person, one batched forward per frame.

crop (fixed aspect, enlarged, affine warp) -> heatmap model -> argmax + DARK -> x stride -> inverse affine -> frame.
The heatmap model is any object with `input_size` (w, h) and `__call__(crops uint8 RGB) -> heatmaps`: HRNet (torch)
or an ONNX heatmap model such as MoveNet; which one is a config change.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fallwatch.config import PoseConfig
from fallwatch.errors import FallwatchError
from fallwatch.pose import crop
from fallwatch.pose.dark import decode_heatmaps
from fallwatch.pose.smoothing import KeypointSmoother
from fallwatch.types import COCO_FLIP_INDEX, NUM_KEYPOINTS, Poses, Tracks

FLIP_INDEX = np.array(COCO_FLIP_INDEX)


def build_heatmap_model(cfg: PoseConfig, path: Path, device: str, threads: int = 0):
    backend = cfg.backend
    if backend == "auto":
        backend = "onnx" if path.suffix.lower() == ".onnx" else "hrnet"
    if backend == "onnx":
        from fallwatch.pose.onnx_heatmap import OnnxHeatmapModel

        return OnnxHeatmapModel(path, device, threads)
    from fallwatch.pose.hrnet import HRNetHeatmapModel, HRNetSpec

    return HRNetHeatmapModel(path, HRNetSpec(width=cfg.hrnet_width), tuple(cfg.input_size), device,
                             cfg.hrnet_runtime, threads)


class PoseEstimator:
    """`estimator(image BGR, tracks, time) -> Poses` aligned with `tracks`."""

    def __init__(self, cfg: PoseConfig, model, small_model=None):
        if cfg.batch < 1:
            raise FallwatchError("pose.batch must be at least 1")
        self.cfg = cfg
        self.model = model
        self.small_model = small_model  # for people whose crop is at most pose.small_max_px tall (cheaper)
        self.smoother = None
        if cfg.smoothing:
            self.smoother = KeypointSmoother(cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff)

    def __call__(self, image: np.ndarray, tracks: Tracks, time: float = 0.0) -> Poses:
        if self.smoother is not None and tracks.ended:
            self.smoother.forget(tracks.ended)
        keypoints = self.estimate(image, tracks.boxes)
        if self.smoother is not None:
            for i, tid in enumerate(tracks.ids):
                keypoints[i, :, :2] = self.smoother(int(tid), keypoints[i, :, :2], time)
        return Poses(keypoints)

    def estimate(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy boxes -> (N, 17, 3) keypoints (x, y in frame pixels, score)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.small_model is None:
            return self._estimate_with(self.model, rgb, boxes)
        small_w, small_h = self.small_model.input_size
        _, sizes = crop.center_size(boxes, small_w / small_h, self.cfg.padding)
        small = sizes[:, 1] <= self.cfg.small_max_px
        out = np.empty((len(boxes), NUM_KEYPOINTS, 3), np.float32)
        for model, rows in ((self.small_model, small), (self.model, ~small)):
            if rows.any():
                out[rows] = self._estimate_with(model, rgb, boxes[rows])
        return out

    def heatmaps(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The main model's heatmaps (N, K, h, w) for `boxes` (flip-averaged when pose.flip_test) and the crop
        matrices (N, 2, 3), frame -> model input: what a distillation teacher hands over besides its keypoints."""
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return self._crop_heatmaps(self.model, rgb, np.asarray(boxes, np.float64).reshape(-1, 4))

    def _crop_heatmaps(self, model, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = model.input_size
        centres, sizes = crop.center_size(boxes, size[0] / size[1], self.cfg.padding)
        matrices = crop.crop_matrices(centres, sizes, size)
        crops = crop.warp_crops(rgb, matrices, size)
        return self._heatmaps(model, crops), matrices

    def keypoints(self, heatmaps: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        """The main model's `heatmaps` of crops cut by `matrices` -> (N, 17, 3) frame keypoints, as `estimate`."""
        return self._decode(self.model, heatmaps, matrices)

    def _estimate_with(self, model, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._decode(model, *self._crop_heatmaps(model, rgb, boxes))

    def _decode(self, model, heatmaps: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        size = model.input_size
        coords, scores = decode_heatmaps(heatmaps, self.cfg.blur_kernel, self.cfg.dark)
        stride = np.array([size[0] / heatmaps.shape[-1], size[1] / heatmaps.shape[-2]])
        crop_xy = (coords.astype(np.float64) + getattr(model, "heatmap_offset", 0.0)) * stride
        frame_xy = crop.apply(crop.invert(matrices), crop_xy)
        frame_xy[scores <= 0] = np.nan  # no evidence at all for this joint
        calibration = getattr(model, "score_calibration", None)
        if calibration is not None and self.cfg.calibrate_scores:
            scores = np.where(scores > 0, calibration(scores), 0.0)  # on the scale the action stage was set on
        return np.concatenate([frame_xy, np.clip(scores, 0, None)[..., None]], axis=-1).astype(np.float32)

    def _heatmaps(self, model, crops: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(crops), self.cfg.batch):
            chunk = crops[start:start + self.cfg.batch]
            heatmaps = model(chunk)
            if self.cfg.flip_test:
                flipped = model(np.ascontiguousarray(chunk[:, :, ::-1]))
                heatmaps = 0.5 * (heatmaps + unflip(flipped, getattr(model, "heatmap_offset", 0.0)))
            out.append(heatmaps)
        return np.concatenate(out)


def unflip(heatmaps: np.ndarray, heatmap_offset: float) -> np.ndarray:
    """Heatmaps of mirrored crops, brought back to the crops' own frame: joints swapped left/right, columns reversed.

    Where a heatmap cell covers input pixels [s*i, s*i + s) (`heatmap_offset` 0.5, MoveNet), the mirror of cell i is
    exactly cell w-1-i. Where cell i sits at input pixel s*i (offset 0, HRNet), the mirror of pixel s*i lands 1 - 1/s
    cells right of cell w-1-i, and mmpose's `shift_heatmap` moves the map one cell right to approximate it."""
    out = heatmaps[:, FLIP_INDEX, :, ::-1].copy()
    if heatmap_offset == 0.0:
        out[..., 1:] = out[..., :-1]
    return out
