"""Baseline: the PyPI package `human-fall-detection` 0.1.2 (a YOLOv8s with `Normal` / `Fall` classes, per frame),
scored by the same scorer on the same clips as fallwatch. Never a dependency of the product:

    pip install --no-deps human-fall-detection==0.1.2      # into the evaluation environment only
    python scripts/baseline_hfd.py --splits test fall_free --out docs/figures/baseline_hfd_dev.json
    python scripts/baseline_hfd.py --splits test_new --out docs/figures/baseline_hfd_test_new.json

The rule (the one its comparison in issue 13 used): a `Fall` detection with confidence >= 0.5 in 3 consecutive
frames opens an event (the alarm, at the third frame); 15 frames without one close it. Its PyTorch checkpoint
runs through ultralytics on the CPU at the package's defaults (confidence 0.5, 640). Per-clip alarms are cached in
`--cache` so a long run can be resumed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fallwatch.config import load_config
from fallwatch.eval.clips import shared_clips
from fallwatch.eval.falls import ClipResult, score
from fallwatch.io.sources import ReaderSettings, open_source

OPEN_FRAMES, CLOSE_FRAMES, CONFIDENCE = 3, 15, 0.5


def alarms_of(fall_per_frame: list[bool]) -> list[int]:
    """Alarm frames of the 3-on / 15-off rule over a clip's per-frame `Fall` flags."""
    alarms, run, quiet, open_ = [], 0, 0, False
    for f, fall in enumerate(fall_per_frame):
        run = run + 1 if fall else 0
        quiet = 0 if fall else quiet + 1
        if not open_ and run >= OPEN_FRAMES:
            open_ = True
            alarms.append(f)
        elif open_ and quiet >= CLOSE_FRAMES:
            open_ = False
    return alarms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--splits", nargs="+", default=["test", "fall_free"])
    parser.add_argument("--cache", type=Path, default=Path("runs/baseline_hfd"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    try:
        from fall_detection.detector import FallDetector
    except ImportError:
        raise SystemExit("pip install --no-deps human-fall-detection==0.1.2 (evaluation only)") from None
    detector = FallDetector(model_type="pt", device="cpu", confidence=CONFIDENCE)
    args.cache.mkdir(parents=True, exist_ok=True)
    splits = shared_clips(args.data)
    settings = ReaderSettings.from_config(load_config().run)
    results = []
    for split in args.splits:
        for clip in splits[split]:
            cached = args.cache / f"{clip.name}.json"
            if cached.is_file():
                flags, fps = (lambda d: (d["fall"], d["fps"]))(json.loads(cached.read_text()))
            else:
                flags = []
                with open_source(str(clip.path), settings) as src:
                    fps = src.info.fps
                    for frame in src:
                        found = detector.detect_image(clip.view(frame.image))["detections"]
                        flags.append(any(d["class"] == "Fall" and d["confidence"] >= CONFIDENCE for d in found))
                cached.write_text(json.dumps({"fps": fps, "fall": flags}))
            results.append(ClipResult(clip.name, fps, len(flags), clip.fall_start, clip.fall_end, alarms_of(flags),
                                      clip.more_falls))
            print(f"{split:9s} {clip.name:40s} alarms {results[-1].alarms}", flush=True)
    report = {"baseline": "human-fall-detection 0.1.2, Fall >= 0.5 in 3 consecutive frames, 15 off",
              "splits": args.splits, "score": score(results)}
    s = report["score"]
    print(f"F1 {s['f1']:.3f} P {s['precision']:.3f} R {s['recall']:.3f} ({s['detected']}/{s['falls']}), latency "
          f"median {s['latency_median_s']} s, false alarms {s['false_alarms']}, {s['false_alarms_per_hour']}/h")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
