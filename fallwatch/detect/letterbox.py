"""Letterbox in and out, as ultralytics' predictor does it, so a direct forward sees the same input tensor.

ultralytics (8.4) resizes the frame so its longer side is `imgsz`, then pads each side only up to the next multiple
of the stride ("minimum rectangle"), centred, with grey 114: a 640x480 frame is fed at 640x480, not 640x640. Boxes
come back through the inverse (its `scale_boxes`: padding off, divided by the per-axis gain, clipped to the frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """The geometry for one frame size; `shape` is the network input (height, width)."""

    frame_hw: tuple[int, int]
    resized_wh: tuple[int, int]
    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def fit(cls, frame_hw: tuple[int, int], imgsz: int, stride: int = 32) -> Letterbox:
        h, w = frame_hw
        r = min(imgsz / h, imgsz / w)
        new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
        dw, dh = (imgsz - new_w) % stride / 2, (imgsz - new_h) % stride / 2
        return cls((h, w), (new_w, new_h), round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1))

    @property
    def shape(self) -> tuple[int, int]:
        return self.resized_wh[1] + self.top + self.bottom, self.resized_wh[0] + self.left + self.right

    def tensor(self, image: np.ndarray) -> np.ndarray:
        """BGR uint8 frame -> (1, 3, H, W) float32 RGB in [0, 1]."""
        if image.shape[:2] != self.frame_hw:
            raise ValueError(f"frame {image.shape[1]}x{image.shape[0]} given to a letterbox fitted for "
                             f"{self.frame_hw[1]}x{self.frame_hw[0]}")
        if (image.shape[1], image.shape[0]) != self.resized_wh:
            image = cv2.resize(image, self.resized_wh, interpolation=cv2.INTER_LINEAR)
        if self.top or self.bottom or self.left or self.right:
            image = cv2.copyMakeBorder(image, self.top, self.bottom, self.left, self.right, cv2.BORDER_CONSTANT,
                                       value=(PAD_VALUE,) * 3)
        chw = image[..., ::-1].transpose(2, 0, 1)
        return (np.ascontiguousarray(chw)[None].astype(np.float32)) / 255.0

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy in network-input pixels -> frame pixels, clipped to the frame."""
        h, w = self.frame_hw
        gain_x, gain_y = self.resized_wh[0] / w, self.resized_wh[1] / h
        pad_x = round((self.shape[1] - self.resized_wh[0]) / 2 - 0.1)
        pad_y = round((self.shape[0] - self.resized_wh[1]) / 2 - 0.1)
        out = np.array(boxes, np.float32, copy=True).reshape(-1, 4)
        out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) / gain_x).clip(0, w)
        out[:, [1, 3]] = ((out[:, [1, 3]] - pad_y) / gain_y).clip(0, h)
        return out
