"""Choose the event thresholds on validation clips held out of training (never on the test split).

    python scripts/train_action.py ... --clips $(cat fit_clips.txt) --out runs/val.pt     # trained without them
    python scripts/calibrate_falls.py --skeletons runs/skeletons --set action.model=runs/val.pt \
        --clips fall-16 fall-17 ... S2_Fall_14 --out docs/figures/falls_calibration.json

Replays the extracted skeletons through the recognizer for every (on-threshold, minimum duration) pair of the
grid and keeps the pair with the best event F1 on those clips; ties go to fewer false alarms, then to the lower
median latency. The off-threshold stays `on - hysteresis` (config's gap between the two).
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

from fallwatch.action.recognizer import FallRecognizer, load_stgcn
from fallwatch.config import load_config
from fallwatch.eval.falls import clip_result, extracted_clips, replay_sliding, score
from fallwatch.weights import resolve

ON_GRID = (0.5, 0.6, 0.7, 0.8, 0.9)
DURATION_GRID_S = (0.1, 0.2, 0.4, 0.6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skeletons", type=Path, default=Path("runs/skeletons"))
    parser.add_argument("--clips", nargs="+", required=True, help="validation clips (held out of training)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cfg = load_config(overrides=args.overrides)
    model, _ = load_stgcn(resolve(cfg.action.model, allow_download=False).path)
    clips = extracted_clips(args.skeletons, args.clips)
    gap = cfg.action.on_threshold - cfg.action.off_threshold
    rows = []
    for on, duration in itertools.product(ON_GRID, DURATION_GRID_S):
        action = replace(cfg.action, on_threshold=on, off_threshold=max(0.0, on - gap), min_duration_s=duration)
        results = [clip_result(c, d, replay_sliding(FallRecognizer(action, model), d)) for c, d in clips]
        s = score(results)
        rows.append({"on_threshold": on, "off_threshold": action.off_threshold, "min_duration_s": duration,
                     **{k: s[k] for k in ("f1", "precision", "recall", "false_alarms", "latency_median_s")}})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: (round(r["f1"], 6), -r["false_alarms"], -(r["latency_median_s"] or 99)))
    print("best:", json.dumps(best))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"model": str(cfg.action.model), "clips": args.clips, "grid": rows, "best": best}
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
