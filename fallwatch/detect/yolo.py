"""Person detector on ultralytics YOLO weights: class 0 only, at a low threshold so weak boxes reach the tracker.

Runtimes (`detect.runtime`):
- `openvino` — the network compiled by OpenVINO (CPU); about twice as fast as torch on a small CPU;
- `torch` — a direct torch forward (FP16 on CUDA with `detect.half`);
- `predict` — ultralytics' own `model.predict` per frame: the reference the others are tested against, and the
  way to run weights other than a torch checkpoint (an exported .onnx, for instance);
- `auto` — openvino on the CPU when it is installed, torch otherwise; predict for files that are not .pt.
The direct runtimes reproduce predict's letterbox and NMS (`letterbox.py`, `person_nms`), so the boxes agree
(tests/test_detect.py holds them to it on real frames).
"""

from __future__ import annotations

import numpy as np

from fallwatch.config import DetectConfig
from fallwatch.detect.letterbox import Letterbox
from fallwatch.detect.runtimes import PERSON_CLASS, OpenVinoRuntime, TorchRuntime, load_yolo
from fallwatch.errors import FallwatchError
from fallwatch.types import Detections
from fallwatch.weights import ResolvedWeights

MAX_NMS = 30000  # ultralytics' cap on boxes entering NMS


def person_nms(rows: np.ndarray, conf: float, iou: float, max_det: int) -> tuple[np.ndarray, np.ndarray]:
    """(6, N) network rows -> xyxy boxes and scores (input pixels), as ultralytics' non_max_suppression keeps them
    for `classes=[0]`: best class person, score above `conf`, torchvision NMS, highest scores first."""
    import torch
    import torchvision

    person, others = rows[4], rows[5]
    keep = (person > conf) & (person >= others)
    if not keep.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    xywh, scores = rows[:4, keep].T, person[keep]
    if len(scores) > MAX_NMS:
        top = np.argsort(-scores, kind="stable")[:MAX_NMS]
        xywh, scores = xywh[top], scores[top]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    kept = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()[:max_det]
    return boxes[kept], scores[kept]


def choose_runtime(cfg: DetectConfig, weights: ResolvedWeights, device: str) -> str:
    runtime = cfg.runtime
    if runtime == "auto":
        if weights.path.suffix.lower() != ".pt":
            return "predict"
        if device.startswith("cuda"):
            return "torch"
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "torch"
        return "openvino"
    if runtime == "openvino" and device.startswith("cuda"):
        raise FallwatchError("detect.runtime=openvino runs on the CPU only: use --device cpu or detect.runtime=torch")
    return runtime


class YoloDetector:
    """`detector(image) -> Detections`; the weights are a resolved local file and nothing is ever downloaded."""

    def __init__(self, cfg: DetectConfig, weights: ResolvedWeights, device: str, threads: int = 0):
        if cfg.every < 1:
            raise FallwatchError(f"detect.every must be at least 1 (got {cfg.every})")
        self.cfg = cfg
        self.weights = weights
        self.device = device
        self.half = bool(cfg.half and device.startswith("cuda"))
        self.runtime = choose_runtime(cfg, weights, device)
        self._letterboxes: dict[tuple[int, int], Letterbox] = {}
        if self.runtime == "predict":
            self.network = None
            self.model = load_yolo(weights)
        elif self.runtime == "torch":
            self.network = TorchRuntime(weights, device, self.half)
        elif self.runtime == "openvino":
            self.network = OpenVinoRuntime(weights, threads)
        else:
            raise FallwatchError(f"unknown detect.runtime {cfg.runtime!r}: use auto, openvino, torch or predict")

    def prepare(self, width: int, height: int) -> None:
        """Compile for this frame size now (a source's first frame would otherwise pay for it)."""
        if self.network is not None:
            self.network.prepare(self._letterbox((height, width)).shape)

    def _letterbox(self, frame_hw: tuple[int, int]) -> Letterbox:
        box = self._letterboxes.get(frame_hw)
        if box is None:
            box = self._letterboxes[frame_hw] = Letterbox.fit(frame_hw, self.cfg.imgsz)
        return box

    def __call__(self, image: np.ndarray) -> Detections:
        if self.network is None:
            return self._predict(image)
        letterbox = self._letterbox(image.shape[:2])
        rows = self.network(letterbox.tensor(image))
        boxes, scores = person_nms(rows, self.cfg.conf, self.cfg.iou, self.cfg.max_det)
        if len(scores) == 0:
            return Detections.empty()
        return Detections(letterbox.to_frame(boxes), scores)

    def _predict(self, image: np.ndarray) -> Detections:
        # `half` is only passed when on: ultralytics 8.4 warns on every call that passes it at all.
        extra = {"half": True} if self.half else {}
        result = self.model.predict(
            image,
            classes=[PERSON_CLASS],
            conf=self.cfg.conf,
            iou=self.cfg.iou,
            imgsz=self.cfg.imgsz,
            max_det=self.cfg.max_det,
            device=self.device,
            verbose=False,
            **extra,
        )[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        return Detections(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy())

