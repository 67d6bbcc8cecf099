"""Score an earlier revision's fall policy on today's extractions and splits, with today's scorer (which knows clips
with two falls), so a table can put the previous policy beside the current one on the same skeletons:

    git worktree add /tmp/prev bb2c11c && cp -r /tmp/prev/configs /tmp/prev/models /tmp/prev/fallwatch/
    PYTHONPATH=/tmp/prev python scripts/eval_previous_policy.py --skeletons runs/skeletons_new runs/skeletons_new_b \
        --splits test_new --out docs/figures/falls_previous_policy_test_new.json

`fallwatch` is imported from PYTHONPATH (the old revision); the scorer and the manifest reader are loaded from this
checkout's files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import fallwatch
from fallwatch.action.recognizer import FallRecognizer, load_stgcn
from fallwatch.config import load_config
from fallwatch.eval.falls import replay_sliding
from fallwatch.weights import resolve

HERE = Path(__file__).resolve().parent


def _today(module: str):
    name = f"today_{module}"
    spec = importlib.util.spec_from_file_location(name, HERE.parent / "fallwatch" / "eval" / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses look their module up there
    spec.loader.exec_module(loaded)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skeletons", type=Path, nargs="+", required=True)
    parser.add_argument("--splits", nargs="+", default=["test", "fall_free"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    today = _today("falls")
    cfg = load_config()
    weights = resolve(cfg.action.model, allow_download=False)
    model, _ = load_stgcn(weights.path)
    results = []
    for folder in args.skeletons:
        for clip, data in today.extracted_clips(folder, None, tuple(args.splits)):
            alarms = replay_sliding(FallRecognizer(cfg.action, model), data)
            results.append(today.clip_result(clip, data, alarms))
    report = {"policy_from": str(Path(fallwatch.__file__).parent), "model": str(weights.path),
              "sha256": weights.sha256, "action_config": vars(cfg.action), "score": today.score(results)}
    s = report["score"]
    print(f"previous policy: F1 {s['f1']:.3f} P {s['precision']:.3f} R {s['recall']:.3f} ({s['detected']}/"
          f"{s['falls']}), latency median {s['latency_median_s']} s, false alarms {s['false_alarms']}, "
          f"{s['false_alarms_per_hour']:.1f}/h fall-free")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
