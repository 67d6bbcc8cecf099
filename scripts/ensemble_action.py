"""Merge ST-GCN fall models trained with different seeds into one ensemble checkpoint (mean p(fall)).

    for s in 0 1 2; do python scripts/train_action.py --kaggle $K --extracted runs/skeletons_nofuse \
        --out runs/final_seed$s.pt --epochs 7 --windows-per-epoch 8000 --seed $s; done
    python scripts/ensemble_action.py runs/final_seed0.pt runs/final_seed1.pt runs/final_seed2.pt \
        --out models/stgcn_fall.pt --kaggle $K

Prints and writes (next to --out, `.json`) each member's and the ensemble's window AUC on the Kaggle validation
recordings, all on the same windows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fallwatch.train.ensemble import merge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", type=Path, nargs="+", help="checkpoints written by train_action.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kaggle", type=Path, help="COCO-17 sequence set, to score members and ensemble")
    args = parser.parse_args()
    report = merge(args.members, args.out, args.kaggle)
    print(json.dumps(report, indent=2))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
