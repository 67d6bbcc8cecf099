"""Pick the compute device once, with a clear error for one that does not exist."""

from __future__ import annotations

import re

import torch

from fallwatch.errors import UsageError


class DeviceError(UsageError, ValueError):
    """An unknown or unavailable device; the message is one line."""


def select_device(spec: str) -> str:
    """Map `auto | cpu | cuda | cuda:N` to a torch device string that exists on this machine."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    match = re.fullmatch(r"(?:cuda)(?::(\d+))?|(\d+)", spec)
    if not match:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    index = int(match.group(1) or match.group(2) or 0)
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} asked for, but no CUDA GPU is available here: use --device cpu")
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device cuda:{index} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return f"cuda:{index}"
