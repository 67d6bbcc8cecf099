"""Fall-event metrics against labelled clips, and the policies compared on the same skeletons.

An alarm is the moment an event is *confirmed* (the frame it opens). In a fall clip the first alarm between
`early_s` before the onset and `late_s` after the person reached the floor is the detection (latency = alarm time
minus onset); every other alarm is false. Every alarm in a clip without a fall is false. Precision = detections /
alarms, recall = detected falls / falls; false alarms per hour are counted on fall-free clips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fallwatch.types import Poses, Tracks

EARLY_S = 0.5
LATE_S = 3.0


@dataclass
class ClipResult:
    name: str
    fps: float
    frames: int
    fall_start: int | None
    fall_end: int | None
    alarms: list[int] = field(default_factory=list)  # confirmation frames
    more_falls: tuple[tuple[int, int], ...] = ()  # further (start, end) falls in the clip

    @property
    def falls(self) -> list[tuple[int, int | None]]:
        return ([(self.fall_start, self.fall_end)] if self.fall_start is not None else []) + list(self.more_falls)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def score(results: list[ClipResult]) -> dict:
    detected, false_alarms, latencies, fall_free_s, fall_free_alarms = 0, 0, [], 0.0, 0
    falls = sum(len(r.falls) for r in results)
    alarms = sum(len(r.alarms) for r in results)
    per_clip = {}
    for r in results:
        if not r.falls:
            false_alarms += len(r.alarms)
            fall_free_s += r.duration_s
            fall_free_alarms += len(r.alarms)
            per_clip[r.name] = {"fall": False, "alarms": len(r.alarms)}
            continue
        unused, clip_latencies = sorted(r.alarms), []
        for start, end in r.falls:
            lo = start / r.fps - EARLY_S
            hi = (end if end is not None else start) / r.fps + LATE_S
            hits = [a for a in unused if lo <= a / r.fps <= hi]
            if hits:
                unused.remove(hits[0])
                clip_latencies.append(hits[0] / r.fps - start / r.fps)
        detected += len(clip_latencies)
        latencies += clip_latencies
        false_alarms += len(unused)
        per_clip[r.name] = {"fall": True, "falls": len(r.falls), "detected": len(clip_latencies),
                            "alarms": len(r.alarms),
                            "latency_s": [round(v, 3) for v in clip_latencies] if len(r.falls) > 1 else
                            (round(clip_latencies[0], 3) if clip_latencies else None)}
    precision = detected / (detected + false_alarms) if detected + false_alarms else 0.0
    recall = detected / falls if falls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "falls": falls,
        "detected": detected,
        "alarms": alarms,
        "false_alarms": false_alarms,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "latency_median_s": float(np.median(latencies)) if latencies else None,
        "latency_worst_s": float(np.max(latencies)) if latencies else None,
        "fall_free_hours": fall_free_s / 3600,
        "false_alarms_per_hour": fall_free_alarms / (fall_free_s / 3600) if fall_free_s else None,
        "clips": per_clip,
    }


def extracted_clips(folder: Path, names: list[str] | None = None,
                    splits: tuple[str, ...] = ("test", "fall_free")) -> list[tuple[dict, dict]]:
    """(manifest entry, arrays) of the clips `scripts/extract_skeletons.py` wrote into `folder`: those named, or
    those of `splits` (by default the development test split and the fall-free videos)."""
    manifest = json.loads((folder / "clips.json").read_text())
    if names:
        every = {c["name"]: c for split in manifest["splits"].values() for c in split}
        entries = [every[name] for name in names if name in every]  # the others may be in another folder
    else:
        entries = [c for split in splits for c in manifest["splits"].get(split, [])]
    return [(c, dict(np.load(folder / f"{c['name']}.npz"))) for c in entries]


def clip_result(entry: dict, data: dict, alarms: list[int]) -> ClipResult:
    more = tuple(tuple(f) for f in entry.get("more_falls", ()))
    return ClipResult(entry["name"], float(data["fps"]), int(data["frames"]), entry["fall_start"], entry["fall_end"],
                      alarms, more)


def frames_of(data: dict) -> list[tuple[int, float, Tracks, Poses]]:
    """Per-frame (index, time, Tracks, Poses) from an extracted-skeleton npz; `ended` is reconstructed as the ids
    unseen for `lost_frames` frames (what the tracker's buffer does)."""
    n, fps = int(data["frames"]), float(data["fps"])
    lost_frames = max(1, int(fps))  # ByteTrack's 30-frame buffer at 30 fps
    frame_rows = {}
    for i, f in enumerate(data["frame"]):
        frame_rows.setdefault(int(f), []).append(i)
    last_seen: dict[int, int] = {}
    out = []
    for f in range(n):
        rows = frame_rows.get(f, [])
        ids = data["id"][rows]
        for t in ids:
            last_seen[int(t)] = f
        ended = tuple(t for t, seen in last_seen.items() if f - seen > lost_frames)
        for t in ended:
            del last_seen[t]
        time = float(data["time"][rows[0]]) if rows else f / fps
        tracks = Tracks(ids, data["box"][rows], data["score"][rows], ended)
        out.append((f, time, tracks, Poses(data["keypoints"][rows])))
    return out


def frame_size_of(data: dict) -> tuple[int, int] | None:
    """The (width, height) an extraction recorded, if it did (older extractions did not)."""
    return (int(data["width"]), int(data["height"])) if "width" in data and "height" in data else None


def replay_sliding(recognizer, data: dict, presence: dict[int, dict] | None = None) -> list[int]:
    """fallwatch's policy: the alarms (confirmation frames) the recognizer raises on these skeletons. With
    `presence`, also records per event its track ids and the frames its person was shown (seen or held)."""
    alarms, opened = [], set()
    frame_size = frame_size_of(data)
    for f, time, tracks, poses in frames_of(data):
        actions, events = recognizer.update(f, time, tracks, poses, frame_size)
        for e in events:
            if e.event_id not in opened:
                opened.add(e.event_id)
                alarms.append(e.alarm_frame)
        if presence is not None:
            shown = [int(i) for i in actions.event_id if i] + [h.event_id for h in actions.held if h.event_id]
            for event_id in shown:
                presence.setdefault(event_id, {"frames": set(), "ids": set()})["frames"].add(f)
            for e in events:
                presence.setdefault(e.event_id, {"frames": set(), "ids": set()})["ids"].update(e.track_ids)
    return alarms


def replay_pp_human(recognizer, data: dict, window: int = 50) -> list[int]:
    """PP-Human's policy on the same model: tumbling windows of `window` consecutive frames per track (no time
    resampling), a track missing for one frame is classified at once on its zero-padded partial window and
    flushed, and a window is a fall when p(fall) > 0.5 (argmax) - no threshold, no hysteresis."""
    from fallwatch.action.buffers import normalise

    buffers: dict[int, list[np.ndarray]] = {}
    alarms = []

    def classify(frames: list[np.ndarray]) -> bool:
        w = np.zeros((window, 17, 3), np.float32)
        kp = np.stack(frames)[:window]
        ok = (kp[..., 2] >= recognizer.cfg.min_keypoint_score) & np.isfinite(kp[..., :2]).all(-1)
        w[: len(kp), :, :2] = np.where(ok[..., None], kp[..., :2], 0)
        w[: len(kp), :, 2] = ok
        w = normalise(w, recognizer.buffers.spec.normalisation)
        return bool(recognizer.probabilities(w[None])[0] > 0.5)

    for f, _, tracks, poses in frames_of(data):
        present = {int(t) for t in tracks.ids}
        for tid in [t for t in buffers if t not in present]:
            frames = buffers.pop(tid)
            if frames and classify(frames):
                alarms.append(f)
        for tid, kp in zip(tracks.ids, poses.keypoints, strict=True):
            buf = buffers.setdefault(int(tid), [])
            buf.append(kp)
            if len(buf) == window:
                if classify(buf):
                    alarms.append(f)
                buffers[int(tid)] = []
    return alarms


def run_clip(pipeline, clip) -> ClipResult:
    """The full pipeline (detect, track, pose, action) over one labelled clip; its alarms."""
    from fallwatch.io.sources import ReaderSettings, open_source
    from fallwatch.types import Frame

    with open_source(str(clip.path), ReaderSettings.from_config(pipeline.cfg.run)) as src:
        tracker, recognizer = pipeline.tracker_factory(src.info.fps), pipeline.new_recognizer()
        result = ClipResult(clip.name, src.info.fps, 0, clip.fall_start, clip.fall_end, more_falls=clip.more_falls)
        opened: set[int] = set()
        for frame in src:
            image = clip.view(frame.image)
            out = pipeline.process(Frame(frame.index, frame.time, image), tracker, recognizer)
            result.alarms += [e.alarm_frame for e in out.events if e.event_id not in opened]
            opened.update(e.event_id for e in out.events)
            result.frames += 1
    return result


def replay_posture_bilstm(session, scaler: dict, data: dict, window: int = 60, stride: int = 3,
                          on: float = 0.7, off: float = 0.4) -> list[int]:
    """The public posture-aware BiLSTM (standing model) as a baseline: per track, the last `window` frames of COCO
    joints 5-16 in raw pixels, standardised with its scaler, every `stride` frames; an alarm when p crosses `on`
    (re-armed below `off`), the same hysteresis as ours without the minimum duration."""
    mean, scale = np.asarray(scaler["mean"], np.float32), np.asarray(scaler["scale"], np.float32)
    history: dict[int, list[np.ndarray]] = {}
    armed: dict[int, bool] = {}
    alarms = []
    for f, _, tracks, poses in frames_of(data):
        for tid in tracks.ended:
            history.pop(tid, None)
            armed.pop(tid, None)
        batch, owners = [], []
        for tid, kp in zip(tracks.ids, poses.keypoints, strict=True):
            h = history.setdefault(int(tid), [])
            h.append(np.nan_to_num(kp[5:17, :2]).reshape(-1))
            del h[:-window]
            if len(h) == window and f % stride == 0:
                batch.append((np.stack(h) - mean) / scale)
                owners.append(int(tid))
        if batch:
            probs = session.run(None, {session.get_inputs()[0].name: np.stack(batch).astype(np.float32)})[0]
            for tid, p in zip(owners, np.asarray(probs).reshape(len(owners), -1)[:, -1], strict=True):
                if armed.get(tid, True) and p >= on:
                    alarms.append(f)
                    armed[tid] = False
                elif p < off:
                    armed[tid] = True
    return alarms


def found_after_landing(data: dict, fall_end: int, presence: dict[int, dict] | None = None) -> tuple[float, float]:
    """Share of the frames after the landing (to the clip's end) in which someone is tracked, and in which someone
    is tracked or a fallen person is held at the last position (`presence` from `replay_sliding`). Meant for
    one-person clips, where the one tracked person after the landing is the faller."""
    frames = np.arange(fall_end + 1, int(data["frames"]))
    if len(frames) == 0:
        return 1.0, 1.0
    tracked = np.isin(frames, data["frame"])
    held = set().union(*(p["frames"] for p in presence.values())) if presence else set()
    shown = tracked | np.isin(frames, list(held))
    return float(tracked.mean()), float(shown.mean())


def person_continuity(data: dict, presence: dict[int, dict], fall_start: int, fall_end: int,
                      before_s: float = 1.0, after_s: float = 3.0) -> float:
    """How well the faller is followed from `before_s` before the onset to `after_s` after the landing, counting
    what the action stage carries over: the best of the single-id span (`faller_continuity`) and, for each fall
    event, the span of the frames in which any of its track ids was tracked or its person was held."""
    fps = float(data["fps"])
    lo = max(0, fall_start - int(round(before_s * fps)))
    hi = min(int(data["frames"]) - 1, fall_end + int(round(after_s * fps)))
    best = faller_continuity(data, fall_start, fall_end, before_s, after_s)[0]
    for info in presence.values():
        rows = np.isin(data["id"], list(info["ids"]))
        frames = np.union1d(data["frame"][rows], np.fromiter(info["frames"], np.int64, len(info["frames"])))
        frames = frames[(frames >= lo) & (frames <= hi)]
        if len(frames):
            best = max(best, (frames.max() - frames.min() + 1) / (hi - lo + 1))
    return float(best)


def faller_continuity(data: dict, fall_start: int, fall_end: int, margin_s: float = 1.0,
                      after_s: float | None = None) -> tuple[float, float]:
    """How well one track id follows the person through a fall, from `margin_s` before the onset to `margin_s`
    (or `after_s`) after the end: (span, seen) of the best single id - `span` the share of that interval between
    its first and last row (an id switch or a lost track cuts it), `seen` the share of frames it has a box in (gaps
    shorter than the action stage's `max_gap_s` are interpolated there, so `span` is what the fall window depends
    on)."""
    fps = float(data["fps"])
    lo = max(0, fall_start - int(round(margin_s * fps)))
    hi = min(int(data["frames"]) - 1, fall_end + int(round((margin_s if after_s is None else after_s) * fps)))
    length = hi - lo + 1
    best = (0.0, 0.0)
    for tid in np.unique(data["id"]):
        frames = data["frame"][(data["id"] == tid) & (data["frame"] >= lo) & (data["frame"] <= hi)]
        if len(frames):
            best = max(best, ((frames.max() - frames.min() + 1) / length, len(np.unique(frames)) / length))
    return best
