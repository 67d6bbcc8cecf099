"""Real RTSP streams (GStreamer's RTSP server on loopback, `tests/rtsp_server.py`): a real frame of pedestrians held
as a still scene, whose server is killed mid-stream and restarted - the run reconnects and the same people keep
their ids; a real clip in a loop whose server never comes back - the run ends cleanly after the configured
attempts with every finished frame kept."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from conftest import DATA, ROOT, free_port, needs, read_jsonl

from fallwatch.io.rotation import segment_files

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi and the GStreamer RTSP server bindings
CLIP = DATA / "mot" / "TUD-Stadtmitte" / "TUD-Stadtmitte.mp4"  # real pedestrians, 640 x 480


@pytest.fixture(scope="module")
def still(tmp_path_factory) -> Path:
    """A real frame of the clip, served as a still scene: after a restart the same people stand in the same places,
    so a tracker that survives the reconnect must give them the same ids."""
    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, image = cap.read()
    cap.release()
    assert ok
    path = tmp_path_factory.mktemp("still") / "tud_stadtmitte_60.png"
    cv2.imwrite(str(path), image)
    return path


def _gst_available() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run([SYSTEM_PYTHON, "-c", probe],
                                                             capture_output=True).returncode == 0


@contextlib.contextmanager
def _serve(served: Path):
    """GStreamer's RTSP server on a free loopback port; `start()` (re)starts it, every start is killed at the end."""
    needs(_gst_available(), "GStreamer's RTSP server (gstreamer1.0-rtsp, gir1.2-gst-rtsp-server-1.0, python3-gi)")
    port = free_port()
    procs = []

    def start():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        proc = subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), str(served), str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert proc.stdout.readline().startswith("ready"), "the RTSP server did not start"
        procs.append(proc)
        return proc

    start()
    try:
        yield {"url": f"rtsp://127.0.0.1:{port}/live", "start": start, "procs": procs}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


@pytest.fixture()
def clip_server():
    with _serve(CLIP) as server:
        yield server


@pytest.fixture()
def still_server(still):
    with _serve(still) as server:
        yield server


def _run(url: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fallwatch", "run", url, "-o", str(out), "--no-progress",
                             "--no-video", "--set", "detect.imgsz=320", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _wait_for_lines(path: Path, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.2)
    pytest.fail(f"fewer than {n} frames in {path} after {timeout} s")


def test_stream_survives_a_server_restart(still_server, tmp_path):
    server = still_server
    out = tmp_path / "out"
    proc = _run(server["url"], out, "--max-frames", "80", "--set", "run.reconnect_initial_s=0.5",
                "--set", "output.rotate_s=3")  # live runs rotate their outputs (here every 3 s of stream)
    jsonl = None
    deadline = time.time() + 120
    while jsonl is None and time.time() < deadline:
        found = list(out.glob("*.frames.jsonl")) if out.exists() else []
        jsonl = found[0] if found else None
        time.sleep(0.2)
    assert jsonl is not None
    name = jsonl.name[: -len(".frames.jsonl")]
    deadline = time.time() + 120
    while sum(len(p.read_text().splitlines()) for _, p in segment_files(out, name, ".frames.jsonl")) < 25:
        assert time.time() < deadline, "fewer than 25 frames after 120 s"
        time.sleep(0.2)
    server["procs"][-1].kill()  # the camera goes away mid-stream...
    server["procs"][-1].wait(10)
    time.sleep(2.0)
    server["start"]()  # ...and comes back
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    summary = json.loads(next(out.glob("*.summary.json")).read_text())
    assert summary["status"] == "complete" and summary["input"]["kind"] == "stream"
    assert summary["input"]["reconnects"] >= 1 and not summary["input"]["stream_lost"]
    segments = segment_files(out, name, ".frames.jsonl")
    assert len(segments) >= 2 and segments[0][1] == jsonl
    assert [s["start_frame"] for s in summary["segments"]] == [start for start, _ in segments]
    lines = [line for _, path in segments for line in read_jsonl(path)]
    indices = [d["frame"] for d in lines]
    assert len(lines) == 80 and indices == sorted(set(indices))  # live: stale frames are dropped, order kept
    latency = summary["latency_ms"]  # capture to result, as measured by the run itself
    assert latency["frames"] == 80 and 0 < latency["p50"] <= latency["p95"] <= latency["max"] + 1
    # every frame read before the last one processed and not processed itself was dropped, and counted
    assert summary["input"]["frames_dropped"] >= indices[-1] + 1 - len(lines) > 0
    before = {p["id"] for d in lines[5:20] for p in d["persons"]}
    after = {p["id"] for d in lines[-10:] for p in d["persons"]}
    assert len(before) >= 3 and len(before & after) >= 0.8 * len(before), (before, after)  # the same people


def test_a_server_that_never_comes_back_ends_the_run_cleanly(clip_server, tmp_path):
    """Also: the camera's password (and a webhook token) appear in no output, log line or message."""
    server = clip_server
    out = tmp_path / "out"
    url = server["url"].replace("rtsp://", "rtsp://viewer:S3cretPass@")
    proc = _run(url, out, "--set", "run.reconnect_attempts=2", "--set", "run.reconnect_initial_s=0.2",
                "--alert-webhook", "http://127.0.0.1:9/hook?token=T0kenValue")
    deadline = time.time() + 120
    while not list(out.glob("*.frames.jsonl")) and time.time() < deadline:
        time.sleep(0.2)
    jsonl = next(out.glob("*.frames.jsonl"))
    _wait_for_lines(jsonl, 10)
    server["procs"][-1].kill()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    summary = json.loads(next(out.glob("*.summary.json")).read_text())
    assert summary["status"] == "complete" and summary["input"]["stream_lost"]
    assert summary["input"]["frames"] == len(read_jsonl(jsonl)) >= 10
    assert "did not come back" in stderr and "viewer:***@" in stderr
    assert summary["input"]["path"] == url.replace("S3cretPass", "***")
    written = "".join(p.read_text(errors="replace") for p in out.iterdir() if p.suffix in {".json", ".jsonl", ".html"})
    for secret in ("S3cretPass", "T0kenValue"):
        assert secret not in stdout + stderr + written + "".join(p.name for p in out.iterdir())


@contextlib.contextmanager
def _mjpeg_server(clip: Path, fps: float = 15.0):
    """An HTTP MJPEG camera on loopback (multipart/x-mixed-replace, as IP cameras and ESP32-CAMs serve it): the
    real clip's frames as JPEGs, in a loop, paced at `fps`. Yields the stream's URL."""
    import http.server
    import threading

    cap = cv2.VideoCapture(str(clip))
    jpegs = []
    while len(jpegs) < 60:
        ok, image = cap.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    cap.release()

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for i in range(100_000):
                    jpeg = jpegs[i % len(jpegs)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
                    time.sleep(1.0 / fps)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Camera)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    finally:
        server.shutdown()
        server.server_close()


def test_http_mjpeg_camera(tmp_path):
    """An HTTP MJPEG camera (the documented `http://` input): the run reads it as a live source, finds the
    pedestrians of the real clip and stops after --max-frames with a complete summary."""
    with _mjpeg_server(CLIP) as url:
        proc = _run(url, tmp_path, "--max-frames", "12")
        stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    summary = json.loads(next(tmp_path.glob("*.summary.json")).read_text())
    assert summary["status"] == "complete" and summary["input"]["kind"] == "stream"
    assert summary["input"]["path"] == url and summary["input"]["frames"] == 12
    assert (summary["input"]["width"], summary["input"]["height"]) == (640, 480)
    lines = read_jsonl(next(tmp_path.glob("*.frames.jsonl")))
    assert len(lines) == 12
    assert sum(len(d["persons"]) for d in lines) >= 12 * 3  # TUD-Stadtmitte: a street full of people


def test_a_webcam_index_without_a_camera_is_one_clear_error(tmp_path):
    """A webcam index is opened through the camera API: where no camera is there, the run ends with one line that
    names it and a non-zero exit, never a traceback or an empty output that looks complete."""
    if Path("/dev/video7").exists():
        pytest.skip("this machine has a camera at index 7")
    proc = _run("7", tmp_path)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "cannot open webcam 7" in stderr and "Traceback" not in stderr
    assert not list(tmp_path.glob("*.summary.json"))
