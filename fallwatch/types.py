"""Data passed between stages: small frozen dataclasses of plain numpy arrays, aligned by row.

No framework object (torch tensor, ultralytics result, cv2 handle) crosses a stage boundary, so each stage can be
swapped, tested and replayed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import monotonic

import numpy as np

NUM_KEYPOINTS = 17
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


# Left/right counterpart of each COCO joint: mirroring an image maps joint j to COCO_FLIP_INDEX[j].
COCO_FLIP_INDEX = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
# LSP (Leeds Sports Pose) joints shared with COCO-17: LSP name -> COCO index.
LSP_TO_COCO = {
    "l_shoulder": 5, "r_shoulder": 6, "l_elbow": 7, "r_elbow": 8, "l_wrist": 9, "r_wrist": 10,
    "l_hip": 11, "r_hip": 12, "l_knee": 13, "r_knee": 14, "l_ankle": 15, "r_ankle": 16,
}  # fmt: skip


def _f32(a, shape_tail: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, *shape_tail), np.float32)
    return arr.reshape(-1, *shape_tail)


@dataclass(frozen=True)
class Frame:
    """One decoded frame. `time` is seconds from the source's own timestamps (index / fps as a fallback);
    `captured` is the monotonic clock when it was decoded (a live run's latency is measured from it)."""

    index: int
    time: float
    image: np.ndarray  # H x W x 3 uint8, BGR
    captured: float = field(default_factory=monotonic, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class Detections:
    """Person boxes from the detector: `boxes` (N, 4) xyxy frame pixels, `scores` (N,)."""

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", _f32(self.boxes, (4,)))
        object.__setattr__(self, "scores", _f32(self.scores, ()).reshape(-1))
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class Tracks:
    """Tracked persons this frame: `ids` (M,), `boxes` (M, 4) xyxy, `scores` (M,); `ended` lists ids the tracker
    removed this frame, so later stages can free their per-track state."""

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    ended: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", np.asarray(self.ids, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "boxes", _f32(self.boxes, (4,)))
        object.__setattr__(self, "scores", _f32(self.scores, ()).reshape(-1))
        if not (len(self.ids) == len(self.boxes) == len(self.scores)):
            raise ValueError("ids, boxes and scores must have the same number of rows")

    @classmethod
    def empty(cls, ended: tuple[int, ...] = ()) -> Tracks:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32), ended)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Poses:
    """Keypoints aligned with `Tracks`: (M, 17, 3) of x, y (frame pixels) and score."""

    keypoints: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "keypoints", _f32(self.keypoints, (NUM_KEYPOINTS, 3)))

    def __len__(self) -> int:
        return len(self.keypoints)


STATES = ("ok", "pending", "fallen", "down")
END_REASONS = ("got_up", "left_view", "end_of_input")


@dataclass(frozen=True)
class HeldPerson:
    """A person who is fallen or down (or pending) but not seen by the tracker this frame: kept at the last
    position, because people lying on the floor are often missed by the detector."""

    id: int
    box: np.ndarray
    fall_prob: float
    state: str
    down_since: float | None
    event_id: int | None
    long_lie: bool = False


@dataclass(frozen=True)
class Actions:
    """Fall recognition aligned with `Tracks`: `fall_prob` (M,) NaN until the window is ready; `state` (M,) str;
    `down_since` (M,) seconds, NaN unless down; `event_id` (M,) 0 unless an event is open; `long_lie` (M,) True once
    the person has been down `action.long_lie_s`; `held`: unseen people still fallen, down or pending, at their
    last position."""

    fall_prob: np.ndarray
    state: tuple[str, ...]
    down_since: np.ndarray | None = None
    event_id: np.ndarray | None = None
    held: tuple[HeldPerson, ...] = ()
    long_lie: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.state)


@dataclass(frozen=True)
class FallEvent:
    """A fall of one person: opened (the alarm) when p(fall) has been confirmed, `down` once the fall motion is
    over, closed when the person gets up, leaves the view or the input ends. `id` is the track id at the start;
    `track_ids` every id the person had during the event (a faller is often re-detected under a new id)."""

    id: int
    start_frame: int
    start_time: float
    peak_prob: float
    box_at_start: tuple[float, float, float, float]
    end_frame: int | None = None
    end_time: float | None = None
    event_id: int = 0
    alarm_frame: int = 0
    alarm_time: float = 0.0
    track_ids: tuple[int, ...] = ()
    down_since: float | None = None
    long_lie_frame: int | None = None
    long_lie_time: float | None = None
    end_reason: str | None = None


@dataclass(frozen=True)
class FrameResult:
    """Everything known about one frame after the last stage. Stages not configured leave their field None."""

    index: int
    time: float
    detections: Detections
    tracks: Tracks | None = None
    poses: Poses | None = None
    actions: Actions | None = None
    events: tuple[FallEvent, ...] = field(default_factory=tuple)
