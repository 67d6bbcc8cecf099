"""Fall-event evaluation on the held-out clips, fallwatch's policy against PP-Human's on the same model.

    python scripts/extract_skeletons.py --data ../shared/data --out runs/skeletons   # the pipeline, once
    python scripts/eval_falls.py --skeletons runs/skeletons --out docs/figures/falls.json

The action stage only sees tracks and keypoints, so replaying the skeletons our pipeline extracted (same config)
gives the events a full `fallwatch run` would; `fallwatch eval falls VIDEOS --labels CSV` runs the whole pipeline.
Test clips: URFD falls 21-30, GMDCSA subject 3 (5 falls, 5 daily activities), and the fall-free pedestrian videos
TUD-Campus, TUD-Stadtmitte and PETS09-S2L1. No threshold was tuned on them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fallwatch.action.recognizer import FallRecognizer, load_stgcn
from fallwatch.config import load_config
from fallwatch.eval.falls import (
    clip_result,
    extracted_clips,
    replay_posture_bilstm,
    replay_pp_human,
    replay_sliding,
    score,
)
from fallwatch.weights import resolve


def _bilstm():
    """The public BiLSTM fall classifier from $FALLWATCH_WEIGHTS, if present."""
    import os

    import onnxruntime as ort

    root = Path(os.environ.get("FALLWATCH_WEIGHTS", "")) / "posture-aware-bilstm-fall"
    if not (root / "standing_fall_bilstm.onnx").is_file():
        return None
    session = ort.InferenceSession(str(root / "standing_fall_bilstm.onnx"), providers=["CPUExecutionProvider"])
    return session, json.loads((root / "scalers.json").read_text())["standing"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skeletons", type=Path, default=Path("runs/skeletons"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--clips", nargs="*", help="score these extracted clips instead of the test split and the "
                        "fall-free videos (e.g. validation clips held out of training)")
    args = parser.parse_args()
    cfg = load_config(overrides=args.overrides)
    weights = resolve(cfg.action.model, allow_download=False)
    model, ckpt = load_stgcn(weights.path)
    results = {"fallwatch (sliding window, hysteresis)": [], "PP-Human policy (tumbling, flush, argmax)": [],
               "posture-aware BiLSTM, standing model (public baseline)": []}
    bilstm = _bilstm()
    for clip, data in extracted_clips(args.skeletons, args.clips):
        for policy, replay in zip(results, (replay_sliding, replay_pp_human), strict=False):
            results[policy].append(clip_result(clip, data, replay(FallRecognizer(cfg.action, model), data)))
        if bilstm is not None:
            results["posture-aware BiLSTM, standing model (public baseline)"].append(
                clip_result(clip, data, replay_posture_bilstm(*bilstm, data)))
    report = {"model": str(weights.path), "sha256": weights.sha256, "action_config": vars(cfg.action),
              "policies": {p: score(r) for p, r in results.items() if r}}
    for p, s in report["policies"].items():
        print(f"{p}: F1 {s['f1']:.3f} P {s['precision']:.3f} R {s['recall']:.3f} ({s['detected']}/{s['falls']}), "
              f"latency median {s['latency_median_s']} worst {s['latency_worst_s']} s, "
              f"false alarms {s['false_alarms']}, {s['false_alarms_per_hour']:.1f}/h fall-free")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
