"""Score a distilled HRNet checkpoint on the crop cache's held-out crops, through the pipeline's own path.

    python scripts/eval_pose_student.py runs/hrnet_student.pt --cache runs/pose_cache --out docs/figures/x.json \
        [--reference movenet-thunder --reference movenet-lightning]

Reports PCK@0.1 of the box against the teacher's confident joints (all, per group, lying or falling) and against
the human labels of the held-out LSPET photos — beside the same for the flip-tested teacher labels themselves and,
with `--reference`, for bundled models as the pipeline runs them (no flip test, no smoothing). MoveNet Thunder as
a reference says how far the teacher's own single pass is from its flip-tested labels: a ceiling for what
"agreement with the teacher" can mean; Lightning says what a model a third of its cost reaches.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fallwatch.config import load_config
from fallwatch.train.pose import evaluate, reference_estimator, student_estimator
from fallwatch.train.pose_cache import load_cache


def training_state(checkpoint: Path) -> dict:
    """The checkpoint's epoch and validation PCK, and the run's history so far from its resumable `.last.pt`."""
    import torch

    state = {"metrics": torch.load(checkpoint, weights_only=False, map_location="cpu").get("metrics")}
    last = checkpoint.with_suffix(".last.pt")
    if last.exists():
        saved = torch.load(last, weights_only=False, map_location="cpu")
        state["history"] = saved["history"]
        state["schedule"] = {k: saved["train"][k] for k in ("epochs", "samples_per_epoch", "batch", "lr")}
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("runs/pose_cache"))
    parser.add_argument("--reference", action="append", default=[], metavar="MODEL",
                        help="also score this registry model (e.g. movenet-thunder; slow: every held-out crop)")
    parser.add_argument("--thunder", action="store_true", help="the same as --reference movenet-thunder")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    references = list(dict.fromkeys([*args.reference, *(["movenet-thunder"] if args.thunder else [])]))
    data = load_cache(args.cache)
    cfg = load_config(overrides=["pose.smoothing=false"])
    report = {"checkpoint": str(args.checkpoint), **training_state(args.checkpoint),
              "student": evaluate(student_estimator(args.checkpoint, cfg), data)}
    for name in references:
        report[name.replace("movenet-", "")] = evaluate(reference_estimator(name, cfg), data)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
