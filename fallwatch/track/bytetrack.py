"""ByteTrack (Zhang et al., ECCV 2022): associate every detection box, the weak ones in a second round.

Round 1: high-score detections against tracked + lost tracks (IoU cost, fused with the score). Round 2: tracks left
over from round 1 that were tracked last frame, against low-score detections (IoU only) - this is what keeps a
partly occluded or falling person's track alive when the detector is unsure. Then unconfirmed (one-frame) tracks
against the high-score leftovers, new tracks from confident leftovers, and removal of tracks lost too long.

There is deliberately no aspect-ratio filter (the original demo drops w/h > 1.6): a fallen person is a wide box.

Where ultralytics' BYTETracker behaves differently, its behaviour is a switch (`predict_new_tracks: false`,
`lost_track_rule: ultralytics`); with both, the output equals ultralytics' frame for frame (tests/test_tracker.py).
"""

from __future__ import annotations

import numpy as np

from fallwatch.config import TrackConfig
from fallwatch.track.kalman import XYAH, BoxKalman
from fallwatch.track.matching import fuse_score, iou_cost, linear_assignment
from fallwatch.types import Detections, Tracks

TRACKED, LOST, REMOVED = 0, 1, 2
DUPLICATE_IOU_COST = 0.15  # tracked and lost tracks overlapping above IoU 0.85 are the same person (ByteTrack)


class Track:
    """One person's filter state and bookkeeping."""

    __slots__ = ("id", "mean", "cov", "score", "state", "activated", "start_frame", "frame_id", "box", "feature",
                 "on_probation")

    def __init__(self, track_id: int, mean, cov, box, score: float, frame_id: int, feature=None):
        self.id = track_id
        self.mean, self.cov = mean, cov
        self.box = box  # last matched detection, xyxy
        self.score = score
        self.state = TRACKED
        self.activated = False
        self.start_frame = self.frame_id = frame_id
        self.feature = feature
        self.on_probation = False  # lost_track_rule ultralytics: re-found in its grace frame, removed when next lost


class ByteTracker:
    """`update(detections, image) -> Tracks`. Ids start at 1, are given when a track is confirmed, and are never
    reused within one tracker."""

    kalman: BoxKalman = XYAH

    def __init__(self, cfg: TrackConfig, fps: float):
        self.cfg = cfg
        fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
        if cfg.track_buffer_s is not None:
            self.max_time_lost = max(1, int(round(cfg.track_buffer_s * fps)))
        else:
            self.max_time_lost = max(1, int(fps / 30.0 * cfg.track_buffer))
        self.frame_id = 0
        self.tracked: list[Track] = []
        self.lost: list[Track] = []
        self._next_id = 1
        self._grace: list[Track] = []  # lost_track_rule ultralytics: removed last frame, still matchable this frame

    # ---- hooks for BoT-SORT ----------------------------------------------------------------------------------
    def _features(self, image: np.ndarray | None, boxes: np.ndarray) -> np.ndarray | None:
        return None

    def _compensate_motion(self, image: np.ndarray | None, tracks: list[Track], boxes: np.ndarray) -> None:
        return None

    def _first_cost(self, tracks: list[Track], boxes, scores, feats) -> np.ndarray:
        cost = iou_cost(self._predicted_boxes(tracks), boxes)
        return fuse_score(cost, scores) if self.cfg.fuse_score else cost

    # ---- main loop ---------------------------------------------------------------------------------------------
    def update(self, detections: Detections, image: np.ndarray | None = None) -> Tracks:
        cfg = self.cfg
        self.frame_id += 1
        boxes, scores = self._sanitize(detections, image)
        feats = self._features(image, boxes)
        high = np.flatnonzero(scores >= cfg.track_high_thresh)
        low = np.flatnonzero((scores > cfg.track_low_thresh) & (scores < cfg.track_high_thresh))

        unconfirmed = [t for t in self.tracked if not t.activated]
        pool = [t for t in self.tracked if t.activated] + self.lost
        self._predict(pool + unconfirmed if cfg.predict_new_tracks else pool)
        self._compensate_motion(image, pool + unconfirmed, boxes[high])
        updates: list[tuple[Track, int]] = []

        # Round 1: high-score detections against every confirmed track, tracked or lost.
        cost = self._first_cost(pool, boxes[high], scores[high], _rows(feats, high))
        matches, u_track, u_high = linear_assignment(cost, cfg.match_thresh)
        updates += [(pool[r], int(high[c])) for r, c in matches]

        # Round 2: still-unmatched tracked tracks against low-score detections, IoU only.
        remaining = [pool[i] for i in u_track if pool[i].state == TRACKED]
        cost = iou_cost(self._predicted_boxes(remaining), boxes[low])
        matches, u_remaining, _ = linear_assignment(cost, cfg.second_match_thresh)
        updates += [(remaining[r], int(low[c])) for r, c in matches]
        for i in u_remaining:
            remaining[i].state = LOST

        # Unconfirmed tracks against the high-score leftovers; an unconfirmed track that misses once is dropped.
        left = high[u_high]
        cost = self._first_cost(unconfirmed, boxes[left], scores[left], _rows(feats, left))
        matches, u_unconfirmed, u_left = linear_assignment(cost, cfg.unconfirmed_match_thresh)
        updates += [(unconfirmed[r], int(left[c])) for r, c in matches]
        removed = [unconfirmed[i] for i in u_unconfirmed]

        self._apply_updates(updates, boxes, scores, feats)
        new = self._start_tracks(left[u_left], boxes, scores, feats)
        stale = [t for t in self.lost if t.state == LOST and self.frame_id - t.frame_id > self.max_time_lost]
        removed += self._ultralytics_lifetime(pool, stale) if cfg.lost_track_rule == "ultralytics" else stale
        for t in removed:
            t.state = REMOVED

        everyone = self.tracked + self.lost + new
        self.tracked = [t for t in everyone if t.state == TRACKED]
        self.lost = [t for t in everyone if t.state == LOST]
        removed += self._remove_duplicates()
        return self._output(removed)

    def coast(self) -> Tracks:
        """A frame the detector skipped (`detect.every` > 1): every track moves by its filter's prediction, and
        nobody is matched, started, lost or removed. Shown boxes are the predictions."""
        self.frame_id += 1
        unconfirmed = [t for t in self.tracked if not t.activated]
        pool = [t for t in self.tracked if t.activated] + self.lost
        self._predict(pool + unconfirmed if self.cfg.predict_new_tracks else pool)
        shown = [t for t in self.tracked if t.activated]
        if not shown:
            return Tracks.empty()
        return Tracks(np.array([t.id for t in shown]), self._predicted_boxes(shown), np.array([t.score for t in shown]))

    # ---- steps -------------------------------------------------------------------------------------------------
    def _sanitize(self, detections: Detections, image: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Drop non-finite and empty boxes, clip to the frame; never filter on aspect ratio."""
        boxes = np.asarray(detections.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(detections.scores, np.float64).reshape(-1)
        finite = np.isfinite(boxes).all(1) & np.isfinite(scores)
        boxes, scores = boxes[finite], scores[finite]
        if image is not None and image.ndim >= 2:
            h, w = image.shape[:2]
            boxes = np.clip(boxes, 0, [w, h, w, h])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (area >= self.cfg.min_box_area)
        return boxes[ok], scores[ok]

    def _ultralytics_lifetime(self, pool: list[Track], stale: list[Track]) -> list[Track]:
        """Lost-track removal as ultralytics' BYTETracker actually behaves: a stale track stays in the lost pool
        (matchable) one more frame, because its removed list is applied a frame late; and as that list is matched
        by id, a track re-found in its grace frame disappears the next time it is lost. Reproduced only on request
        (`lost_track_rule: ultralytics`: comparisons, users who must keep an ultralytics pipeline's ids)."""
        ended = [t for t in pool if t.state == LOST and t.on_probation]
        for t in self._grace:
            if t.state == TRACKED:
                t.on_probation = True
            elif t.state == LOST:
                ended.append(t)
        self._grace = [t for t in stale if t not in ended]
        return ended

    def _predict(self, tracks: list[Track]) -> None:
        if not tracks:
            return
        mean = np.stack([t.mean for t in tracks])
        cov = np.stack([t.cov for t in tracks])
        not_tracked = np.array([t.state != TRACKED for t in tracks])
        mean[not_tracked, 7] = 0.0  # a lost track's height stops changing
        mean, cov = self.kalman.predict(mean, cov)
        for t, m, c in zip(tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _predicted_boxes(self, tracks: list[Track]) -> np.ndarray:
        if not tracks:
            return np.zeros((0, 4))
        return self.kalman.to_xyxy(np.stack([t.mean for t in tracks]))

    def _apply_updates(self, updates: list[tuple[Track, int]], boxes, scores, feats) -> None:
        if not updates:
            return
        tracks = [t for t, _ in updates]
        idx = np.array([d for _, d in updates])
        mean, cov = self.kalman.update(
            np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]), self.kalman.from_xyxy(boxes[idx])
        )
        for k, t in enumerate(tracks):
            d = idx[k]
            t.mean, t.cov = mean[k], cov[k]
            t.box, t.score = boxes[d], float(scores[d])
            if not t.activated:
                self._confirm(t)
            t.state, t.frame_id = TRACKED, self.frame_id
            if feats is not None:
                self._update_feature(t, feats[d])

    def _update_feature(self, track: Track, feature: np.ndarray) -> None:
        return None

    def _start_tracks(self, idx: np.ndarray, boxes, scores, feats) -> list[Track]:
        idx = idx[scores[idx] >= self.cfg.new_track_thresh]
        if len(idx) == 0:
            return []
        mean, cov = self.kalman.initiate(self.kalman.from_xyxy(boxes[idx]))
        tracks = []
        for k, d in enumerate(idx):
            t = Track(0, mean[k], cov[k], boxes[d], float(scores[d]), self.frame_id)
            t.feature = None if feats is None else feats[d]
            if self.frame_id == 1:  # elsewhere a new track is confirmed by a second detection
                self._confirm(t)
            tracks.append(t)
        return tracks

    def _confirm(self, track: Track) -> None:
        """Ids are given on confirmation, so the ids users see are consecutive (a one-frame blip takes none)."""
        track.activated = True
        track.id = self._next_id
        self._next_id += 1

    def _remove_duplicates(self) -> list[Track]:
        """A lost track that overlaps a tracked one is the same person: keep whichever has lived longer."""
        if not self.tracked or not self.lost:
            return []
        cost = iou_cost(self._predicted_boxes(self.tracked), self._predicted_boxes(self.lost))
        drop_tracked, drop_lost = set(), set()
        for p, q in zip(*np.nonzero(cost < DUPLICATE_IOU_COST), strict=True):
            a, b = self.tracked[p], self.lost[q]
            if a.frame_id - a.start_frame > b.frame_id - b.start_frame:
                drop_lost.add(q)
            else:
                drop_tracked.add(p)
        dropped = [self.tracked[i] for i in drop_tracked] + [self.lost[i] for i in drop_lost]
        self.tracked = [t for i, t in enumerate(self.tracked) if i not in drop_tracked]
        self.lost = [t for i, t in enumerate(self.lost) if i not in drop_lost]
        for t in dropped:
            t.state = REMOVED
        return dropped

    def _output(self, removed: list[Track]) -> Tracks:
        shown = [t for t in self.tracked if t.activated]
        ended = tuple(sorted({t.id for t in removed if t.activated}))
        if not shown:
            return Tracks.empty(ended)
        if self.cfg.output_box == "filtered":
            boxes = self.kalman.to_xyxy(np.stack([t.mean for t in shown]))
        else:
            boxes = np.stack([t.box for t in shown])
        return Tracks(np.array([t.id for t in shown]), boxes, np.array([t.score for t in shown]), ended)


def _rows(feats: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if feats is None else feats[idx]
