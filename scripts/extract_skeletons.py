"""Run our own detect -> track -> pose pipeline over labelled videos and keep every person's keypoints per frame,
so the fall classifier is trained and evaluated on the keypoints it will see at run time.

    python scripts/extract_skeletons.py --data ../shared/data --out runs/skeletons [--set detect.imgsz=640]
    python scripts/extract_skeletons.py --reuse-tracks runs/skeletons --out runs/skeletons_student \
        --set pose.model=movenet-thunder [--splits test fall_free]
    python scripts/extract_skeletons.py --detections runs/detections --out runs/skeletons_nofuse \
        --set track.fuse_score=false

`--detections DIR` stores every frame's detector output there on the first run and reads it back on later runs
(same detector settings, checked), so ablations of the tracker, pose or action settings skip the detector.

`--degrade-height H` (with `--reuse-tracks`) blurs every frame of a clip to the resolution at which its median
tracked person is H pixels tall (area-downscaled, then upscaled back, so boxes and keypoints keep the clip's pixel
units) before the pose stage sees it: the same people and tracks as if filmed from farther away, to train on the
keypoints of small, distant people. Clips whose people are already smaller are left as they are.

`--reuse-tracks DIR` keeps the tracked boxes of an earlier extraction and reruns only the pose stage: the tracker
never sees keypoints, so this is exactly what the full pipeline would give with the other pose model, at a
fraction of the cost (no detector), and an A/B of two pose models compares the same people.

Writes one `<clip>.npz` per clip: frame (R,), time (R,), id (R,), box (R, 4), score (R,), keypoints (R, 17, 3) —
one row per tracked person per frame — plus the clip's fps, frame count, frame size (width, height of the
processed view) and fall interval; and `clips.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from fallwatch.config import load_config
from fallwatch.eval.clips import Clip, DetectionCache, shared_clips
from fallwatch.io.sources import ReaderSettings, open_source
from fallwatch.pipeline import Pipeline
from fallwatch.types import Detections, Frame


def degrade(image: np.ndarray, scale: float) -> np.ndarray:
    """The frame as a camera with `scale` times fewer pixels per side would see it, at the original size."""
    if scale <= 1:
        return image
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / scale)), max(1, round(h / scale))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def extract(pipeline: Pipeline, clip: Clip, out: Path, cache: DetectionCache) -> dict:
    rows = {"frame": [], "time": [], "id": [], "box": [], "score": [], "keypoints": []}
    size = (0, 0)
    cached = cache.load(clip)
    seen: dict[int, Detections] = {}
    settings = ReaderSettings.from_config(pipeline.cfg.run)
    with open_source(str(clip.path), settings) as src:
        tracker = pipeline.tracker_factory(src.info.fps)
        n = 0
        for frame in src:
            image = clip.view(frame.image)
            size = (image.shape[1], image.shape[0])
            detections = None if cached is None else cached.get(frame.index, Detections(np.zeros((0, 4)), []))
            result = pipeline.process(Frame(frame.index, frame.time, image), tracker, detections=detections)
            seen[frame.index] = result.detections
            for i, tid in enumerate(result.tracks.ids):
                rows["frame"].append(frame.index)
                rows["time"].append(frame.time)
                rows["id"].append(int(tid))
                rows["box"].append(result.tracks.boxes[i])
                rows["score"].append(result.tracks.scores[i])
                rows["keypoints"].append(result.poses.keypoints[i])
            n += 1
        fps = src.info.fps
    if cached is None:
        cache.save(clip, seen)
    arrays = {k: np.asarray(v, np.float32 if k in ("time", "box", "score", "keypoints") else np.int64)
              for k, v in rows.items()}
    arrays["box"] = arrays["box"].reshape(-1, 4)
    arrays["keypoints"] = arrays["keypoints"].reshape(-1, 17, 3)
    np.savez_compressed(out / f"{clip.name}.npz", fps=fps, frames=n, width=size[0], height=size[1],
                        fall_start=-1 if clip.fall_start is None else clip.fall_start,
                        fall_end=-1 if clip.fall_end is None else clip.fall_end, **arrays)
    return {"name": clip.name, "frames": n, "fps": fps, "persons": len(rows["id"])}


def repose(pipeline: Pipeline, clip: Clip, previous: Path, out: Path, degrade_height: float | None = None) -> dict:
    """Same rows as `previous/<clip>.npz`, keypoints recomputed by this pipeline's pose stage (on frames blurred so
    that the median tracked person is `degrade_height` pixels tall, if given)."""
    with np.load(previous / f"{clip.name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    heights = arrays["box"][:, 3] - arrays["box"][:, 1]
    scale = float(max(1.0, np.median(heights) / degrade_height)) if degrade_height and len(heights) else 1.0
    keypoints = np.full_like(arrays["keypoints"], np.nan)
    settings = ReaderSettings.from_config(pipeline.cfg.run)
    with open_source(str(clip.path), settings) as src:
        for frame in src:
            rows = np.flatnonzero(arrays["frame"] == frame.index)
            if len(rows) == 0:
                continue
            image = degrade(clip.view(frame.image), scale)
            keypoints[rows] = pipeline.pose.estimate(image, arrays["box"][rows])
    arrays["keypoints"] = keypoints.astype(np.float32)
    np.savez_compressed(out / f"{clip.name}.npz", **arrays)
    return {"name": clip.name, "frames": int(arrays["frames"]), "fps": float(arrays["fps"]),
            "persons": int(len(arrays["id"])), "degrade_scale": scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/skeletons"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--reuse-tracks", type=Path, help="an earlier extraction whose tracked boxes are kept")
    parser.add_argument("--detections", type=Path, help="detector output cache (written once, then read)")
    parser.add_argument("--clips", nargs="*", help="only these clips (names) of the chosen splits")
    parser.add_argument("--no-falls", action="store_true", help="only the clips without a fall")
    parser.add_argument("--resume", action="store_true", help="keep the clips already extracted into --out")
    parser.add_argument("--splits", nargs="*", help="only these splits (train, test, fall_free; train_new, test_new)")
    parser.add_argument("--degrade-height", type=float, help="with --reuse-tracks: pose on frames blurred so that "
                        "the median person is this many pixels tall")
    args = parser.parse_args()
    cfg = load_config(overrides=["run.progress=false", *args.overrides])
    pipeline = Pipeline(cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = shared_clips(args.data)
    cache = DetectionCache(args.detections, cfg.to_dict()["detect"])
    manifest = {"config": cfg.to_dict(), "models": {k: v.sha256 for k, v in pipeline.models.items()}, "splits": {}}
    if args.reuse_tracks:
        manifest["tracks_from"] = str(args.reuse_tracks)
    if args.degrade_height and not args.reuse_tracks:
        parser.error("--degrade-height needs --reuse-tracks")
    manifest["degrade_height"] = args.degrade_height
    for split, clips in splits.items():
        if args.splits and split not in args.splits:
            continue
        manifest["splits"][split] = []
        for clip in clips:
            if (args.clips and clip.name not in args.clips) or (args.no_falls and clip.is_fall):
                continue
            t0 = time.perf_counter()
            done = args.out / f"{clip.name}.npz"
            if args.resume and done.is_file():  # extracted by an earlier, interrupted run of the same command
                with np.load(done) as z:
                    info = {"name": clip.name, "frames": int(z["frames"]), "fps": float(z["fps"]),
                            "persons": int(len(z["id"]))}
            elif args.reuse_tracks:
                info = repose(pipeline, clip, args.reuse_tracks, args.out, args.degrade_height)
            else:
                info = extract(pipeline, clip, args.out, cache)
            info.update(group=clip.group, fall_start=clip.fall_start, fall_end=clip.fall_end,
                        more_falls=[list(f) for f in clip.more_falls])
            manifest["splits"][split].append(info)
            took = time.perf_counter() - t0
            print(f"{split:9s} {clip.name:18s} {info['frames']:4d} frames {took:6.1f} s", flush=True)
            _write_manifest(args.out, manifest)  # after every clip: an interrupted extraction keeps what it did
    _write_manifest(args.out, manifest)


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / "clips.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / "clips.json")


if __name__ == "__main__":
    main()
