"""Ctrl-C and SIGTERM part-way: every finished frame is on disk, the video plays, the summary says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import jsonschema
import pytest
from conftest import PETS, default_sigint

from fallwatch.schemas import load_schema


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_valid_outputs(tmp_path, weights_dir, sig):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fallwatch", "run", str(PETS / "vtest.avi"), "-o", str(out), "--no-progress",
         "--set", "detect.imgsz=160"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
        preexec_fn=default_sigint,
    )
    jsonl = out / "vtest.frames.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 5:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("no frames written within 120 s")
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr

    summary = json.loads((out / "vtest.summary.json").read_text())
    jsonschema.validate(summary, load_schema("summary"))
    assert summary["status"] == "interrupted"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]  # every line is whole JSON
    n = summary["counts"]["frames"]
    assert 5 <= n < 795 and len(lines) == n
    assert [d["frame"] for d in lines] == list(range(n))

    cap = cv2.VideoCapture(str(out / "vtest.mp4"))  # finalised: it opens and holds every finished frame
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == n
    jsonschema.validate(json.loads((out / "vtest.events.json").read_text()), load_schema("events"))
