"""Detect stage: person boxes from a frame."""

from fallwatch.detect.yolo import YoloDetector

__all__ = ["YoloDetector"]
