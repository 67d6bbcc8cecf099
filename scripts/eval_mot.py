"""Score our trackers and ultralytics' on the same MOT15 detections, in one run, with py-motmetrics.

    python scripts/eval_mot.py --data ../shared/data/mot --out docs/figures/mot.json

Every tracker gets the same SORT (Faster R-CNN) detections from det/det.txt and the same thresholds (the presets
configs/trackers/bytetrack.yaml / botsort.yaml, which equal ultralytics' own; one extra row shows fallwatch's
fall-detection default, which does not fuse the detection score into the IoU); lost tracks are kept 30 frames
in all of them (ultralytics 8.4 does not scale the buffer with fps; one extra row shows our fps-scaled default).
Ground-truth rows with flag 0 are dropped (not scored). Sequences with real frames (TUD-Campus, TUD-Stadtmitte,
PETS09-S2L1) hand the frames to the trackers, so BoT-SORT's camera-motion compensation runs there; on the others
it has no image and does not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import motmetrics as mm
import numpy as np

from fallwatch.config import load_config
from fallwatch.eval.mot import read_mot, sequence_info
from fallwatch.track import build_tracker
from fallwatch.track.matching import iou_matrix
from fallwatch.types import Detections

PRESETS = Path(__file__).resolve().parent.parent / "configs" / "trackers"
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte", "PETS09-S2L1", "ETH-Bahnhof", "KITTI-13")
VIDEOS = {"TUD-Campus": "TUD-Campus.mp4", "TUD-Stadtmitte": "TUD-Stadtmitte.mp4", "PETS09-S2L1": "vtest.avi"}
METRICS = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "mostly_tracked", "num_frames"]


class _UltralyticsBoxes:
    """The minimal Results-like object ultralytics' trackers read (conf, cls, xywh, xyxy, boolean indexing)."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray):
        self.xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, np.float32).reshape(-1)
        self.cls = np.zeros(len(self.conf), np.float32)
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([self.xyxy[:, :2] + wh / 2, wh], 1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, idx):
        return _UltralyticsBoxes(self.xyxy[idx], self.conf[idx])


def _ultralytics_tracker(kind: str, track_cfg, fps: float):
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.byte_tracker import BYTETracker

    args = SimpleNamespace(
        tracker_type=kind,
        track_high_thresh=track_cfg.track_high_thresh,
        track_low_thresh=track_cfg.track_low_thresh,
        new_track_thresh=track_cfg.new_track_thresh,
        track_buffer=track_cfg.track_buffer,
        match_thresh=track_cfg.match_thresh,
        fuse_score=track_cfg.fuse_score,
        gmc_method="sparseOptFlow",
        proximity_thresh=track_cfg.proximity_thresh,
        appearance_thresh=track_cfg.appearance_thresh,
        with_reid=False,
        model="auto",
    )
    tracker = BOTSORT(args) if kind == "botsort" else BYTETracker(args)

    def update(dets: Detections, image):
        out = tracker.update(_UltralyticsBoxes(dets.boxes, dets.scores), image)
        out = np.asarray(out).reshape(-1, 8) if len(out) else np.zeros((0, 8))
        return out[:, 4].astype(int), out[:, :4]

    return update


def _ours(overrides: list[str], fps: float, same_buffer: bool = True, extra_frames: int = 0):
    """With `same_buffer`, lost tracks live track_buffer (+ extra_frames) frames whatever the fps, as in
    ultralytics 8.4. ultralytics' own trackers keep a lost track one frame longer than their buffer (the track
    removed in frame t is only taken out of the lost pool in frame t+1, and can be re-found in between):
    `extra_frames=1` reproduces that effective lifetime."""
    cfg = load_config(PRESETS / "bytetrack.yaml", overrides).track
    if same_buffer:
        cfg.track_buffer_s = (cfg.track_buffer + extra_frames) / fps
    tracker = build_tracker(cfg, fps)

    def update(dets: Detections, image):
        tracks = tracker.update(dets, image)
        return tracks.ids, tracks.boxes

    return update


TRACKERS = {
    "fallwatch ByteTrack": lambda fps, cfg: _ours(["track.tracker=bytetrack"], fps),
    "fallwatch ByteTrack (filtered boxes)": lambda fps, cfg: _ours(
        ["track.tracker=bytetrack", "track.output_box=filtered"], fps
    ),
    "fallwatch ByteTrack (filtered boxes, 31-frame buffer)": lambda fps, cfg: _ours(
        ["track.tracker=bytetrack", "track.output_box=filtered"], fps, extra_frames=1
    ),
    "fallwatch ByteTrack (buffer scaled by fps/30)": lambda fps, cfg: _ours(["track.tracker=bytetrack"], fps, False),
    "fallwatch ByteTrack, fall default (no score fusion)": lambda fps, cfg: _ours(
        ["track.tracker=bytetrack", "track.fuse_score=false"], fps
    ),
    "fallwatch BoT-SORT, no GMC": lambda fps, cfg: _ours(["track.tracker=botsort", "track.gmc_method=none"], fps),
    "fallwatch BoT-SORT + GMC": lambda fps, cfg: _ours(["track.tracker=botsort"], fps),
    "fallwatch BoT-SORT + GMC, every estimate applied": lambda fps, cfg: _ours(
        ["track.tracker=botsort", "track.gmc_min_motion_px=0"], fps
    ),
    "ultralytics BYTETracker": lambda fps, cfg: _ultralytics_tracker("bytetrack", cfg, fps),
    "ultralytics BOTSORT + GMC": lambda fps, cfg: _ultralytics_tracker("botsort", cfg, fps),
}


def _iou_distance(gt_xyxy: np.ndarray, hyp_xyxy: np.ndarray) -> np.ndarray:
    """motmetrics' convention: 1 - IoU, NaN (no match possible) below IoU 0.5. (Its own `iou_matrix` needs
    numpy < 2.)"""
    dist = 1.0 - iou_matrix(gt_xyxy, hyp_xyxy)
    dist[dist > 0.5] = np.nan
    return dist


def _frames(folder: Path, name: str, n: int):
    video = VIDEOS.get(name)
    if video is None:
        yield from (None for _ in range(n))
        return
    cap = cv2.VideoCapture(str(folder / video))
    for _ in range(n):
        ok, image = cap.read()
        yield image if ok else None
    cap.release()


def evaluate(data: Path, sequences=SEQUENCES) -> dict:
    track_cfg = load_config(PRESETS / "bytetrack.yaml").track
    accs = {name: [] for name in TRACKERS}
    timing = {name: [0.0, 0] for name in TRACKERS}
    for seq in sequences:
        folder = data / seq
        info = sequence_info(folder)
        gt = read_mot(folder / "gt" / "gt.txt")
        det = read_mot(folder / "det" / "det.txt", drop_ignored=False)
        trackers = {name: make(info["fps"], track_cfg) for name, make in TRACKERS.items()}
        seq_accs = {name: mm.MOTAccumulator(auto_id=True) for name in TRACKERS}
        for frame_no, image in enumerate(_frames(folder, seq, info["frames"]), start=1):
            d = det.get(frame_no, np.zeros((0, 6)))
            dets = Detections(d[:, 1:5], d[:, 5])
            g = gt.get(frame_no, np.zeros((0, 6)))
            for name, update in trackers.items():
                t0 = time.perf_counter()
                ids, boxes = update(dets, image)
                timing[name][0] += time.perf_counter() - t0
                timing[name][1] += 1
                dist = _iou_distance(g[:, 1:5], np.asarray(boxes, np.float64).reshape(-1, 4))
                seq_accs[name].update(g[:, 0].astype(int).tolist(), np.asarray(ids).astype(int).tolist(), dist)
        for name in TRACKERS:
            accs[name].append(seq_accs[name])
    mh = mm.metrics.create()
    results = {}
    for name in TRACKERS:
        summary = mh.compute_many(accs[name], names=list(sequences), metrics=METRICS, generate_overall=True)
        results[name] = {
            row: {k: float(summary.loc[row, k]) for k in METRICS} for row in summary.index
        }
        results[name]["ms_per_frame"] = 1000 * timing[name][0] / max(timing[name][1], 1)
    return results


def to_markdown(results: dict) -> str:
    rows = [
        "| tracker | sequence | MOTA | IDF1 | ID sw. | FP | FN | MT | ms/frame |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, per_seq in results.items():
        for seq, m in per_seq.items():
            if seq == "ms_per_frame":
                continue
            label = "**all (pooled)**" if seq == "OVERALL" else seq
            ms = f"{per_seq['ms_per_frame']:.2f}" if seq == "OVERALL" else ""
            rows.append(
                f"| {name} | {label} | {100 * m['mota']:.1f} | {100 * m['idf1']:.1f} | {int(m['num_switches'])} | "
                f"{int(m['num_false_positives'])} | {int(m['num_misses'])} | {int(m['mostly_tracked'])} | {ms} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mot"))
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    parser.add_argument("--sequences", nargs="*", default=list(SEQUENCES))
    args = parser.parse_args()
    results = evaluate(args.data, args.sequences)
    print(to_markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
