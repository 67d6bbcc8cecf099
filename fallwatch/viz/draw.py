"""Annotate a frame with boxes, ids, skeletons and fall alerts."""

from __future__ import annotations

import cv2
import numpy as np

from fallwatch.types import FrameResult, HeldPerson

COCO_EDGES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
FALL_COLOUR = (0, 0, 255)  # BGR red
PENDING_COLOUR = (0, 165, 255)  # orange
UNTRACKED_COLOUR = (200, 200, 200)
KEYPOINT_MIN_SCORE = 0.3  # joints below this score are not drawn


def id_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread colour per id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def annotate(image: np.ndarray, result: FrameResult, line_width: int = 2, draw_scores: bool = True) -> np.ndarray:
    """Draw `result` onto `image` in place and return it."""
    tracks = result.tracks
    boxes = tracks.boxes if tracks is not None else result.detections.boxes
    scores = tracks.scores if tracks is not None else result.detections.scores
    ids = tracks.ids if tracks is not None else None
    states = result.actions.state if result.actions is not None else None
    probs = result.actions.fall_prob if result.actions is not None else None
    alarms = set()
    for i, box in enumerate(boxes):
        colour = id_colour(int(ids[i])) if ids is not None else UNTRACKED_COLOUR
        state = states[i] if states is not None else "ok"
        if state in ("fallen", "down"):
            colour = FALL_COLOUR
            alarms.add(state)
        elif state == "pending":
            colour = PENDING_COLOUR
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        width = line_width * 2 if state in ("fallen", "down") else line_width
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, width)
        if result.poses is not None:
            _skeleton(image, result.poses.keypoints[i], colour, line_width)
        label = []
        if ids is not None:
            label.append(f"#{int(ids[i])}")
        if draw_scores:
            label.append(f"{float(scores[i]):.2f}")
        if probs is not None and np.isfinite(probs[i]):
            label.append(f"fall {float(probs[i]):.2f}")
        if state == "down":
            long_lie = result.actions.long_lie is not None and bool(result.actions.long_lie[i])
            label.append("LONG LIE" if long_lie else "DOWN")
            alarms.add("long_lie" if long_lie else "down")
        if label:
            _label(image, " ".join(label), (x1, y1), colour)
        if probs is not None and np.isfinite(probs[i]):
            _prob_bar(image, (x1, y2), x2 - x1, float(probs[i]), colour)
    for person in result.actions.held if result.actions is not None else ():
        _held(image, person, line_width)
        alarms.add("long_lie" if person.long_lie else person.state)
    if "fallen" in alarms:
        _banner(image, "FALL DETECTED")
    elif "long_lie" in alarms:
        _banner(image, "LONG LIE: PERSON STILL DOWN")
    elif "down" in alarms:
        _banner(image, "PERSON DOWN")
    return image


def _held(image: np.ndarray, person: HeldPerson, line_width: int) -> None:
    """An unseen person kept at the last position: a dashed box, so it reads as remembered, not detected."""
    colour = FALL_COLOUR if person.state in ("fallen", "down") else PENDING_COLOUR
    x1, y1, x2, y2 = (int(round(v)) for v in person.box)
    dash = max(4, 3 * line_width)
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = int(np.hypot(b[0] - a[0], b[1] - a[1]))
        for start in range(0, length, 2 * dash):
            p = np.array(a) + (np.array(b) - np.array(a)) * start / max(length, 1)
            q = np.array(a) + (np.array(b) - np.array(a)) * min(start + dash, length) / max(length, 1)
            cv2.line(image, tuple(int(v) for v in p), tuple(int(v) for v in q), colour, line_width * 2)
    _label(image, f"#{person.id} {person.state.upper()} (unseen)", (x1, y1), colour)


def _skeleton(image: np.ndarray, kps: np.ndarray, colour, line_width: int) -> None:
    ok = np.isfinite(kps[:, :2]).all(axis=1) & (kps[:, 2] >= KEYPOINT_MIN_SCORE)
    pts = np.where(ok[:, None], kps[:, :2], 0).round().astype(int)
    for a, b in COCO_EDGES:
        if ok[a] and ok[b]:
            cv2.line(image, tuple(pts[a]), tuple(pts[b]), colour, max(1, line_width - 1), cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(image, tuple(pts[j]), line_width + 1, colour, -1, cv2.LINE_AA)


def _label(image: np.ndarray, text: str, corner: tuple[int, int], colour) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x, y = corner[0], max(corner[1], th + base + 2)
    cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 4, y), colour, -1)
    cv2.putText(image, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def _prob_bar(image: np.ndarray, corner: tuple[int, int], width: int, prob: float, colour) -> None:
    x, y = int(corner[0]), int(corner[1]) + 2
    width = max(int(width), 10)
    cv2.rectangle(image, (x, y), (x + width, y + 6), (60, 60, 60), -1)
    cv2.rectangle(image, (x, y), (x + int(round(width * min(max(prob, 0.0), 1.0))), y + 6), colour, -1)


def _banner(image: np.ndarray, text: str) -> None:
    h, w = image.shape[:2]
    bar = max(28, h // 14)
    overlay = image.copy()
    cv2.rectangle(overlay, (0, 0), (w, bar), FALL_COLOUR, -1)
    cv2.addWeighted(overlay, 0.7, image, 0.3, 0, dst=image)
    scale = bar / 40
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 2)
    cv2.putText(image, text, ((w - tw) // 2, (bar + th) // 2), cv2.FONT_HERSHEY_DUPLEX, scale, (255, 255, 255), 2)
