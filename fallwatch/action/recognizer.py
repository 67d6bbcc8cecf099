"""FallRecognizer: per-track sliding windows -> p(fall) -> per-person fall states and events.

Every `stride` frames, all ready windows go through the ST-GCN in one batch; between evaluations a track keeps its
last probability. What the probabilities mean for a person — `pending` while p(fall) is at or above `on_threshold`
but not yet for `min_duration_s`, `fallen` once the event opens (the alarm), `down` after the fall motion until the
person gets up or leaves, carried across track ids — is `fallwatch.action.persons`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fallwatch.action.buffers import TrackBuffers, WindowSpec
from fallwatch.action.persons import PersonStates
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


class FallRecognizer:
    """`update(frame_index, time, tracks, poses, frame_size) -> (Actions, events opened/updated/closed this frame)`;
    `finish(frame_index, time)` closes the events still open at the end of the input."""

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
        self.persons = PersonStates(cfg)
        self._frames = 0

    @torch.inference_mode()
    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(N, T, V, 3) normalised windows -> (N,) p(fall)."""
        x = torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 3, 1, 2)[..., None])).to(self.device)
        return torch.softmax(self.model(x).float(), dim=1)[:, FALL_CLASS].cpu().numpy()

    def update(self, frame_index: int, time: float, tracks: Tracks, poses: Poses,
               frame_size: tuple[int, int] | None = None) -> tuple[Actions, list[FallEvent]]:
        self.buffers.forget(tracks.ended)
        if not np.isfinite(time):
            time = float("nan")
        kps = np.where(np.isfinite(poses.keypoints), poses.keypoints, np.nan)
        self.buffers.add(time, tracks.ids, kps)
        probs: dict[int, float] = {}
        if self._frames % self.cfg.stride == 0 and np.isfinite(time):
            ready = [int(t) for t in tracks.ids if self.buffers.ready(int(t), time)]
            if ready:
                windows = np.stack([self.buffers.window(t, time) for t in ready])
                probs = dict(zip(ready, (float(p) for p in self.probabilities(windows)), strict=True))
        self._frames += 1
        people, held, events = self.persons.step(frame_index, time, tracks, kps, probs, frame_size)
        down_since = [PersonStates.down_since(p) for p in people]
        actions = Actions(
            np.asarray([p.prob for p in people], np.float32),
            tuple(p.phase for p in people),
            np.asarray([np.nan if d is None else d for d in down_since], np.float64),
            np.asarray([p.event.event_id if p.event else 0 for p in people], np.int64),
            tuple(held),
            np.asarray([bool(p.event and p.event.long_lie_time is not None) for p in people], bool),
        )
        return actions, events

    def finish(self, frame_index: int, time: float) -> list[FallEvent]:
        return self.persons.finish(frame_index, time)

    def open_events(self) -> list[FallEvent]:
        return [p.event for p in self.persons.people.values() if p.event is not None]
