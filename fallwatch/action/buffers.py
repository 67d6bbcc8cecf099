"""Per-track keypoint windows: resampled to a fixed rate from timestamps, low-confidence joints interpolated,
normalised per window, freed when the tracker ends the track.

Why these choices (PP-Human does each differently, and each is a known failure):
- Time, not frame count: a window is `steps` samples at `rate_hz`, linearly interpolated from the frames'
  timestamps, so a 15 fps and a 60 fps camera show the classifier the same motion.
- Gaps: a lost frame or a low-confidence joint is interpolated in time from the samples around it (and held at the
  ends), never zeroed; a joint with no confident sample in the whole window gets visibility 0.
- Normalisation per window, not per frame: coordinates are taken relative to the window's median hip centre and
  divided by its median torso length (shoulder centre to hip centre, which does not shrink when the body turns
  horizontal). A fall therefore stays visible as a drop of the whole body by about one torso length; PP-Human's
  per-frame box-relative coordinates rescale every frame to the box and lose it.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np

L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 5, 6, 11, 12


@dataclass(frozen=True)
class WindowSpec:
    steps: int  # samples per window
    rate_hz: float  # sample rate
    min_span_s: float  # a track's window is ready once it covers this long (earlier samples are edge-padded)
    min_score: float  # joints below this keypoint score are treated as missing
    max_gap_s: float  # a track unseen this long starts a fresh window
    normalisation: str  # "window" (ours) or "frame" (PP-Human-like, per-frame box; kept for comparison)

    @property
    def duration_s(self) -> float:
        return (self.steps - 1) / self.rate_hz


def resample(times: np.ndarray, keypoints: np.ndarray, spec: WindowSpec, end_time: float) -> np.ndarray:
    """(F,) times and (F, 17, 3) keypoints -> (steps, 17, 3) of x, y and visibility (0/1) on the grid ending at
    `end_time`; missing joints interpolated in time, held at the ends."""
    grid = end_time - spec.duration_s + np.arange(spec.steps) / spec.rate_hz
    v = keypoints.shape[1]
    out = np.zeros((spec.steps, v, 3), np.float32)
    ok = (keypoints[:, :, 2] >= spec.min_score) & np.isfinite(keypoints[:, :, :2]).all(-1)
    for j in range(v):
        seen = ok[:, j]
        if not seen.any():
            continue
        t = times[seen]
        out[:, j, 0] = np.interp(grid, t, keypoints[seen, j, 0])
        out[:, j, 1] = np.interp(grid, t, keypoints[seen, j, 1])
        out[:, j, 2] = 1.0
    return out


def normalise(window: np.ndarray, mode: str = "window") -> np.ndarray:
    """(T, V, 3) window -> same, x and y relative to the median hip centre in units of the median torso length
    (`mode="frame"`: each frame relative to its own joints' box centre, in units of that box's longer side)."""
    xy, vis = window[..., :2], window[..., 2] > 0
    out = window.copy()
    if not vis.any():
        return out
    if mode == "frame":
        return _normalise_per_frame(out, xy, vis)
    hips = _mid(xy, vis, L_HIP, R_HIP)
    shoulders = _mid(xy, vis, L_SHOULDER, R_SHOULDER)
    both = np.isfinite(hips).all(1) & np.isfinite(shoulders).all(1)
    if both.any():
        torso = float(np.median(np.linalg.norm(shoulders[both] - hips[both], axis=1)))
    else:  # no torso in view: the extent of the visible joints
        pts = xy[vis]
        torso = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))) / 3.0
    centre_rows = hips[np.isfinite(hips).all(1)]
    centre = np.median(centre_rows, axis=0) if len(centre_rows) else np.median(xy[vis], axis=0)
    torso = max(torso, 1e-3)
    out[..., :2] = np.where(vis[..., None], (xy - centre) / torso, 0.0)
    return out


def _normalise_per_frame(out: np.ndarray, xy: np.ndarray, vis: np.ndarray) -> np.ndarray:
    big = np.where(vis[..., None], xy, np.inf)
    small = np.where(vis[..., None], xy, -np.inf)
    seen = vis.any(axis=1)
    lo = np.where(seen[:, None], big.min(axis=1), 0.0)  # (T, 2); frames with no joint get a dummy box
    hi = np.where(seen[:, None], small.max(axis=1), 1.0)
    centre = (lo + hi) / 2
    size = np.max(hi - lo, axis=1)
    size = np.maximum(size, 1e-3)
    out[..., :2] = np.where(vis[..., None], (xy - centre[:, None]) / size[:, None, None], 0.0)
    return out


def _mid(xy: np.ndarray, vis: np.ndarray, a: int, b: int) -> np.ndarray:
    """(T, 2) midpoint of joints a and b per step, from whichever is visible; NaN where neither is."""
    pts = np.where(vis[:, [a, b], None], xy[:, [a, b]], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are expected
        return np.nanmean(pts, axis=1)


class TrackBuffers:
    """The recent keypoints of every live track, and their normalised windows on demand."""

    def __init__(self, spec: WindowSpec):
        self.spec = spec
        self._data: dict[int, deque] = {}
        self._keep_s = spec.duration_s + 2.0 / spec.rate_hz

    def add(self, time: float, ids: np.ndarray, keypoints: np.ndarray) -> None:
        if not np.isfinite(time):
            return
        for tid, kp in zip(ids, keypoints, strict=True):
            buf = self._data.setdefault(int(tid), deque())
            if buf and (time <= buf[-1][0] or time - buf[-1][0] > self.spec.max_gap_s):
                if time <= buf[-1][0]:
                    continue  # a repeated or backwards timestamp adds nothing
                buf.clear()
            buf.append((float(time), np.asarray(kp, np.float32)))
            while buf and time - buf[0][0] > self._keep_s:
                buf.popleft()

    def forget(self, ids) -> None:
        for tid in ids:
            self._data.pop(int(tid), None)

    def ready(self, tid: int, now: float) -> bool:
        buf = self._data.get(int(tid))
        return bool(buf) and now - buf[0][0] >= self.spec.min_span_s - 1e-9

    def window(self, tid: int, now: float) -> np.ndarray:
        """(steps, 17, 3) normalised window ending at `now`."""
        buf = self._data[int(tid)]
        times = np.array([t for t, _ in buf])
        kps = np.stack([k for _, k in buf])
        return normalise(resample(times, kps, self.spec, now), self.spec.normalisation)

    def __len__(self) -> int:
        return len(self._data)
