"""`fallwatch batch` on three short real clips and a corrupt file: the local pool and Ray (a local instance with two
workers) write exactly what sequential `fallwatch run`s write; the corrupt file fails alone; a rerun skips."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, default_sigint, run_cli

CLIPS = [DATA / "videos" / "urfd" / "videos" / "fall-21-cam0.mp4", DATA / "videos" / "urfd" / "videos" /
         "fall-28-cam0.mp4", DATA / "mot" / "TUD-Campus" / "TUD-Campus.mp4"]
SHORT = ["--set", "run.max_frames=25", "--no-video"]  # short runs: the comparison, not the clips, is under test


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("batch")
    corrupt = tmp / "broken.mp4"
    corrupt.write_bytes(os.urandom(20_000))
    listing = tmp / "videos.txt"
    listing.write_text("# three real clips and a broken file\n" + "\n".join(str(c) for c in CLIPS) + f"\n{corrupt}\n")
    sequential = tmp / "sequential"
    for clip in CLIPS:
        proc = run_cli("run", str(clip), "-o", str(sequential / clip.stem), "--no-progress", *SHORT)
        assert proc.returncode == 0, proc.stderr
    return {"tmp": tmp, "listing": listing, "sequential": sequential, "corrupt": corrupt}


def _same_as_sequential(out: Path, sequential: Path) -> None:
    for clip in CLIPS:
        name = clip.stem
        ours, ref = out / name, sequential / name
        assert (ours / f"{name}.frames.jsonl").read_text() == (ref / f"{name}.frames.jsonl").read_text()
        assert json.loads((ours / f"{name}.events.json").read_text()) == json.loads(
            (ref / f"{name}.events.json").read_text())
        assert json.loads((ours / f"{name}.summary.json").read_text())["status"] == "complete"


def _table(out: Path) -> dict[str, dict]:
    with open(out / "batch.csv") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


def test_local_pool_equals_sequential_runs_and_resumes(inputs):
    out = inputs["tmp"] / "pool"
    proc = run_cli("batch", str(inputs["listing"]), "-o", str(out), "--workers", "2", "--no-progress", *SHORT)
    assert proc.returncode == 1, proc.stderr  # one video failed
    _same_as_sequential(out, inputs["sequential"])
    rows = _table(out)
    assert [rows[c.stem]["status"] for c in CLIPS] == ["complete"] * 3
    assert rows["broken"]["status"] == "failed" and "cannot decode" in rows["broken"]["error"]
    totals = json.loads((out / "batch.json").read_text())["totals"]
    assert totals["complete"] == 3 and totals["failed"] == 1 and totals["frames"] == 75
    assert "broken.mp4" in proc.stderr and "local pool of 2" in proc.stdout
    again = run_cli("batch", str(inputs["listing"]), "-o", str(out), "--no-progress", *SHORT)
    rows = _table(out)
    assert [rows[c.stem]["status"] for c in CLIPS] == ["skipped"] * 3, again.stdout
    assert rows["broken"]["status"] == "failed"


def test_ray_equals_sequential_runs(inputs):
    out = inputs["tmp"] / "ray"
    proc = run_cli("batch", *(str(c) for c in CLIPS), str(inputs["corrupt"]), "-o", str(out), "--ray",
                   "--workers", "2", "--no-progress", *SHORT, timeout=900)
    assert proc.returncode == 1, proc.stderr
    _same_as_sequential(out, inputs["sequential"])
    rows = _table(out)
    assert rows["broken"]["status"] == "failed" and "ray local" in proc.stdout


def test_no_inputs_or_no_ray_give_one_line(tmp_path):
    proc = run_cli("batch", str(tmp_path / "nothing*.mp4"), "-o", str(tmp_path / "out"))
    assert proc.returncode != 0 and proc.stderr.strip().startswith("fallwatch: error: no videos found")
    assert len(proc.stderr.strip().splitlines()) == 1
    fake = tmp_path / "without_ray" / "ray"  # an environment where `import ray` fails
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    proc = run_cli("batch", str(CLIPS[0]), "-o", str(tmp_path / "out"), "--ray",
                   env={"PYTHONPATH": str(fake.parent)})
    assert proc.returncode != 0 and 'pip install "fallwatch[cluster]"' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_batch_keeps_finished_videos_and_marks_the_rest(tmp_path, sig):
    """A short clip and a long one on two workers: stopped once the short one is done, the long one ends
    `interrupted` with every finished frame kept, and the table says so."""
    out = tmp_path / "out"
    long_clip = DATA / "mot" / "PETS09-S2L1" / "vtest.avi"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fallwatch", "batch", str(CLIPS[0]), str(long_clip), "-o", str(out), "--workers", "2",
         "--no-progress", "--no-video"],  # full size: the long clip must still be running at the signal
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
        preexec_fn=default_sigint)
    done, frames = out / CLIPS[0].stem / f"{CLIPS[0].stem}.summary.json", out / "vtest" / "vtest.frames.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (done.exists() and frames.exists() and
                                           len(frames.read_text().splitlines()) >= 5):
        time.sleep(0.5)
    assert done.exists(), "the short clip did not finish in time"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    rows = _table(out)
    assert rows[CLIPS[0].stem]["status"] == "complete" and rows["vtest"]["status"] == "interrupted"
    summary = json.loads((out / "vtest" / "vtest.summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert 5 <= len(frames.read_text().splitlines()) == summary["input"]["frames"] < 795
