"""Fall state per person: `ok` -> `pending` -> `fallen` (the alarm: an event opens) -> `down` -> the event ends.

Why per person: the classifier scores one track id's window, but the alarm is about a person, and a track-level
policy loses real falls in exactly the ways a person outlives a track id:
- the faller is missed for a frame at the landing and comes back under a new id: a new track that is not upright
  and whose centre lies within `reassociate_radius` box sizes of an unseen fallen, down or pending person continues
  that person (state, open event, standing height); the event lists every id in `track_ids`;
- a person lying on the floor is often missed by the detector for seconds: a fallen or down person who is unseen
  stays down at the last position (`held`) for up to `down_hold_s`; after that they have left the view;
- the track vanishes at the landing while `pending` (p(fall) above the on-threshold, not yet for
  `min_duration_s`): unless the person was last seen upright, the pending timer keeps running on the last p(fall)
  for up to `max_gap_s`, so the event still opens.
Once the alarm is raised the person is `down` as soon as they are not upright — upright being a box taller than
wide and at least `upright_ratio` of their standing height (the 90th percentile of their upright box heights over
the last seconds before the fall) — and stays `down` until upright again for `getup_s`: the event ends `got_up`.
A person still upright at the alarm is `fallen` until low, or until p(fall) drops below `off_threshold` while
still upright (a stumble caught, or a false alarm): the event then ends `got_up` at once. A person down for
`long_lie_s` since the alarm raises a second alert (long lie) on the same event.

A box cut by the frame edge, still upright-shaped, whose knees and ankles are unseen cannot show a fall — it is
typically someone walking towards the camera out of the bottom of the frame, whose hips seem to drop as they grow —
so with `edge_gate` such a box never makes a person `pending`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from fallwatch.config import ActionConfig
from fallwatch.types import FallEvent, HeldPerson, Tracks

LOWER_BODY = (13, 14, 15, 16)  # COCO knees and ankles
STANDING_WINDOW_S = 3.0  # the standing height is taken over this much of the person's upright history
OK_FORGET_S = 60.0  # an `ok` person unseen this long is forgotten even if the tracker never reported the id ended
EPS = 1e-9


def is_upright(box: np.ndarray, standing_height: float | None, ratio: float) -> bool:
    """Taller than wide and, when the standing height is known, at least `ratio` of it."""
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    return h >= w and (standing_height is None or h >= ratio * standing_height)


def cut_off(box: np.ndarray, keypoints: np.ndarray, frame_size: tuple[int, int] | None, min_score: float) -> bool:
    """An upright-shaped box touching the frame edge with fewer than two of the knees and ankles seen."""
    if frame_size is None:
        return False
    width, height = frame_size
    margin = 2.0 + 0.01 * max(width, height)
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x1 <= margin or y1 <= margin or x2 >= width - margin or y2 >= height - margin) or (y2 - y1) < (x2 - x1):
        return False
    lower = keypoints[list(LOWER_BODY)]
    seen = np.isfinite(lower[:, :2]).all(axis=1) & (np.nan_to_num(lower[:, 2]) >= min_score)
    return int(seen.sum()) < 2


@dataclass
class Person:
    track_id: int
    box: np.ndarray
    last_frame: int
    last_time: float
    track_ids: list[int]
    prob: float = float("nan")
    phase: str = "ok"  # ok | pending | fallen | down
    above_since: float | None = None
    pending_start: tuple[int, float, tuple[float, ...]] | None = None
    peak: float = 0.0
    event: FallEvent | None = None
    upright_since: float | None = None
    standing: deque = field(default_factory=lambda: deque(maxlen=512))  # (time, box height) while upright and ok
    standing_height: float | None = None  # frozen when the person leaves `ok`

    def current_standing_height(self) -> float | None:
        if self.phase != "ok":
            return self.standing_height
        recent = [h for t, h in self.standing if self.last_time - t <= STANDING_WINDOW_S]
        return float(np.percentile(recent, 90)) if len(recent) >= 3 else self.standing_height


class PersonStates:
    """`step(...)` once per frame after p(fall) is known for the tracks evaluated this frame."""

    def __init__(self, cfg: ActionConfig):
        self.cfg = cfg
        self.people: dict[int, Person] = {}
        self._next_event_id = 1

    def step(self, frame_index: int, time: float, tracks: Tracks, keypoints: np.ndarray, probs: dict[int, float],
             frame_size: tuple[int, int] | None = None) -> tuple[list[Person], list[HeldPerson], list[FallEvent]]:
        """Advance every person; returns the people aligned with `tracks`, the unseen people still held, and the
        events opened, updated (new id, long lie) or closed this frame."""
        changes: list[FallEvent] = []
        ended = {int(t) for t in tracks.ended}
        seen = {int(t) for t in tracks.ids}
        for i, tid in enumerate(int(t) for t in tracks.ids):
            if tid not in self.people:
                self.people[tid] = self._continued(tid, tracks.boxes[i], time, seen, changes) or Person(
                    tid, tracks.boxes[i], frame_index, time, [tid])
        aligned = []
        for i, tid in enumerate(int(t) for t in tracks.ids):
            person = self.people[tid]
            person.box, person.last_frame, person.last_time = tracks.boxes[i], frame_index, time
            person.prob = probs.get(tid, person.prob)
            gated = self.cfg.edge_gate and cut_off(person.box, keypoints[i], frame_size, self.cfg.min_keypoint_score)
            self._advance(person, frame_index, time, gated, changes)
            aligned.append(person)
        held = []
        for tid, person in list(self.people.items()):
            if tid in seen:
                continue
            if self._unseen(person, frame_index, time, tid in ended, changes):
                e = person.event
                held.append(HeldPerson(tid, person.box, person.prob, person.phase, self.down_since(person),
                                       e.event_id if e else None, bool(e and e.long_lie_time is not None)))
        return aligned, held, changes

    def finish(self, frame_index: int, time: float) -> list[FallEvent]:
        """Close every open event at the end of the input."""
        return [self._close(p, frame_index, time, "end_of_input") for p in self.people.values() if p.event]

    @staticmethod
    def down_since(person: Person) -> float | None:
        return person.event.down_since if person.event is not None else None

    def _continued(self, tid: int, box: np.ndarray, time: float, seen: set[int],
                   changes: list[FallEvent]) -> Person | None:
        """The unseen fallen, down or pending person this new track continues, moved to the new id, if any."""
        best, best_distance = None, np.inf
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        for person in self.people.values():
            limit = self.cfg.down_hold_s if person.event is not None else self.cfg.max_gap_s
            if person.phase == "ok" or person.track_id in seen or time - person.last_time > limit:
                continue
            if is_upright(box, person.standing_height, self.cfg.upright_ratio):
                continue  # someone upright is not the person on the floor
            last = person.box
            size = max(float(last[2] - last[0]), float(last[3] - last[1]), 1.0)
            distance = np.hypot(*(centre - [(last[0] + last[2]) / 2, (last[1] + last[3]) / 2])) / size
            if distance <= self.cfg.reassociate_radius and distance < best_distance:
                best, best_distance = person, distance
        if best is None:
            return None
        del self.people[best.track_id]
        best.track_id = tid
        best.track_ids.append(tid)
        if best.event is not None:
            best.event = replace(best.event, track_ids=tuple(best.track_ids))
            changes.append(best.event)
        return best

    def _advance(self, person: Person, frame_index: int, time: float, gated: bool, changes: list[FallEvent]) -> None:
        cfg, p = self.cfg, person.prob
        if person.event is not None:
            if np.isfinite(p):
                person.peak = max(person.peak, p)
            upright = is_upright(person.box, person.standing_height, cfg.upright_ratio)
            if person.phase == "fallen":
                if not upright:
                    person.phase = "down"
                elif np.isfinite(p) and p < cfg.off_threshold:  # never got low and the fall motion is over
                    changes.append(self._close(person, frame_index, time, "got_up"))
                    return
            if person.phase == "down":
                person.upright_since = (person.upright_since or time) if upright else None
                if upright and time - person.upright_since >= cfg.getup_s - EPS:
                    changes.append(self._close(person, frame_index, time, "got_up"))
                    return
            self._long_lie(person, frame_index, time, changes)
            return
        if gated or not (np.isfinite(p) and p >= cfg.on_threshold):
            person.phase, person.above_since = "ok", None
            w, h = float(person.box[2] - person.box[0]), float(person.box[3] - person.box[1])
            if h >= w:
                person.standing.append((time, h))
            return
        self._pending(person, frame_index, time, changes)

    def _pending(self, person: Person, frame_index: int, time: float, changes: list[FallEvent]) -> None:
        """p(fall) is above the on-threshold (or was when the person was last seen): confirm after min_duration_s."""
        if person.above_since is None:
            person.standing_height = person.current_standing_height()
            person.above_since, person.peak = time, person.prob
            person.pending_start = (person.last_frame, time, tuple(float(v) for v in person.box))
        person.phase = "pending"
        person.peak = max(person.peak, person.prob)
        if self.cfg.confirm_low and is_upright(person.box, person.standing_height, self.cfg.upright_ratio):
            return  # the fall is confirmed once the person is low: an upright person stays pending
        if time - person.above_since >= self.cfg.min_duration_s - EPS:
            start_frame, start_time, start_box = person.pending_start
            person.event = FallEvent(
                person.track_id, start_frame, start_time, person.peak, start_box, event_id=self._next_event_id,
                alarm_frame=frame_index, alarm_time=time, track_ids=tuple(person.track_ids), down_since=time)
            self._next_event_id += 1
            person.phase = "fallen"
            changes.append(person.event)

    def _unseen(self, person: Person, frame_index: int, time: float, ended: bool, changes: list[FallEvent]) -> bool:
        """Advance a person the tracker does not report this frame; True if they are still held (kept visible)."""
        away = time - person.last_time
        if person.event is not None:
            if away > self.cfg.down_hold_s:
                changes.append(self._close(person, frame_index, time, "left_view"))
                del self.people[person.track_id]
                return False
            if not is_upright(person.box, person.standing_height, self.cfg.upright_ratio):
                person.phase = "down"
            self._long_lie(person, frame_index, time, changes)
            return True
        if person.phase == "pending":
            if away <= self.cfg.max_gap_s:
                # Last seen low: the evidence stands and the alarm may open while unseen. Last seen upright: wait
                # (the timer keeps its start, as for a track that is back after a short miss).
                low = not is_upright(person.box, person.standing_height, self.cfg.upright_ratio)
                if low:
                    self._pending(person, frame_index, time, changes)
                return low or person.event is not None
            person.phase, person.above_since = "ok", None
        if ended or away > OK_FORGET_S:
            del self.people[person.track_id]
        return False

    def _long_lie(self, person: Person, frame_index: int, time: float, changes: list[FallEvent]) -> None:
        e = person.event
        if e.long_lie_time is None and e.down_since is not None and time - e.down_since >= self.cfg.long_lie_s - EPS:
            person.event = replace(e, long_lie_frame=frame_index, long_lie_time=time)
            changes.append(person.event)

    def _close(self, person: Person, frame_index: int, time: float, reason: str) -> FallEvent:
        e = person.event
        closed = replace(e, peak_prob=max(e.peak_prob, person.peak), end_frame=frame_index,
                         end_time=time if np.isfinite(time) else None, end_reason=reason)
        person.event, person.phase, person.above_since, person.upright_since = None, "ok", None, None
        person.standing.clear()
        return closed
