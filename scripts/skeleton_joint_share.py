"""How many of a keypoint model's joints the action stage gets to use: per skeleton folder (one `.npz` per clip, as
written by `scripts/extract_skeletons.py`), the share of joints scored at or above `action.min_keypoint_score`
(below it a joint counts as missing and is interpolated) and the median joint score, overall and per clip.

    python scripts/skeleton_joint_share.py runs/f1/new_lightning runs/f1/new_student_e58_cal runs/f1/new_fallwatch_s \
        --out docs/figures/pose_joint_share_test_new.json

Fewer alarms from a model that sees fewer joints are not better judgement: this says which it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fallwatch.config import load_config


def joint_share(folder: Path, threshold: float) -> dict:
    """Share of joints >= threshold and median score over every joint of every person of every clip in `folder`."""
    clips = {path.stem: np.load(path)["keypoints"][..., 2].ravel() for path in sorted(folder.glob("*.npz"))}
    if not clips:
        raise SystemExit(f"no skeletons (*.npz) in {folder}")
    every = np.concatenate(list(clips.values()))
    return {"share_at_or_above": round(float((every >= threshold).mean()), 4),
            "median_score": round(float(np.median(every)), 4),
            "clips": {name: round(float((s >= threshold).mean()), 4) if s.size else None for name, s in clips.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--threshold", type=float, help="default: the config's action.min_keypoint_score")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    threshold = args.threshold if args.threshold is not None else load_config().action.min_keypoint_score
    report = {"threshold": threshold, "folders": {str(f): joint_share(f, threshold) for f in args.folders}}
    for folder, row in report["folders"].items():
        print(f"{folder}: {row['share_at_or_above']:.1%} of joints >= {threshold}, median score {row['median_score']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
