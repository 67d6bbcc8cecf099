"""One-Euro filter for keypoints, per track id (Casiez, Roussel and Vogel, CHI 2012).

A low-pass filter whose cutoff rises with speed: still joints are smoothed hard (jitter goes), fast ones hardly at
all (no lag on a fall). Vectorised over the 17 joints; time comes from the frames' timestamps, so the filter means
the same at 15 and 60 fps.
"""

from __future__ import annotations

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class KeypointSmoother:
    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._state: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}  # id -> (x, dx, t)

    def __call__(self, track_id: int, xy: np.ndarray, t: float) -> np.ndarray:
        """Smooth one person's (17, 2) coordinates observed at time t (seconds)."""
        prev = self._state.get(track_id)
        if prev is None or not np.isfinite(prev[0]).all() or t <= prev[2]:
            self._state[track_id] = (xy.copy(), np.zeros_like(xy), t)
            return xy
        x_prev, dx_prev, t_prev = prev
        dt = t - t_prev
        dx = (xy - x_prev) / dt
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        x_hat = np.where(np.isfinite(xy), a * xy + (1 - a) * x_prev, xy)
        self._state[track_id] = (x_hat, dx_hat, t)
        return x_hat

    def forget(self, track_ids) -> None:
        for tid in track_ids:
            self._state.pop(int(tid), None)
