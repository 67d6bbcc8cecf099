"""What every fallwatch trainer shares: resuming from a `.last.pt`, one epoch of optimiser steps with a progress
bar, and saving the best checkpoint plus a resumable one after each epoch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def restore(resume: Path | None, model: torch.nn.Module, opt, sched) -> tuple[int, list, float]:
    """(first epoch to run, history, best metric) — from `resume` if it exists, else a fresh start."""
    if resume is None or not resume.exists():
        return 0, [], -1.0
    state = torch.load(resume, weights_only=False, map_location="cpu")
    model.load_state_dict(state["state_dict"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    return state["epoch"], state["history"], state["best"]


def run_epoch(model: torch.nn.Module, opt, sched, steps: int, step_loss: Callable[[], torch.Tensor], desc: str,
              progress: bool) -> float:
    """`steps` optimiser steps on `step_loss()` (which draws its own batch); returns the mean loss."""
    from tqdm import tqdm

    model.train()
    losses = []
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for _ in bar:
        loss = step_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return float(np.mean(losses))


def save_epoch(out: Path, payload: dict, metric: str, value: float, best: float, opt, sched, epoch: int,
               history: list) -> float:
    """Writes `out` when `value` beats `best` and `out.last.pt` always; returns the new best."""
    if value > best:
        best = value
        torch.save({**payload, "metrics": {metric: value, "epoch": epoch}}, out)
    torch.save({**payload, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                "history": history, "best": best}, out.with_suffix(".last.pt"))
    return best
