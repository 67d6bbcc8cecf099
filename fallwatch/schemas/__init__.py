"""JSON Schemas of the output files (frames.jsonl lines, events.json, summary.json)."""

from __future__ import annotations

import json
from importlib import resources


def load_schema(name: str) -> dict:
    """`name` is one of: frame, events, summary."""
    return json.loads((resources.files("fallwatch.schemas") / f"{name}.schema.json").read_text())
