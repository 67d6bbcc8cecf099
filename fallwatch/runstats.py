"""What a run measures while it goes: time per stage, capture-to-result latency, and the counts in the summary."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from fallwatch.types import FrameResult


@dataclass
class StageTimer:
    """Accumulated wall time per stage, in seconds. Stages may be timed on different threads (each stage on one)."""

    total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.total[stage] += time.perf_counter() - t0
            self.calls[stage] += 1

    def mean_ms(self) -> dict[str, float]:
        return {k: round(1000 * v / max(self.calls[k], 1), 3) for k, v in list(self.total.items())}


class LatencyStats:
    """Capture-to-result latency of a live run in 1 ms bins up to a minute: constant memory for a week-long run."""

    BINS = 60_000

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS + 1, np.int64)  # the last bin holds everything slower
        self.worst = 0.0

    def add(self, seconds: float) -> None:
        ms = max(0.0, seconds * 1000)
        self.counts[min(int(ms), self.BINS)] += 1
        self.worst = max(self.worst, ms)

    def summary(self) -> dict[str, float] | None:
        total = int(self.counts.sum())
        if total == 0:
            return None
        cumulative = np.cumsum(self.counts)
        quantile = {q: float(np.searchsorted(cumulative, q * total)) + 0.5 for q in (0.5, 0.95)}
        return {"p50": quantile[0.5], "p95": quantile[0.95], "max": round(self.worst, 1), "frames": total}



@dataclass
class Counts:
    frames: int = 0
    detections: int = 0
    persons: int = 0
    ids: set = field(default_factory=set)
    events: set = field(default_factory=set)
    latency: LatencyStats = field(default_factory=LatencyStats)

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.detections += len(result.detections)
        if result.tracks is not None:
            self.persons += len(result.tracks)
            self.ids.update(int(i) for i in result.tracks.ids)
        else:
            self.persons += len(result.detections)
        self.add_events(result.events)

    def add_events(self, events) -> None:
        self.events.update(e.event_id for e in events)

    def as_dict(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "detections": self.detections,
            "persons": self.persons,
            "tracks": len(self.ids),
            "events": len(self.events),
        }
