"""Give a distilled HRNet checkpoint its score map: its keypoint scores on MoveNet Thunder's scale.

    python scripts/calibrate_pose_scores.py runs/hrnet_w18s.pt --cache runs/pose_cache [--out runs/x.pt] \
        [--report docs/figures/x.json]

`fallwatch train pose` does this itself at the end of a training; this script does it for a checkpoint taken
mid-run or trained before. Why and how: fallwatch/pose/scores.py, fallwatch/train/pose_scores.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fallwatch.config import load_config
from fallwatch.train.pose import reference_estimator, student_estimator
from fallwatch.train.pose_cache import load_cache
from fallwatch.train.pose_scores import calibrate_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("runs/pose_cache"))
    parser.add_argument("--reference", default="movenet-thunder")
    parser.add_argument("--crops", type=int, default=2000, help="training crops the map is fitted on")
    parser.add_argument("--out", type=Path, help="write the mapped checkpoint here (default: in place)")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    cfg = load_config(overrides=["pose.smoothing=false", "pose.calibrate_scores=false", "pose.flip_test=false"])
    reference = reference_estimator(args.reference, cfg)
    report = calibrate_checkpoint(args.checkpoint, student_estimator(args.checkpoint, cfg), reference,
                                  load_cache(args.cache), args.out, fit_crops=args.crops,
                                  threshold=cfg.action.min_keypoint_score)
    report["reference"] = args.reference
    print(json.dumps(report, indent=2))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
