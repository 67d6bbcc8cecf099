"""Train the shipped ST-GCN fall model (same as `fallwatch train action ...`).

    python scripts/extract_skeletons.py --data ../shared/data --out runs/skeletons
    python scripts/train_action.py \
        --kaggle ../shared/data/skeletons/kaggle_real_fall_coco17/kaggle_real_fall_coco17.npz \
        --extracted runs/skeletons --out models/stgcn_fall.pt --epochs 8 --windows-per-epoch 8000
"""

import sys

from fallwatch.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", "action", *sys.argv[1:]]))
