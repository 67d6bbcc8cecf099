"""Choose the event thresholds on validation clips held out of training (never on the test split).

    python scripts/train_action.py ... --clips $(cat fit_clips.txt) --out runs/val.pt     # trained without them
    python scripts/calibrate_falls.py --skeletons runs/skeletons --set action.model=runs/val.pt \
        --clips fall-16 fall-17 ... S2_Fall_14 --out docs/figures/falls_calibration.json

Replays the extracted skeletons through the recognizer for every (on-threshold, minimum duration) pair of the
grid and keeps the pair with the best event F1 on those clips; ties go to fewer false alarms, then to the lower
median latency. The off-threshold stays `on - hysteresis` (config's gap between the two).

With `--models A.pt B.pt C.pt` (the same recipe trained with different seeds, all without the validation clips)
every grid point is scored for each model and the choice is made on the mean over them: one run's F1 on a handful
of validation falls moves by an event with the seed, and the thresholds should suit the recipe, not one draw.

With `--fold MODEL CLIP ...` given once per fold (cross-validation: each model trained without its fold's clips),
every clip is replayed by the model that did not see it and the events of all folds are pooled into one score:
out-of-fold calibration on every training clip instead of a small held-out set.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from fallwatch.action.recognizer import FallRecognizer, load_stgcn
from fallwatch.config import load_config
from fallwatch.eval.falls import clip_result, extracted_clips, replay_sliding, score
from fallwatch.weights import resolve

ON_GRID = (0.5, 0.6, 0.7, 0.8, 0.9)
DURATION_GRID_S = (0.1, 0.2, 0.4, 0.6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skeletons", type=Path, default=Path("runs/skeletons"))
    parser.add_argument("--clips", nargs="+", help="validation clips (held out of training)")
    parser.add_argument("--fold", nargs="+", action="append", metavar="MODEL CLIP",
                        help="a model and the clips it was trained without (repeat per fold); events pooled")
    parser.add_argument("--models", nargs="+", help="checkpoints of one recipe, different seeds (default: the "
                        "config's action.model)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if bool(args.clips) == bool(args.fold):
        parser.error("give --clips (with --models or the config's model) or --fold, one of them")
    cfg = load_config(overrides=args.overrides)
    # scoring units: each is a list of (model, clips) whose events are pooled; the grid is scored per unit, then
    # averaged over units
    if args.fold:
        units = [[(load_stgcn(Path(model))[0], extracted_clips(args.skeletons, clips)) for model, *clips in args.fold]]
        names = [" ".join(f) for f in args.fold]
    else:
        paths = args.models or [resolve(cfg.action.model, allow_download=False).path]
        clips = extracted_clips(args.skeletons, args.clips)
        units = [[(load_stgcn(p)[0], clips)] for p in paths]
        names = [str(p) for p in paths]
    gap = cfg.action.on_threshold - cfg.action.off_threshold
    keys = ("f1", "precision", "recall", "false_alarms", "latency_median_s")
    rows = []
    for on, duration in itertools.product(ON_GRID, DURATION_GRID_S):
        action = replace(cfg.action, on_threshold=on, off_threshold=max(0.0, on - gap), min_duration_s=duration)
        per_unit = []
        for unit in units:
            s = score([clip_result(c, d, replay_sliding(FallRecognizer(action, model), d))
                       for model, clips in unit for c, d in clips])
            per_unit.append({k: s[k] for k in keys})
        mean = {k: float(np.mean([m[k] if m[k] is not None else np.nan for m in per_unit])) for k in keys}
        rows.append({"on_threshold": on, "off_threshold": action.off_threshold, "min_duration_s": duration, **mean,
                     "per_model": per_unit})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_model"}), flush=True)
    best = max(rows, key=lambda r: (round(r["f1"], 6), -r["false_alarms"],
                                    -np.nan_to_num(r["latency_median_s"], nan=99.0)))
    print("best:", json.dumps(best))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"models": names, "clips": args.clips, "grid": rows, "best": best}
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
