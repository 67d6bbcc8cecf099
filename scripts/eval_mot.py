"""Score our trackers and ultralytics' on the same MOT15 detections in one run: MOTA, IDF1, HOTA.

    pip install -e ".[eval]"   # py-motmetrics (MOTA, IDF1, ID switches) and TrackEval (HOTA)
    python scripts/eval_mot.py --data ../shared/data/mot --out docs/figures/mot.json
    python scripts/eval_mot.py --pipeline-tracks runs/skeletons runs/speed/skel_ov_thunder

`--pipeline-tracks DIR...` scores instead what the whole pipeline tracked — our own detector, not the public
detections — in extractions written by scripts/extract_skeletons.py (their TUD-Campus, TUD-Stadtmitte and
PETS09-S2L1 clips): MOTA / IDF1 per extraction, pooled over the three sequences, to compare pipeline settings.

Every tracker gets the same SORT (Faster R-CNN) detections from det/det.txt and the same thresholds (the presets
configs/trackers/bytetrack.yaml / botsort.yaml, which equal ultralytics' own; one extra row shows fallwatch's
fall-detection default, which does not fuse the detection score into the IoU); lost tracks are kept 30 frames
in all of them (ultralytics 8.4 does not scale the buffer with fps; one extra row shows our fps-scaled default).
Two rows switch on ultralytics' own behaviour where it differs from ours (`track.predict_new_tracks=false`,
`track.lost_track_rule=ultralytics`): with both, our ByteTrack gives ultralytics' output frame for frame.
Ground-truth rows with flag 0 are dropped (not scored). Sequences with real frames (TUD-Campus, TUD-Stadtmitte,
PETS09-S2L1) hand the frames to the trackers, so BoT-SORT's camera-motion compensation runs there; on the others
it has no image and does not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import motmetrics as mm
import numpy as np

from fallwatch.config import load_config
from fallwatch.eval.mot import read_mot, sequence_info, ultralytics_tracker
from fallwatch.track import build_tracker
from fallwatch.track.matching import iou_matrix
from fallwatch.types import Detections

PRESETS = Path(__file__).resolve().parent.parent / "configs" / "trackers"
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte", "PETS09-S2L1", "ETH-Bahnhof", "KITTI-13")
VIDEOS = {"TUD-Campus": "TUD-Campus.mp4", "TUD-Stadtmitte": "TUD-Stadtmitte.mp4", "PETS09-S2L1": "vtest.avi"}
METRICS = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "mostly_tracked", "num_frames"]


def _ours(overrides: list[str], fps: float, same_buffer: bool = True):
    """With `same_buffer`, lost tracks live track_buffer frames whatever the fps, as in ultralytics 8.4."""
    cfg = load_config(PRESETS / "bytetrack.yaml", overrides).track
    if same_buffer:
        cfg.track_buffer_s = cfg.track_buffer / fps
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
    "fallwatch ByteTrack, ultralytics' rules (filtered boxes, new tracks not predicted, its lost-track rule)":
        lambda fps, cfg: _ours(["track.tracker=bytetrack", "track.output_box=filtered",
                                "track.predict_new_tracks=false", "track.lost_track_rule=ultralytics"], fps),
    "fallwatch ByteTrack, ultralytics' lost-track rule (filtered boxes)": lambda fps, cfg: _ours(
        ["track.tracker=bytetrack", "track.output_box=filtered", "track.lost_track_rule=ultralytics"], fps
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
    "ultralytics BYTETracker": lambda fps, cfg: ultralytics_tracker("bytetrack", cfg),
    "ultralytics BOTSORT + GMC": lambda fps, cfg: ultralytics_tracker("botsort", cfg),
}


def _iou_distance(iou: np.ndarray) -> np.ndarray:
    """motmetrics' convention: 1 - IoU, NaN (no match possible) below IoU 0.5. (Its own `iou_matrix` needs
    numpy < 2.)"""
    dist = 1.0 - iou
    dist[dist > 0.5] = np.nan
    return dist


def _hota(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """TrackEval's HOTA for one sequence from per-frame (gt ids, tracker ids, IoU matrix); ids are re-indexed
    0..n-1 as TrackEval expects. Returns TrackEval's per-sequence result (combinable across sequences)."""
    from trackeval.metrics import HOTA

    gt_index = {g: i for i, g in enumerate(sorted({int(g) for f in frames for g in f[0]}))}
    tr_index = {t: i for i, t in enumerate(sorted({int(t) for f in frames for t in f[1]}))}
    data = {
        "num_timesteps": len(frames), "num_gt_ids": len(gt_index), "num_tracker_ids": len(tr_index),
        "num_gt_dets": sum(len(f[0]) for f in frames), "num_tracker_dets": sum(len(f[1]) for f in frames),
        "gt_ids": [np.array([gt_index[int(g)] for g in f[0]], int) for f in frames],
        "tracker_ids": [np.array([tr_index[int(t)] for t in f[1]], int) for f in frames],
        "similarity_scores": [f[2] for f in frames],
    }
    return HOTA().eval_sequence(data)


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
    hotas = {name: {} for name in TRACKERS}
    timing = {name: [0.0, 0] for name in TRACKERS}
    for seq in sequences:
        folder = data / seq
        info = sequence_info(folder)
        gt = read_mot(folder / "gt" / "gt.txt")
        det = read_mot(folder / "det" / "det.txt", drop_ignored=False)
        trackers = {name: make(info["fps"], track_cfg) for name, make in TRACKERS.items()}
        seq_accs = {name: mm.MOTAccumulator(auto_id=True) for name in TRACKERS}
        seq_frames = {name: [] for name in TRACKERS}
        for frame_no, image in enumerate(_frames(folder, seq, info["frames"]), start=1):
            d = det.get(frame_no, np.zeros((0, 6)))
            dets = Detections(d[:, 1:5], d[:, 5])
            g = gt.get(frame_no, np.zeros((0, 6)))
            for name, update in trackers.items():
                t0 = time.perf_counter()
                ids, boxes = update(dets, image)
                timing[name][0] += time.perf_counter() - t0
                timing[name][1] += 1
                iou = iou_matrix(g[:, 1:5], np.asarray(boxes, np.float64).reshape(-1, 4))
                seq_accs[name].update(g[:, 0].astype(int).tolist(), np.asarray(ids).astype(int).tolist(),
                                      _iou_distance(iou))
                seq_frames[name].append((g[:, 0], np.asarray(ids), iou))
        for name in TRACKERS:
            accs[name].append(seq_accs[name])
            hotas[name][seq] = _hota(seq_frames[name])
    mh = mm.metrics.create()
    results = {}
    for name in TRACKERS:
        summary = mh.compute_many(accs[name], names=list(sequences), metrics=METRICS, generate_overall=True)
        results[name] = {
            row: {k: float(summary.loc[row, k]) for k in METRICS} for row in summary.index
        }
        from trackeval.metrics import HOTA

        hotas[name]["OVERALL"] = HOTA().combine_sequences(hotas[name])
        for row, res in hotas[name].items():
            results[name][row]["hota"] = float(np.mean(res["HOTA"]))
        results[name]["ms_per_frame"] = 1000 * timing[name][0] / max(timing[name][1], 1)
    return results


def evaluate_pipeline_tracks(data: Path, extractions: list[Path]) -> dict:
    """MOTA / IDF1 of the tracks stored in each extraction (video frame i is MOT frame i + 1)."""
    mh = mm.metrics.create()
    results = {}
    for folder in extractions:
        accs, names = [], []
        for seq in VIDEOS:
            clip = folder / f"{seq}.npz"
            if not clip.is_file():
                continue
            gt = read_mot(data / seq / "gt" / "gt.txt")
            with np.load(clip) as z:
                frame, ids, boxes, n = z["frame"], z["id"], z["box"].astype(np.float64), int(z["frames"])
            acc = mm.MOTAccumulator(auto_id=True)
            for index in range(n):
                g = gt.get(index + 1, np.zeros((0, 6)))
                rows = frame == index
                iou = iou_matrix(g[:, 1:5], boxes[rows])
                acc.update(g[:, 0].astype(int).tolist(), ids[rows].astype(int).tolist(), _iou_distance(iou))
            accs.append(acc)
            names.append(seq)
        summary = mh.compute_many(accs, names=names, metrics=METRICS, generate_overall=True)
        results[str(folder)] = {row: {k: float(summary.loc[row, k]) for k in METRICS} for row in summary.index}
    return results


def to_markdown(results: dict) -> str:
    rows = [
        "| tracker | sequence | MOTA | IDF1 | HOTA | ID sw. | FP | FN | MT | ms/frame |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, per_seq in results.items():
        for seq, m in per_seq.items():
            if seq == "ms_per_frame":
                continue
            label = "**all (pooled)**" if seq == "OVERALL" else seq
            ms = f"{per_seq['ms_per_frame']:.2f}" if seq == "OVERALL" else ""
            rows.append(
                f"| {name} | {label} | {100 * m['mota']:.1f} | {100 * m['idf1']:.1f} | {100 * m['hota']:.1f} | "
                f"{int(m['num_switches'])} | "
                f"{int(m['num_false_positives'])} | {int(m['num_misses'])} | {int(m['mostly_tracked'])} | {ms} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mot"))
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    parser.add_argument("--sequences", nargs="*", default=list(SEQUENCES))
    parser.add_argument("--pipeline-tracks", type=Path, nargs="+", help="score these extractions' own tracks")
    args = parser.parse_args()
    if args.pipeline_tracks:
        results = evaluate_pipeline_tracks(args.data, args.pipeline_tracks)
        print("| extraction | sequence | MOTA | IDF1 | ID sw. | FP | FN |\n|---|---|---:|---:|---:|---:|---:|")
        for name, per_seq in results.items():
            for seq, m in per_seq.items():
                print(f"| {name} | {seq} | {100 * m['mota']:.2f} | {100 * m['idf1']:.2f} | "
                      f"{int(m['num_switches'])} | {int(m['num_false_positives'])} | {int(m['num_misses'])} |")
    else:
        results = evaluate(args.data, args.sequences)
        print(to_markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
