"""Keypoint accuracy on the labelled LSP-extended subset (2,000 images, 14 annotated joints).

    python scripts/eval_pose.py --data ../shared/data/images/lspet_subset --out docs/figures/pose_lspet.json \
        [--set pose.model=movenet-lightning ...]

Each image's person box is the extent of its visible annotated joints (the crop then adds the configured padding,
1.25 by default). The 12 joints LSP and COCO share (shoulders, elbows, wrists, hips, knees, ankles) are scored:
PCK@0.2 of the torso diameter (mean of the two shoulder-to-opposite-hip distances) and PCK@0.1 of the box size
(its longer side), over visible joints, per pose group and overall, with DARK and with plain argmax on the same
heatmaps. `--heldout-every 5` scores only the photos `fallwatch train pose` held out (LSPET index divisible by 5).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np

from fallwatch.config import load_config
from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
from fallwatch.types import LSP_TO_COCO
from fallwatch.weights import resolve

ALL_LSP = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
           "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top")  # fmt: skip


def load_lspet(folder: Path, heldout_every: int | None = None):
    with open(folder / "joints.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if heldout_every and int(row["lspet_index"]) % heldout_every:
            continue
        joints = {name: (float(row[f"{name}_x"]), float(row[f"{name}_y"]), int(row[f"{name}_vis"])) for name in ALL_LSP}
        yield folder / row["file"], row["pose_group"], joints


def pck(pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, norm: float, thr: float) -> tuple[int, int]:
    d = np.linalg.norm(pred - gt, axis=1)
    ok = vis & np.isfinite(d)
    hits = int(((d <= thr * norm) & ok).sum())
    return hits, int(vis.sum())


def evaluate(folder: Path, overrides: list[str], limit: int | None = None, heldout_every: int | None = None) -> dict:
    cfg = load_config(overrides=overrides)
    weights = resolve(cfg.pose.model, allow_download=False)
    model = build_heatmap_model(cfg.pose, weights.path, "cpu")
    variants = {"dark": PoseEstimator(cfg.pose, model)}
    argmax_cfg = load_config(overrides=[*overrides, "pose.dark=false"]).pose
    variants["argmax"] = PoseEstimator(argmax_cfg, model)
    coco_idx = np.array(list(LSP_TO_COCO.values()))
    stats: dict = {}
    t_model = 0.0
    n = 0
    for path, group, joints in load_lspet(folder, heldout_every):
        if limit is not None and n >= limit:
            break
        image = cv2.imread(str(path))
        if image is None:
            continue
        visible = np.array([[x, y] for x, y, v in joints.values() if v])
        if len(visible) < 2:
            continue
        box = np.r_[visible.min(0), visible.max(0)]
        gt = np.array([joints[name][:2] for name in LSP_TO_COCO])
        vis = np.array([joints[name][2] == 1 for name in LSP_TO_COCO])
        diag = [np.linalg.norm(np.subtract(joints[a][:2], joints[b][:2])) for a, b in
                (("l_shoulder", "r_hip"), ("r_shoulder", "l_hip")) if joints[a][2] and joints[b][2]]
        torso = float(np.mean(diag)) if diag else None
        size = float(max(box[2] - box[0], box[3] - box[1]))
        for name, estimator in variants.items():
            t0 = time.perf_counter()
            kp = estimator.estimate(image, box[None])[0]
            if name == "dark":
                t_model += time.perf_counter() - t0
            pred = kp[coco_idx, :2]
            for key in (group, "all"):
                s = stats.setdefault(name, {}).setdefault(key, {"box": [0, 0], "torso": [0, 0], "images": 0})
                h, t = pck(pred, gt, vis, size, 0.1)
                s["box"][0] += h
                s["box"][1] += t
                if torso:
                    h, t = pck(pred, gt, vis, torso, 0.2)
                    s["torso"][0] += h
                    s["torso"][1] += t
                s["images"] += 1
        n += 1
    result = {"model": cfg.pose.model, "sha256": weights.sha256, "images": n,
              "ms_per_person": 1000 * t_model / max(n, 1)}
    for name, groups in stats.items():
        result[name] = {
            g: {
                "pck_box_0.1": s["box"][0] / max(s["box"][1], 1),
                "pck_torso_0.2": s["torso"][0] / max(s["torso"][1], 1),
                "images": s["images"],
            }
            for g, s in groups.items()
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/images/lspet_subset"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--heldout-every", type=int,
                        help="score only the photos the distilled model did not train on (its --val-every)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = evaluate(args.data, args.overrides, args.limit, args.heldout_every)
    result["heldout_every"] = args.heldout_every
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
