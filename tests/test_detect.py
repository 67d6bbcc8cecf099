"""The fast detector runtimes give the people ultralytics' own predictor gives, on real frames; the OpenVINO graph is
converted once into the cache and reused; the overlapped loop writes what the plain loop writes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import DATA, PETS, read_jsonl, run_cli

from fallwatch.config import load_config
from fallwatch.detect import YoloDetector
from fallwatch.detect.letterbox import Letterbox
from fallwatch.track.matching import iou_matrix
from fallwatch.weights import resolve

FALL_CLIP = DATA / "videos" / "gmdcsa24" / "videos" / "S3_Fall_19.mp4"  # she falls: lying boxes too
TUD_STADTMITTE = DATA / "mot" / "TUD-Stadtmitte" / "TUD-Stadtmitte.mp4"


def _frames(video, count: int, step: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    for index in range(count * step):
        ok, image = cap.read()
        assert ok, f"{video} ended at frame {index}"
        if index % step == 0:
            frames.append(image)
    return frames


@pytest.fixture(scope="module")
def real_frames() -> list[np.ndarray]:
    """Crowded street (640x480), a larger frame that is scaled down (768x576), and a fall (320x240 up-scaled)."""
    return (_frames(TUD_STADTMITTE, 6, 25) + _frames(PETS / "vtest.avi", 4, 50)
            + _frames(FALL_CLIP, 6, 12))


def _detector(runtime: str) -> YoloDetector:
    cfg = load_config(overrides=[f"detect.runtime={runtime}"]).detect
    return YoloDetector(cfg, resolve("yolov8n", allow_download=False), "cpu")


@pytest.mark.parametrize("runtime", ["openvino", "torch"])
def test_fast_runtimes_find_the_same_people_as_predict(runtime, real_frames, tmp_path, monkeypatch):
    monkeypatch.setenv("FALLWATCH_CACHE", str(tmp_path))
    reference, fast = _detector("predict"), _detector(runtime)
    assert fast.runtime == runtime
    matched = 0
    for image in real_frames:
        want, got = reference(image), fast(image)
        people = want.scores >= 0.25  # what the tracker's first round sees
        # the same number of boxes over the tracker's low threshold, each matched one to one
        assert abs(int((got.scores >= 0.1).sum()) - int((want.scores >= 0.1).sum())) <= 1
        if not people.any():
            continue
        iou = iou_matrix(want.boxes[people], got.boxes)
        best = iou.argmax(1)
        assert len(set(best.tolist())) == int(people.sum()), "two people matched one box"
        assert iou.max(1).min() >= 0.95
        assert np.abs(want.scores[people] - got.scores[best]).max() <= 0.02
        matched += int(people.sum())
    assert matched >= 40


def test_openvino_graph_is_converted_once_and_reused(tmp_path, monkeypatch, real_frames):
    monkeypatch.setenv("FALLWATCH_CACHE", str(tmp_path))
    first = _detector("openvino")
    first.prepare(640, 480)
    (xml,) = (tmp_path / "compiled").glob("*/model.xml")
    assert "480x640" in xml.parent.name and "openvino" in xml.parent.name
    assert first.weights.sha256[:16] in xml.parent.name
    stamp = xml.stat().st_mtime_ns
    second = _detector("openvino")
    second.network._convert = lambda shape: pytest.fail("converted again despite the cache")
    boxes = second(real_frames[0])
    assert xml.stat().st_mtime_ns == stamp and len(boxes) > 0


def test_letterbox_matches_ultralytics():
    """Same padded input tensor as ultralytics' LetterBox(auto=True) for frame sizes the product meets."""
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    for h, w in ((480, 640), (576, 768), (240, 320), (1080, 1920), (720, 1280), (500, 333)):
        image = rng.integers(0, 255, (h, w, 3), np.uint8)
        ours = Letterbox.fit((h, w), 640)
        theirs = LetterBox((640, 640), auto=True, stride=32)(image=image)
        assert ours.shape == theirs.shape[:2]
        expected = theirs[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
        np.testing.assert_array_equal(ours.tensor(image), expected)


def test_overlapped_loop_writes_what_the_plain_loop_writes(tmp_path):
    """Detecting frame t+1 on a second thread changes nothing in the results, nor their order."""
    outs = {}
    for overlap in ("true", "false"):
        out = tmp_path / overlap
        proc = run_cli("run", str(FALL_CLIP), "-o", str(out), "--no-progress", "--set", f"run.overlap={overlap}",
                       "--set", "output.video=false", "--set", "output.report=false")
        assert proc.returncode == 0, proc.stderr
        outs[overlap] = out
    plain = read_jsonl(outs["false"] / "S3_Fall_19.frames.jsonl")
    overlapped = read_jsonl(outs["true"] / "S3_Fall_19.frames.jsonl")
    assert len(plain) == 86
    assert overlapped == plain
    events = [json.loads((outs[k] / "S3_Fall_19.events.json").read_text().replace(str(outs[k]), "OUT"))["events"]
              for k in ("true", "false")]
    assert events[0] == events[1] and len(events[0]) == 1
