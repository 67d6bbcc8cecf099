"""The real CLI on a real MOT sequence with the real detector: counts, formats, detection quality, ids."""

from __future__ import annotations

import json

import cv2
import jsonschema
import numpy as np
import pytest
from conftest import LONG_LIE_S, S3_FALL_19, TUD_CAMPUS, read_jsonl

from fallwatch.eval.mot import read_mot, recall_at_iou
from fallwatch.schemas import load_schema


def _count_frames(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_video_has_every_input_frame(tud_run):
    n_in = _count_frames(tud_run["input"])
    assert n_in == 71
    assert _count_frames(tud_run["video"]) == n_in
    cap = cv2.VideoCapture(str(tud_run["video"]))
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 480)
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 25.0) < 0.01
    cap.release()


def test_one_jsonl_line_per_frame_in_order(tud_run):
    lines = read_jsonl(tud_run["jsonl"])
    assert [d["frame"] for d in lines] == list(range(71))
    times = [d["time"] for d in lines]
    assert times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:], strict=False))
    assert abs(times[-1] - 70 / 25.0) < 0.05


def test_outputs_validate_against_schemas(tud_run):
    frame_schema = load_schema("frame")
    for line in read_jsonl(tud_run["jsonl"]):
        jsonschema.validate(line, frame_schema)
    jsonschema.validate(json.loads(tud_run["events"].read_text()), load_schema("events"))
    jsonschema.validate(json.loads(tud_run["summary"].read_text()), load_schema("summary"))


def test_summary_describes_the_run(tud_run, weights_dir):
    s = json.loads(tud_run["summary"].read_text())
    assert s["status"] == "complete" and s["error"] is None
    assert s["counts"]["frames"] == 71 and s["video_frames"] == 71
    assert s["input"]["width"] == 640 and s["input"]["kind"] == "file"
    assert s["models"]["detect"]["sha256"] in (
        "d5095577da3ed2c5fe0fa6fb9182efb81aab2a9e8dac769fc03f00d5a1647b46",
        "f59b3d833e2ff32e194b5bb8e08d211dc7c5bdf144b90d2c8412c47ccfc83b36",
    )
    assert s["config"]["detect"]["conf"] == 0.1
    assert {"detect", "track", "pose", "read", "write"} <= set(s["timing_ms"])
    assert s["models"]["pose"]["name"] == "movenet-lightning"  # the default keypoint model (issue #14)
    assert s["models"]["pose"]["sha256"] in (
        "818e713f90e692a7fae08502aeac301e2cb3605e40bde27b310f79f569e16ecd",  # float32, from $FALLWATCH_WEIGHTS
        "6ed7eb14ddd35ca791444df78bc8227ce1379d26a33de7d505bede177f249560",  # bundled (float16-stored)
    )
    assert "complete: 71 frames" in tud_run["proc"].stdout


def test_person_recall_against_ground_truth(tud_run):
    """Every person the pipeline reports, against all 359 ground-truth boxes of TUD-Campus."""
    gt = read_mot(TUD_CAMPUS / "gt" / "gt.txt")
    pred = {}
    for d in read_jsonl(tud_run["jsonl"]):
        rows = [[p["id"], *p["box"], p["score"]] for p in d["persons"]]
        pred[d["frame"] + 1] = np.asarray(rows, np.float64).reshape(-1, 6)
    recall, matched, total = recall_at_iou(gt, pred, 0.5)
    assert total == 359
    assert recall >= 0.6, f"recall {recall:.3f} ({matched}/{total})"


def test_every_person_has_a_stable_id(tud_run):
    lines = read_jsonl(tud_run["jsonl"])
    ids = [p["id"] for d in lines for p in d["persons"]]
    assert ids and all(isinstance(i, int) and i >= 1 for i in ids)
    for d in lines:  # no id twice in one frame
        frame_ids = [p["id"] for p in d["persons"]]
        assert len(frame_ids) == len(set(frame_ids))
    # 8 people walk through TUD-Campus; a tracker that fragments badly would mint many more ids.
    assert 6 <= len(set(ids)) <= 20


def test_mot_file_matches_jsonl(tud_run):
    rows = np.loadtxt(tud_run["mot"], delimiter=",", ndmin=2)
    lines = read_jsonl(tud_run["jsonl"])
    assert len(rows) == sum(len(d["persons"]) for d in lines)
    first = lines[0]["persons"][0]
    row = rows[(rows[:, 0] == 1) & (rows[:, 1] == first["id"])][0]
    assert np.allclose(row[2:4], first["box"][:2], atol=0.06)


def test_keypoints_are_anatomically_ordered(tud_run):
    """Standing pedestrians: nose above hips above ankles in most person-frames with confident joints."""
    ordered = judged = 0
    for d in read_jsonl(tud_run["jsonl"]):
        for p in d["persons"]:
            kp = np.array([[np.nan if v is None else v for v in row] for row in p["keypoints"]], np.float64)
            assert kp.shape == (17, 3)
            x1, y1, x2, y2 = p["box"]
            if y2 - y1 < 150:
                continue
            conf = kp[:, 2] >= 0.3
            if not (conf[0] and conf[11:13].any() and conf[15:17].any()):
                continue
            judged += 1
            hips = np.nanmean(np.where(conf[11:13], kp[11:13, 1], np.nan))
            ankles = np.nanmean(np.where(conf[15:17], kp[15:17, 1], np.nan))
            ordered += kp[0, 1] < hips < ankles
    assert judged >= 100
    assert ordered / judged >= 0.9, (ordered, judged)


def test_a_real_fall_is_reported(fall_run):
    """The events overlap the labelled fall, the video shows it."""
    fall_start, fall_end, fps = S3_FALL_19["start"], S3_FALL_19["end"], S3_FALL_19["fps"]
    events, lines = fall_run["events"], fall_run["lines"]
    assert events, "no fall event"
    assert any(e["start_frame"] <= fall_end + 3 * fps and (e["end_frame"] is None or e["end_frame"] >= fall_start)
               for e in events)
    fallen = [d["frame"] for d in lines if any(p.get("state") in ("fallen", "down") for p in d["persons"])]
    assert fallen and min(fallen) >= fall_start - fps / 2
    assert all(p["fall_prob"] is None or 0 <= p["fall_prob"] <= 1 for d in lines for p in d["persons"])
    cap = cv2.VideoCapture(str(fall_run["video"]))
    cap.set(cv2.CAP_PROP_POS_FRAMES, min(fallen))
    ok, image = cap.read()
    cap.release()
    banner = image[: max(28, image.shape[0] // 14)]
    assert ok and banner[..., 2].mean() > 150 and banner[..., 0].mean() < 120  # the red banner


def test_the_faller_is_down_from_the_landing_to_the_end(fall_run):
    """She lands at frame 48 and stays on the floor: in every frame from then on, her person is `down` (tracked,
    or held at the last position while the detector misses her), under the event raised for the fall."""
    event = next(e for e in fall_run["events"] if e["alarm_frame"] <= S3_FALL_19["end"] + S3_FALL_19["fps"])
    after = [d for d in fall_run["lines"] if d["frame"] >= S3_FALL_19["end"]]
    assert len(after) == 86 - S3_FALL_19["end"]
    for d in after:
        states = [p["state"] for p in d["persons"] if p.get("event_id") == event["event_id"]]
        assert states == ["down"], (d["frame"], d["persons"])
    assert all(p["down_since"] == event["down_since"] for d in after for p in d["persons"] if p.get("event_id"))
    assert event["end_reason"] == "end_of_input" and event["end_frame"] == 85
    assert event["down_s"] == pytest.approx(event["end_time"] - event["down_since"], abs=1e-3)


def test_long_lie_is_a_second_alert(fall_run):
    """After `action.long_lie_s` down, the event records the long lie and frames.jsonl flags the person."""
    event = next(e for e in fall_run["events"] if e["long_lie_time"] is not None)
    assert event["long_lie_time"] - event["down_since"] == pytest.approx(LONG_LIE_S, abs=1.5 / S3_FALL_19["fps"])
    flagged = [d["frame"] for d in fall_run["lines"]
               if any(p.get("event_id") == event["event_id"] and p["long_lie"] for p in d["persons"])]
    assert flagged and min(flagged) == event["long_lie_frame"] and max(flagged) == 85


def test_every_fall_leaves_a_snapshot_and_a_clip(fall_run):
    """The alarm frame as JPEG, and an annotated clip from 5 s before the alarm (here: the clip's start) to 5 s after
    it (here: the input's end, 3.3 s later), with exactly the frames it says."""
    event = fall_run["events"][0]
    snapshot = cv2.imread(event["snapshot"])
    assert snapshot is not None and snapshot.shape == (480, 640, 3)
    assert event["clip_start_frame"] == 0 and event["clip_end_frame"] == 85 and event["clip_frames"] == 86
    cap = cv2.VideoCapture(event["clip"])
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.set(cv2.CAP_PROP_POS_FRAMES, event["alarm_frame"])
    ok, alarm = cap.read()
    cap.release()
    assert frames == 86 and ok
    banner = alarm[: max(28, alarm.shape[0] // 14)]
    assert banner[..., 2].mean() > 150 and banner[..., 0].mean() < 120  # the clip shows the alarm as it was raised
