"""Constant-velocity Kalman filters for boxes, batched over tracks.

State is 8-D: a 4-D box measurement plus its velocity. `XYAH` (centre x, centre y, aspect w/h, height) is
ByteTrack's; `XYWH` (centre, width, height) is BoT-SORT's. Noise scales with the box size (std weights 1/20 for
position and 1/160 for velocity, as in ByteTrack/DeepSORT), so the filter behaves the same near and far.

The per-frame work is batched numpy (predict and update of all tracks at once), because a filter object per track
costs more than the tracker's whole 1 ms budget at 30 tracks. `filterpy_reference` builds the equivalent
`filterpy.kalman.KalmanFilter` for one track; the tests hold the batched maths to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # x_{t+1} = x_t + v_t
_H = np.eye(4, 8)


@dataclass(frozen=True)
class BoxKalman:
    """One filter layout: `xyah` (aspect noise is a constant, size noise scales with height) or `xywh`."""

    name: str

    # ---- measurement conversions -------------------------------------------------------------------------
    def from_xyxy(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
        if self.name == "xyah":
            return np.stack([cx, cy, w / h, h], axis=1)
        return np.stack([cx, cy, w, h], axis=1)

    def to_xyxy(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, np.float64).reshape(-1, state.shape[-1])
        if self.name == "xyah":
            w, h = state[:, 2] * state[:, 3], state[:, 3]
        else:
            w, h = state[:, 2], state[:, 3]
        return np.stack([state[:, 0] - w / 2, state[:, 1] - h / 2, state[:, 0] + w / 2, state[:, 1] + h / 2], 1)

    def _stds(self, z: np.ndarray, pos: float, vel: float, aspect_pos: float, aspect_vel: float) -> np.ndarray:
        """(N, 8) standard deviations for position (pos x size) and velocity (vel x size) entries."""
        if self.name == "xyah":
            h = z[:, 3:4]
            p = np.concatenate([pos * h, pos * h, np.full_like(h, aspect_pos), pos * h], 1)
            v = np.concatenate([vel * h, vel * h, np.full_like(h, aspect_vel), vel * h], 1)
        else:
            wh = z[:, 2:4]
            p = np.concatenate([pos * wh, pos * wh], 1)
            v = np.concatenate([vel * wh, vel * wh], 1)
        return np.concatenate([p, v], 1)

    # ---- filter --------------------------------------------------------------------------------------------
    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from (N, 4) measurements: means (N, 8), covariances (N, 8, 8)."""
        z = np.asarray(z, np.float64).reshape(-1, 4)
        mean = np.concatenate([z, np.zeros_like(z)], 1)
        std = self._stds(z, 2 * STD_WEIGHT_POSITION, 10 * STD_WEIGHT_VELOCITY, 1e-2, 1e-5)
        return mean, _diag(std**2)

    def process_noise(self, mean: np.ndarray) -> np.ndarray:
        return _diag(self._stds(mean[:, :4], STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY, 1e-2, 1e-5) ** 2)

    def measurement_noise(self, mean: np.ndarray) -> np.ndarray:
        std = self._stds(mean[:, :4], STD_WEIGHT_POSITION, 0.0, 1e-1, 0.0)[:, :4]
        return _diag(std**2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x <- F x, P <- F P F^T + Q, for all tracks at once."""
        if len(mean) == 0:
            return mean, cov
        q = self.process_noise(mean)
        mean = mean @ _F.T
        cov = _F @ cov @ _F.T + q
        return mean, cov

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standard Kalman correction with measurements z (N, 4), for all tracks at once."""
        if len(mean) == 0:
            return mean, cov
        s = _H @ cov @ _H.T + self.measurement_noise(mean)  # (N, 4, 4)
        pht = cov @ _H.T  # (N, 8, 4)
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H^T S^-1 (S symmetric)
        innovation = np.asarray(z, np.float64).reshape(-1, 4) - mean[:, :4]
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        cov = cov - gain @ s @ gain.transpose(0, 2, 1)
        return mean, cov


def _diag(values: np.ndarray) -> np.ndarray:
    n, d = values.shape
    out = np.zeros((n, d, d))
    idx = np.arange(d)
    out[:, idx, idx] = values
    return out


XYAH = BoxKalman("xyah")
XYWH = BoxKalman("xywh")


def warp_states(mean: np.ndarray, cov: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 2x3 camera-motion affine to states (positions, sizes and velocities rotate/scale; centres shift)."""
    if len(mean) == 0:
        return mean, cov
    r = np.asarray(affine, np.float64)[:2, :2]
    t = np.asarray(affine, np.float64)[:2, 2]
    r8 = np.kron(np.eye(4), r)
    mean = mean @ r8.T
    mean[:, :2] += t
    cov = r8 @ cov @ r8.T
    return mean, cov


def filterpy_reference(layout: BoxKalman, z: np.ndarray):
    """A `filterpy.kalman.KalmanFilter` for one track, initiated at measurement z, with this layout's model."""
    from filterpy.kalman import KalmanFilter

    mean, cov = layout.initiate(np.asarray(z)[None])
    kf = KalmanFilter(dim_x=8, dim_z=4)
    kf.F, kf.H = _F.copy(), _H.copy()
    kf.x, kf.P = mean[0].reshape(8, 1), cov[0]
    return kf


def filterpy_step(layout: BoxKalman, kf, z: np.ndarray | None) -> None:
    """Predict (and update with z) the filterpy reference, refreshing its size-dependent noise first."""
    kf.Q = layout.process_noise(kf.x.reshape(1, 8))[0]
    kf.predict()
    if z is not None:
        kf.R = layout.measurement_noise(kf.x.reshape(1, 8))[0]
        kf.update(np.asarray(z, np.float64).reshape(4, 1))
