"""FallRecognizer: per-track sliding windows -> p(fall) -> fall events with hysteresis.

Every `stride` frames, all ready windows go through the ST-GCN in one batch. A track's state is `pending` while
p(fall) is at or above `on_threshold` but has not stayed there `min_duration_s`, `fallen` inside an open event,
`ok` otherwise. An event opens when the on-threshold has held for `min_duration_s` and closes when p(fall) drops
below `off_threshold` (or the track ends). Between evaluations a track keeps its last probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fallwatch.action.buffers import TrackBuffers, WindowSpec
from fallwatch.action.stgcn import STGCN, STGCNEnsemble, STGCNSpec
from fallwatch.config import ActionConfig, ConfigError
from fallwatch.errors import FallwatchError
from fallwatch.types import Actions, FallEvent, Poses, Tracks

FALL_CLASS = 1


def window_spec(cfg: ActionConfig) -> WindowSpec:
    return WindowSpec(cfg.window_steps, cfg.rate_hz, cfg.min_span_s, cfg.min_keypoint_score, cfg.max_gap_s,
                      cfg.normalisation)


def load_stgcn(path: Path, device: str = "cpu") -> tuple[STGCN | STGCNEnsemble, dict]:
    """A checkpoint written by the trainer: {'spec': dict, 'state_dict': ..., 'window': dict, 'metrics': ...}, or
    one written by `scripts/ensemble_action.py` with `members` (a list of state dicts) instead of `state_dict`."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        spec = STGCNSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["spec"].items()})
        members = []
        for state in ckpt["members"] if "members" in ckpt else [ckpt["state_dict"]]:
            members.append(STGCN(spec))
            members[-1].load_state_dict(state)
        model = STGCNEnsemble(members) if "members" in ckpt else members[0]
    except Exception as exc:
        raise FallwatchError(f"cannot load the fall model {path}: {exc}") from None
    return model.eval().to(device), ckpt


@dataclass
class _TrackState:
    prob: float = float("nan")
    above_since: float | None = None
    event: FallEvent | None = None
    peak: float = 0.0
    history: list = field(default_factory=list)


class FallRecognizer:
    """`update(frame_index, time, tracks, poses) -> (Actions, events opened/closed this frame)`."""

    def __init__(self, cfg: ActionConfig, model: torch.nn.Module, device: str = "cpu",
                 trained_window: dict | None = None):
        spec = window_spec(cfg)
        for key in ("steps", "rate_hz", "normalisation"):
            if trained_window and key in trained_window and trained_window[key] != getattr(spec, key):
                raise ConfigError(f"action: the model was trained with {key}={trained_window[key]!r}, the config "
                                  f"says {getattr(spec, key)!r}")
        self.cfg = cfg
        self.model = model
        self.device = torch.device(device)
        self.buffers = TrackBuffers(window_spec(cfg))
        self.states: dict[int, _TrackState] = {}
        self._frames = 0

    @torch.inference_mode()
    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(N, T, V, 3) normalised windows -> (N,) p(fall)."""
        x = torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 3, 1, 2)[..., None])).to(self.device)
        return torch.softmax(self.model(x).float(), dim=1)[:, FALL_CLASS].cpu().numpy()

    def update(self, frame_index: int, time: float, tracks: Tracks, poses: Poses) -> tuple[Actions, list[FallEvent]]:
        events: list[FallEvent] = []
        for tid in tracks.ended:
            state = self.states.pop(int(tid), None)
            if state is not None and state.event is not None:
                events.append(self._close(state, frame_index, time))
        self.buffers.forget(tracks.ended)
        if not np.isfinite(time):
            time = float("nan")
        kps = np.where(np.isfinite(poses.keypoints), poses.keypoints, np.nan)
        self.buffers.add(time, tracks.ids, kps)
        if self._frames % self.cfg.stride == 0 and np.isfinite(time):
            ready = [int(t) for t in tracks.ids if self.buffers.ready(int(t), time)]
            if ready:
                windows = np.stack([self.buffers.window(t, time) for t in ready])
                for tid, p in zip(ready, self.probabilities(windows), strict=True):
                    self.states.setdefault(tid, _TrackState()).prob = float(p)
        self._frames += 1

        probs, states = [], []
        for i, tid in enumerate(tracks.ids):
            state = self.states.setdefault(int(tid), _TrackState())
            label, event = self._step(state, int(tid), frame_index, time, tracks.boxes[i])
            if event is not None:
                events.append(event)
            probs.append(state.prob)
            states.append(label)
        return Actions(np.asarray(probs, np.float32), tuple(states)), events

    def _step(self, state: _TrackState, tid: int, frame_index: int, time: float, box) -> tuple[str, FallEvent | None]:
        p, cfg = state.prob, self.cfg
        if state.event is not None:
            state.peak = max(state.peak, p) if np.isfinite(p) else state.peak
            if np.isfinite(p) and p < cfg.off_threshold:
                return "ok", self._close(state, frame_index, time)
            return "fallen", None
        if not (np.isfinite(p) and p >= cfg.on_threshold):
            state.above_since = None
            return "ok", None
        if state.above_since is None:
            state.above_since = time
            state.history = [(frame_index, time, tuple(float(v) for v in box))]
            state.peak = p
        state.peak = max(state.peak, p)
        if time - state.above_since >= cfg.min_duration_s - 1e-9:
            start_frame, start_time, start_box = state.history[0]
            state.event = FallEvent(tid, start_frame, start_time, state.peak, start_box)
            return "fallen", state.event
        return "pending", None

    def _close(self, state: _TrackState, frame_index: int, time: float) -> FallEvent:
        e = state.event
        closed = FallEvent(e.id, e.start_frame, e.start_time, max(e.peak_prob, state.peak), e.box_at_start,
                           frame_index, time if np.isfinite(time) else None)
        state.event, state.above_since = None, None
        return closed

    def open_events(self) -> list[FallEvent]:
        return [s.event for s in self.states.values() if s.event is not None]
