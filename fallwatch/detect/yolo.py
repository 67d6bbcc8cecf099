"""Person detector on ultralytics YOLO: class 0 only, at a low threshold so weak boxes reach the tracker."""

from __future__ import annotations

import numpy as np

from fallwatch.config import DetectConfig
from fallwatch.errors import FallwatchError
from fallwatch.types import Detections
from fallwatch.weights import ResolvedWeights

PERSON_CLASS = 0


class YoloDetector:
    """`detector(image) -> Detections`; ultralytics is handed a resolved local file and never downloads."""

    def __init__(self, cfg: DetectConfig, weights: ResolvedWeights, device: str):
        from ultralytics import YOLO  # imported here: it is slow to import and only this stage needs it

        self.cfg = cfg
        self.weights = weights
        self.device = device
        self.half = bool(cfg.half and device.startswith("cuda"))
        try:
            self.model = YOLO(str(weights.path), task="detect")
        except Exception as exc:  # ultralytics raises many types for a bad file
            raise FallwatchError(f"cannot load detector weights {weights.path}: {exc}") from None
        names = getattr(self.model, "names", None) or {}
        if names and str(names.get(PERSON_CLASS, "")).lower() != "person":
            raise FallwatchError(f"{weights.path} has no 'person' class 0 (class 0 is {names.get(PERSON_CLASS)!r})")

    def __call__(self, image: np.ndarray) -> Detections:
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
