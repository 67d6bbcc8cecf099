"""Bad input: one clear line on stderr, a non-zero exit, no traceback, no outputs that look complete."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from conftest import TUD_CAMPUS, run_cli

VIDEO = str(TUD_CAMPUS / "TUD-Campus.mp4")


def _assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("fallwatch: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_file(tmp_path):
    proc = run_cli("run", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out"))
    _assert_one_line_error(proc, "input not found", "nope.mp4")
    assert not (tmp_path / "out").exists()


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 100)
    proc = run_cli("run", str(bad), "-o", str(tmp_path / "out"))
    _assert_one_line_error(proc, str(bad))
    assert not (tmp_path / "out").exists()


def test_truncated_video(tmp_path):
    data = Path(VIDEO).read_bytes()
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data[: len(data) // 50])  # header cut short: moov atom lost
    proc = run_cli("run", str(bad), "-o", str(tmp_path / "out"))
    _assert_one_line_error(proc, "cut.mp4")


def test_zero_frame_video(tmp_path):
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    writer.release()
    assert empty.exists()
    proc = run_cli("run", str(empty), "-o", str(tmp_path / "out"))
    _assert_one_line_error(proc, "empty.avi")


def test_empty_image_folder(tmp_path):
    proc = run_cli("run", str(tmp_path), "-o", str(tmp_path / "out"))
    _assert_one_line_error(proc, "no images")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    proc = run_cli("run", VIDEO, "-o", str(blocker / "sub"))
    _assert_one_line_error(proc, "output folder")


def test_output_cannot_overwrite_input(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(Path(VIDEO).read_bytes())
    proc = run_cli("run", str(clip), "-o", str(tmp_path), "--max-frames", "1")
    _assert_one_line_error(proc, "overwrite the input")
    assert clip.read_bytes() == Path(VIDEO).read_bytes()


def test_unknown_config_key_lists_valid_ones(tmp_path):
    proc = run_cli("run", VIDEO, "-o", str(tmp_path), "--set", "detect.imgsize=320")
    _assert_one_line_error(proc, "detect.imgsize", "imgsz", "conf")
    assert proc.returncode == 2


def test_unknown_section(tmp_path):
    proc = run_cli("run", VIDEO, "-o", str(tmp_path), "--set", "detecter.imgsz=320")
    _assert_one_line_error(proc, "detecter", "detect", "track")


def test_wrong_type_in_set(tmp_path):
    proc = run_cli("run", VIDEO, "-o", str(tmp_path), "--set", "detect.imgsz=big")
    _assert_one_line_error(proc, "detect.imgsz", "integer")


def test_bad_config_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detect:\n  conf: [0.1\n")
    proc = run_cli("run", VIDEO, "-o", str(tmp_path / "o"), "--config", str(cfg))
    _assert_one_line_error(proc, "not valid YAML")


def test_missing_weights_offline(tmp_path):
    """The default models are bundled; a registered model that is not (mmpose's HRNet-W32) gives one error line
    naming the file, every place searched and its download address."""
    env = {"FALLWATCH_WEIGHTS": str(tmp_path / "w"), "FALLWATCH_CACHE": str(tmp_path / "cache"),
           "FALLWATCH_OFFLINE": "1"}
    (tmp_path / "w").mkdir()
    proc = run_cli("run", VIDEO, "-o", str(tmp_path / "out"), "--set", "pose.model=hrnet-w32-dark", env=env)
    _assert_one_line_error(proc, "hrnet_w32_coco_256x192_dark", str(tmp_path / "w"), str(tmp_path / "cache"),
                           "https://")


@pytest.mark.parametrize("device", ["tpu", "cuda:x"])
def test_unknown_device(tmp_path, device):
    proc = run_cli("run", VIDEO, "-o", str(tmp_path), "--device", device)
    _assert_one_line_error(proc, "device")
    assert proc.returncode == 2


def test_cuda_without_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli("run", VIDEO, "-o", str(tmp_path), "--device", "cuda")
    _assert_one_line_error(proc, "no CUDA GPU")


def test_bad_max_frames(tmp_path):
    proc = run_cli("run", VIDEO, "-o", str(tmp_path), "--max-frames", "0")
    _assert_one_line_error(proc, "--max-frames")


def test_folder_of_images_runs(tmp_path):
    """A folder source works end to end (frames written as images from the real clip), with --no-video."""
    cap = cv2.VideoCapture(VIDEO)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        ok, image = cap.read()
        assert ok
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), image)
    cap.release()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")  # skipped with a warning, never a crash
    proc = run_cli("run", str(folder), "-o", str(tmp_path / "out"), "--no-video", "--set", "detect.imgsz=320")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "out" / "frames.frames.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert not (tmp_path / "out" / "frames.mp4").exists()


def test_unreachable_stream(tmp_path):
    proc = run_cli("run", "rtsp://127.0.0.1:9/none", "-o", str(tmp_path / "out"), timeout=120)
    _assert_one_line_error(proc, "cannot open stream")
    assert not (tmp_path / "out").exists()


def test_models_lists_what_is_found(weights_dir):
    proc = run_cli("models")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("yolov8n "))
    assert "found:" in line and "yolov8n.pt" in line and "[used by detect]" in line


def test_reid_without_an_embedder_is_refused(tmp_path):
    proc = run_cli("run", VIDEO, "-o", str(tmp_path / "out"), "--set", "track.tracker=botsort",
                   "--set", "track.with_reid=true")
    _assert_one_line_error(proc, "track.with_reid")
    assert proc.returncode == 2


def test_train_pose_without_data(tmp_path):
    proc = run_cli("train", "pose", "--data", str(tmp_path / "nodata"), "--cache", str(tmp_path / "cache.npz"),
                   "--out", str(tmp_path / "student.pt"))
    _assert_one_line_error(proc, "no crop cache", "nodata")
    assert not (tmp_path / "student.pt").exists() and not (tmp_path / "cache.npz").exists()


def test_train_pose_on_an_empty_cache(tmp_path):
    proc = run_cli("train", "pose", "--cache", str(tmp_path / "cache"), "--cache-only-existing",
                   "--out", str(tmp_path / "student.pt"))
    _assert_one_line_error(proc, "no crop cache", "cache")
    assert not (tmp_path / "student.pt").exists()
