"""How much better a distilled HRNet does on the crops it was trained on than on held-out ones, checkpoint by
checkpoint: what limits it — capacity (both low) or generalisation to unseen recordings (a gap).

    python scripts/pose_fit_gap.py runs/hrnet_w18s.e9.pt runs/hrnet_w18s.e29.pt ... --cache runs/pose_cache \
        --sample 1500 --reference movenet-lightning --out docs/figures/pose_w18s_fit_gap.json
    python scripts/pose_fit_gap.py runs/hrnet_w18s.e9.pt runs/hrnet_w18s.e29.pt --photos \
        --reference movenet-lightning --reference movenet-thunder --out docs/figures/pose_w18s_fit_gap_photos.json

Each checkpoint is scored through the pipeline's own crop path (as `scripts/eval_pose_student.py`) on the same
seeded sample of training crops and of held-out crops (whole recordings and photos never trained on): PCK@0.1 of
the box against the teacher's confident joints, per group. A training crop is scored without augmentation, as it
is stored — the student saw it under random views. `--reference movenet-lightning` scores a model that trained on
neither split on the same crops: its own difference between the splits is how much harder the held-out crops are,
the control for the student's gap. `--photos` keeps only the LSPET photos, which are split photo by photo (every
5th held out), not recording by recording: a gap there would be the student remembering its training images.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fallwatch.config import load_config
from fallwatch.train.pose import evaluate, reference_estimator, student_estimator
from fallwatch.train.pose_cache import load_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--cache", type=Path, default=Path("runs/pose_cache"))
    parser.add_argument("--sample", type=int, default=1500, help="crops of each split (seeded, the same for all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", action="append", default=[], metavar="MODEL",
                        help="also score this registry model on the same crops (e.g. movenet-lightning)")
    parser.add_argument("--photos", action="store_true", help="only the LSPET photos (also scored against their "
                        "human labels)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = load_cache(args.cache)
    if args.photos:
        data = replace(data, split=np.where(data.frame < 0, data.split, "none"))
    cfg = load_config(overrides=["pose.smoothing=false"])
    report = {"sample": args.sample, "seed": args.seed, "photos_only": args.photos, "references": [],
              "checkpoints": []}

    def both_splits(estimator) -> dict:
        scores = {split: evaluate(estimator, data, split, sample=args.sample, seed=args.seed)
                  for split in ("train", "val")}
        out = {"vs_teacher": {split: s["vs_teacher"] for split, s in scores.items()}}
        if all("vs_labels" in s for s in scores.values()):
            out["vs_labels"] = {split: s["vs_labels"] for split, s in scores.items()}
        return out

    def show(row: dict) -> None:
        print(json.dumps({k: row[k] for k in ("model", "epoch") if k in row}
                         | {f"{split} {against}": round(s["all"]["pck"], 4) for against in ("vs_teacher", "vs_labels")
                            for split, s in row.get(against, {}).items()}), flush=True)

    for name in args.reference:
        report["references"].append({"model": name, **both_splits(reference_estimator(name, cfg))})
        show(report["references"][-1])
    for checkpoint in args.checkpoints:
        metrics = torch.load(checkpoint, map_location="cpu", weights_only=False).get("metrics", {})
        row = {"model": str(checkpoint), "epoch": metrics.get("epoch"), "val_pck": metrics.get("val_pck"),
               **both_splits(student_estimator(checkpoint, cfg))}
        report["checkpoints"].append(row)
        show(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
