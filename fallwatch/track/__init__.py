"""Track stage: stable ids across frames (ByteTrack, BoT-SORT)."""

from __future__ import annotations

from fallwatch.config import TrackConfig
from fallwatch.track.botsort import BoTSORT
from fallwatch.track.bytetrack import ByteTracker


def build_tracker(cfg: TrackConfig, fps: float, embedder=None) -> ByteTracker:
    """A fresh tracker for one input (state and ids are per input)."""
    if cfg.tracker == "botsort":
        return BoTSORT(cfg, fps, embedder)
    return ByteTracker(cfg, fps)


__all__ = ["BoTSORT", "ByteTracker", "build_tracker"]
