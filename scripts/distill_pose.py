"""Distil a small HRNet from the MoveNet Thunder teacher; the same as `fallwatch train pose`.

    python scripts/distill_pose.py --data ../shared/data --cache runs/pose_cache.npz \
        --out models/hrnet_fallwatch_s.pt --epochs 30 --samples-per-epoch 4000

The first run builds the crop cache (YOLOv8n boxes on every 3rd video frame + the LSPET photos, each labelled once
by the teacher; about 10 minutes on 2 CPU cores); later runs reuse it. Writes the best checkpoint, a resumable
`.last.pt` and a `.json` report with the held-out PCK against the teacher and against human labels.
"""

from fallwatch.cli import main

if __name__ == "__main__":
    import sys

    raise SystemExit(main(["train", "pose", *sys.argv[1:]]))
