"""Output rotation: frames.jsonl, the video and mot.txt split into segments at the same frames, by input time or by
size; no line is split, no frame lost or doubled, every video segment plays, the report reads them all."""

from __future__ import annotations

import json

import cv2
from conftest import DATA, run_cli

from fallwatch.io.rotation import segment_files
from fallwatch.report.svg import clock

CLIP = DATA / "videos" / "gmdcsa24" / "videos" / "S3_Fall_19.mp4"  # 86 frames, 5.7 s, one fall
ROTATE_S, ROTATE_MB = 2.0, 0.012


def test_segments_by_time_and_size_keep_every_frame_once(tmp_path):
    proc = run_cli("run", str(CLIP), "-o", str(tmp_path), "--no-progress", "--mot",
                   "--set", "output.rotate=always", "--set", f"output.rotate_s={ROTATE_S}",
                   "--set", f"output.rotate_mb={ROTATE_MB}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "S3_Fall_19.summary.json").read_text())
    jsonl = segment_files(tmp_path, "S3_Fall_19", ".frames.jsonl")
    videos = segment_files(tmp_path, "S3_Fall_19", ".mp4")
    mots = segment_files(tmp_path, "S3_Fall_19", ".mot.txt")
    assert len(jsonl) >= 3, "5.7 s of input in 2 s segments"
    assert [s for s, _ in jsonl] == [s for s, _ in videos] == [s for s, _ in mots]
    assert [s["start_frame"] for s in summary["segments"]] == [s for s, _ in jsonl]
    assert summary["segments"][1]["files"]["jsonl"] == str(jsonl[1][1])

    seen, longest = [], 0
    for (start, path), (_, video) in zip(jsonl, videos, strict=True):
        text = path.read_text()
        lines = [json.loads(line) for line in text.splitlines()]  # every line whole
        frames = [line["frame"] for line in lines]
        assert frames[0] == start
        times = [line["time"] for line in lines]
        longest = max(longest, max(len(line) + 1 for line in text.splitlines()))
        # a segment ends at whichever limit comes first: never past either by more than one frame
        assert times[-1] - times[0] < ROTATE_S
        assert len(text) - len(text.splitlines()[-1]) - 1 < ROTATE_MB * 1e6
        cap = cv2.VideoCapture(str(video))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(lines)  # closed, playable, same frames
        ok, _ = cap.read()
        assert ok
        cap.release()
        seen += frames
        last_time = times[-1]
    assert seen == list(range(86))
    mot_frames = sorted({int(row.split(",")[0]) for _, p in mots for row in p.read_text().splitlines()})
    assert mot_frames[0] >= 1 and mot_frames[-1] <= 86 and len(mot_frames) > 60
    assert summary["video_frames"] == 86
    report = (tmp_path / "S3_Fall_19.report.html").read_text()
    assert f"<td>duration</td><td>{clock(last_time)}</td>" in report  # read to the last segment's last line
    events = json.loads((tmp_path / "S3_Fall_19.events.json").read_text())["events"]
    assert len(events) == 1


def test_file_runs_do_not_rotate_by_default(tmp_path):
    stale = tmp_path / "S3_Fall_19.from40.frames.jsonl"  # left by an earlier, rotated run into the same folder
    stale.write_text('{"frame": 40, "time": 2.7, "persons": []}\n')
    proc = run_cli("run", str(CLIP), "-o", str(tmp_path), "--no-progress", "--set", "run.max_frames=20",
                   "--set", "output.rotate_s=0.1")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for _, p in segment_files(tmp_path, "S3_Fall_19", ".frames.jsonl")] == ["S3_Fall_19.frames.jsonl"]
    assert "segments" not in json.loads((tmp_path / "S3_Fall_19.summary.json").read_text())
    assert not stale.exists()  # a report of this run never reads the earlier run's frames
