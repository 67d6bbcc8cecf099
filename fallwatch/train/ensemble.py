"""Merge ST-GCN checkpoints trained with different seeds into one ensemble checkpoint.

The members must share the network spec and the window they were trained on (steps, rate, normalisation);
anything else would average probabilities of different questions. The merged file keeps every member's state
dict, training settings and metrics, and `load_stgcn` turns it into an `STGCNEnsemble` whose output is the
members' mean p(fall). Optionally scores each member and the ensemble on the same Kaggle validation windows
(split by recording, as in training) so the merge reports what it buys.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fallwatch.action.buffers import WindowSpec
from fallwatch.errors import UsageError
from fallwatch.train.action import TrainSettings, fixed_val_set, load_kaggle, predict, roc_auc, split


def merge(members: list[Path], out: Path, kaggle: Path | None = None) -> dict:
    """Write `out` from the trainer checkpoints `members`; returns a report (member and ensemble AUC if `kaggle`)."""
    from fallwatch.action.recognizer import load_stgcn

    ckpts = [torch.load(p, map_location="cpu", weights_only=False) for p in members]
    for key in ("spec", "window"):
        if any(c[key] != ckpts[0][key] for c in ckpts):
            raise UsageError(f"ensemble: the members differ in their {key}; train them with one recipe")
    if any("members" in c for c in ckpts):
        raise UsageError("ensemble: give single-model checkpoints, not ensembles")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"spec": ckpts[0]["spec"], "window": ckpts[0]["window"],
                "members": [c["state_dict"] for c in ckpts],
                "train": [c.get("train") for c in ckpts],
                "metrics": {"members": [c.get("metrics") for c in ckpts]}}, out)
    report: dict = {"members": [str(p) for p in members], "seeds": [(c.get("train") or {}).get("seed") for c in ckpts]}
    if kaggle is not None:
        window = WindowSpec(**ckpts[0]["window"])
        settings = replace(TrainSettings(), **{k: v for k, v in (ckpts[0].get("train") or {}).items()
                                               if k in TrainSettings.__dataclass_fields__})
        _, val = split(load_kaggle(kaggle, settings.kaggle_fps), settings.val_fraction)
        x, y = fixed_val_set(val, window, replace(settings, seed=0))
        ensemble, _ = load_stgcn(out)  # its members are the checkpoints' networks: score them as loaded once
        scores = {str(p): predict(m, x) for p, m in zip(members, ensemble.members, strict=True)}
        scores[str(out)] = predict(ensemble, x)
        report["kaggle_val_windows"] = int(len(y))
        report["kaggle_val_auc"] = {name: roc_auc(s, y) for name, s in scores.items()}
        report["kaggle_val_auc_member_mean"] = float(np.mean([report["kaggle_val_auc"][str(p)] for p in members]))
    return report
