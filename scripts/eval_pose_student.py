"""Score a distilled HRNet checkpoint on the crop cache's held-out crops, through the pipeline's own path.

    python scripts/eval_pose_student.py runs/hrnet_student.pt --cache runs/pose_cache --out docs/figures/x.json

Reports PCK@0.1 of the box against the teacher's confident joints (all, per group, lying or falling) and against
the human labels of the held-out LSPET photos — beside the same for MoveNet Thunder as the pipeline runs it
(no flip test) and for the flip-tested teacher labels themselves.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from fallwatch.config import load_config
from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
from fallwatch.train.pose import evaluate, student_estimator
from fallwatch.train.pose_cache import load_cache
from fallwatch.weights import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("runs/pose_cache"))
    parser.add_argument("--thunder", action="store_true", help="also score MoveNet Thunder (slow: every crop)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = load_cache(args.cache)
    cfg = load_config(overrides=["pose.smoothing=false"])
    report = {"checkpoint": str(args.checkpoint), "student": evaluate(student_estimator(args.checkpoint, cfg), data)}
    if args.thunder:
        pose = replace(cfg.pose, model="movenet-thunder", backend="auto")
        thunder = PoseEstimator(pose, build_heatmap_model(pose, resolve("movenet-thunder").path, "cpu"))
        report["thunder"] = evaluate(thunder, data)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
