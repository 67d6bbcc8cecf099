"""Which student learns best: short trainings of the candidate HRNets on the same cache, budget and seed (issue 18).

    python scripts/sweep_pose_students.py --cache runs/pose_cache --epochs 3 --samples-per-epoch 4000 \
        --candidates "W24 (1,1) b2 192x256" "W18 (1,1,1) b1 192x256 (W18-small-like)" \
        --out docs/figures/pose_student_short_runs.json

Each candidate (named as in `scripts/bench.py students`, whose CPU cost per person they were chosen by) is trained
by `fallwatch train pose --cache-only-existing` with the same views (seed), samples and one-cycle schedule, then
scored on every held-out crop through the pipeline's own path. A candidate whose report exists is not trained
again, so a stopped sweep resumes; a candidate stopped mid-training resumes from its `.last.pt`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import STUDENT_CANDIDATES  # noqa: E402 - the same names and specs as the cost sweep


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def summary(report: dict) -> dict:
    """The figures that decide: held-out PCK against the teacher (all, lying or falling), against human labels."""
    held = report["heldout"]
    lying = next(v for k, v in held["vs_teacher"].items() if k.startswith("lying"))
    out = {"params": report["params"], "macs_per_person": report["macs_per_person"], "train_s": report["train_s"],
           "best_val_pck": round(report["best_val_pck"], 4),
           "heldout_pck_vs_teacher": round(held["vs_teacher"]["all"]["pck"], 4),
           "heldout_pck_vs_teacher_lying": round(lying["pck"], 4), "heldout_crops": held["crops"],
           "history": report["history"]}
    if "vs_labels" in held:
        out["lspet_pck_vs_labels"] = round(held["vs_labels"]["all"]["pck"], 4)
        out["thunder_flip_pck_vs_labels"] = round(held["teacher_vs_labels"]["all"]["pck"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("runs/pose_cache"))
    parser.add_argument("--candidates", nargs="+", required=True, choices=sorted(STUDENT_CANDIDATES))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples-per-epoch", type=int, default=4000)
    parser.add_argument("--work", type=Path, default=Path("runs/sweep"), help="checkpoints and their reports")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = {"cache": str(args.cache), "epochs": args.epochs, "samples_per_epoch": args.samples_per_epoch,
               "candidates": {}}
    for name in args.candidates:
        spec, size = STUDENT_CANDIDATES[name]
        out = args.work / f"{slug(name)}.pt"
        if not out.with_suffix(".json").exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "fallwatch", "train", "pose", "--cache", str(args.cache),
                   "--cache-only-existing", "--no-progress", "--spec", json.dumps({**spec, "modules": list(spec[
                       "modules"])}), "--input-size", *map(str, size), "--epochs", str(args.epochs),
                   "--samples-per-epoch", str(args.samples_per_epoch), "--out", str(out),
                   "--resume", str(out.with_suffix(".last.pt"))]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        results["candidates"][name] = summary(json.loads(out.with_suffix(".json").read_text()))
        print(name, json.dumps({k: v for k, v in results["candidates"][name].items() if k != "history"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
