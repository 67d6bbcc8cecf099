"""How well one track id follows the person through each labelled fall, for tracker settings side by side.

    python scripts/extract_skeletons.py --data ../shared/data --detections runs/detections ...   # fills the cache
    python scripts/eval_track_continuity.py --detections runs/detections \
        --variant "track.fuse_score=true" --variant "track.fuse_score=false" --out docs/figures/track_continuity.json

Replays only the tracker on the cached detector output of every fall clip of ../shared/data (train and test splits
reported apart: choose on train) and scores `fallwatch.eval.falls.faller_continuity`: the best single id's span
over [onset - 1 s, down + 1 s], and the share of falls it covers fully (>= 95 %).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fallwatch.config import load_config
from fallwatch.errors import FallwatchError
from fallwatch.eval.clips import DetectionCache, shared_clips
from fallwatch.eval.falls import faller_continuity
from fallwatch.track import build_tracker
from fallwatch.types import Detections

FULL = 0.95
NONE = Detections(np.zeros((0, 4)), [])


def continuity(overrides: list[str], clips, cache: DetectionCache) -> dict:
    cfg = load_config(overrides=overrides)
    spans = []
    for clip in clips:
        detections = cache.load(clip)
        if detections is None:
            raise FallwatchError(f"{clip.name}: not in the detection cache; run extract_skeletons.py --detections")
        fps, frames = _fps_and_frames(clip)
        tracker = build_tracker(cfg.track, fps)
        rows_frame, rows_id = [], []
        for f in range(frames):
            ids = tracker.update(detections.get(f, NONE), None).ids
            rows_frame += [f] * len(ids)
            rows_id += [int(t) for t in ids]
        data = {"fps": fps, "frames": frames, "frame": np.array(rows_frame), "id": np.array(rows_id)}
        spans.append(faller_continuity(data, clip.fall_start, clip.fall_end)[0])
    spans = np.array(spans)
    return {"falls": len(spans), "span_mean": float(spans.mean()), "fully_followed": float(np.mean(spans >= FULL))}


def _fps_and_frames(clip) -> tuple[float, int]:
    """The clip's frame rate and its decodable frames (counted: container headers can be wrong)."""
    import cv2

    cap = cv2.VideoCapture(str(clip.path))
    fps, frames = float(cap.get(cv2.CAP_PROP_FPS) or 30.0), 0
    while cap.grab():
        frames += 1
    cap.release()
    return fps, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--detections", type=Path, default=Path("runs/detections"))
    parser.add_argument("--variant", action="append", default=[],
                        help="comma-separated KEY=VALUE overrides; repeat for each setting compared")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    detect_cfg = load_config(overrides=["run.progress=false"]).to_dict()["detect"]
    cache = DetectionCache(args.detections, detect_cfg)
    splits = {k: [c for c in v if c.is_fall] for k, v in shared_clips(args.data).items() if k in ("train", "test")}
    report = {}
    for variant in args.variant or [""]:
        overrides = [o for o in variant.split(",") if o]
        report[variant or "default"] = {split: continuity(overrides, clips, cache) for split, clips in splits.items()}
        row = report[variant or "default"]
        print(f"{variant or 'default':60s} " + "  ".join(
            f"{s}: span {r['span_mean']:.3f} full {r['fully_followed']:.0%} (n={r['falls']})" for s, r in row.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
