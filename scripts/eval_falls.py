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

import numpy as np

from fallwatch.action.recognizer import FallRecognizer, load_stgcn
from fallwatch.config import load_config
from fallwatch.eval.clips import frame_size, shared_clips
from fallwatch.eval.falls import (
    clip_result,
    extracted_clips,
    faller_continuity,
    found_after_landing,
    person_continuity,
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


def _faller_summary(follow: list[dict]) -> dict:
    """Track continuity through the falls ([onset - 1 s, landing + 3 s]: one id, and one person as the action
    stage carries them over) and how often the faller is found after the landing (tracked; tracked or held)."""
    if not follow:
        return {}
    mean = {k: float(np.mean([f[k] for f in follow])) for k in follow[0] if k != "clip"}
    full = {f"{k}_fully_followed": float(np.mean([f[k] >= 0.95 for f in follow])) for k in ("one_id", "person")}
    return {"falls": len(follow), **mean, **full, "clips": follow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skeletons", type=Path, nargs="+", default=[Path("runs/skeletons")],
                        help="extraction folder(s); several are scored together")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="where the clips are, for the frame size of extractions that did not record it")
    parser.add_argument("--splits", nargs="+", default=["test", "fall_free"],
                        help="splits of the extraction to score (test_new for the second test split)")
    parser.add_argument("--clips", nargs="*", help="score these extracted clips instead of the test split and the "
                        "fall-free videos (e.g. validation clips held out of training)")
    args = parser.parse_args()
    cfg = load_config(overrides=args.overrides)
    weights = resolve(cfg.action.model, allow_download=False)
    model, ckpt = load_stgcn(weights.path)
    results = {"fallwatch (sliding window, hysteresis)": [], "PP-Human policy (tumbling, flush, argmax)": [],
               "posture-aware BiLSTM, standing model (public baseline)": []}
    bilstm = _bilstm()
    sizes = None
    follow = []
    clips = [item for folder in args.skeletons for item in extracted_clips(folder, args.clips, tuple(args.splits))]
    for clip, data in clips:
        if "width" not in data:  # extracted before the frame size was recorded: read it from the video
            sizes = sizes or {c.name: c for split in shared_clips(args.data).values() for c in split}
            data["width"], data["height"] = frame_size(sizes[clip["name"]])
        presence: dict[int, dict] = {}
        ours, pp_human = list(results)[:2]
        results[ours].append(clip_result(clip, data, replay_sliding(FallRecognizer(cfg.action, model), data,
                                                                    presence)))
        results[pp_human].append(clip_result(clip, data, replay_pp_human(FallRecognizer(cfg.action, model), data)))
        if clip["fall_start"] is not None:
            tracked, shown = found_after_landing(data, clip["fall_end"], presence)
            follow.append({"clip": clip["name"], "one_id": faller_continuity(data, clip["fall_start"],
                                                                             clip["fall_end"], 1.0, 3.0)[0],
                           "person": person_continuity(data, presence, clip["fall_start"], clip["fall_end"]),
                           "tracked_after_landing": tracked, "shown_after_landing": shown})
        if bilstm is not None:
            results["posture-aware BiLSTM, standing model (public baseline)"].append(
                clip_result(clip, data, replay_posture_bilstm(*bilstm, data)))
    report = {"model": str(weights.path), "sha256": weights.sha256, "action_config": vars(cfg.action),
              "policies": {p: score(r) for p, r in results.items() if r}, "faller": _faller_summary(follow)}
    for p, s in report["policies"].items():
        print(f"{p}: F1 {s['f1']:.3f} P {s['precision']:.3f} R {s['recall']:.3f} ({s['detected']}/{s['falls']}), "
              f"latency median {s['latency_median_s']} worst {s['latency_worst_s']} s, "
              f"false alarms {s['false_alarms']}, {s['false_alarms_per_hour']:.1f}/h fall-free")
    print("faller:", json.dumps({k: v for k, v in report["faller"].items() if k != "clips"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
