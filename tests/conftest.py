"""Shared fixtures: real data from ../shared, real weights through $FALLWATCH_WEIGHTS, and one real CLI run of a
MOT sequence reused by many assertions (the expensive part of the suite)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FALLWATCH_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
os.environ.setdefault("FALLWATCH_WEIGHTS", str(SHARED / "weights"))
os.environ["FALLWATCH_OFFLINE"] = "1"  # tests never download
os.environ.setdefault("YOLO_VERBOSE", "False")

TUD_CAMPUS = DATA / "mot" / "TUD-Campus"
PETS = DATA / "mot" / "PETS09-S2L1"


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess, as a user would run it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fallwatch", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    path = Path(os.environ["FALLWATCH_WEIGHTS"])
    assert (path / "yolov8n-coco" / "yolov8n.pt").is_file(), f"real weights expected under {path}"
    return path


@pytest.fixture(scope="session")
def tud_run(tmp_path_factory, weights_dir) -> dict:
    """`fallwatch run` on the real TUD-Campus sequence (71 frames, 8 people) with the real YOLOv8n, once."""
    out = tmp_path_factory.mktemp("tud")
    video = TUD_CAMPUS / "TUD-Campus.mp4"
    proc = run_cli("run", str(video), "-o", str(out), "--mot", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    name = video.stem
    return {
        "proc": proc,
        "out": out,
        "input": video,
        "video": out / f"{name}.mp4",
        "jsonl": out / f"{name}.frames.jsonl",
        "events": out / f"{name}.events.json",
        "summary": out / f"{name}.summary.json",
        "mot": out / f"{name}.mot.txt",
    }


S3_FALL_19 = {"start": 29, "end": 48, "fps": 14.985}  # GMDCSA24 labels.csv: she falls and stays down
LONG_LIE_S = 2.0  # the clip is 5.7 s long: a long lie this short is seen in it


def free_port() -> int:
    """A TCP port free on loopback now (for a server the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_sigint() -> None:
    """`preexec_fn` for a child that a test stops with SIGINT, as a user's Ctrl-C: a shell starts background jobs
    with SIGINT ignored, and a child inherits that, so a suite started in the background would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def needs(available: bool, what: str) -> None:
    """A Debian package a test uses: .ci/run installs it, so in CI its absence fails; elsewhere the test skips."""
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing, but .ci/run installs it")
        pytest.skip(f"{what} is not installed here (.ci/run installs it)")


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver on loopback: records every POSTed JSON body; `delay` seconds before answering."""

    received: list
    delay = 0.0

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def webhook_receiver(delay: float = 0.0, port: int = 0):
    handler = type("Handler", (_Receiver,), {"received": [], "delay": delay})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fall", handler.received
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def fall_run(tmp_path_factory, weights_dir) -> dict:
    """`fallwatch run` on GMDCSA24 S3_Fall_19 (held out from training), with a long-lie alert after 2 s, alerts to
    a webhook and to a command."""
    out = tmp_path_factory.mktemp("fall")
    clip = DATA / "videos" / "gmdcsa24" / "videos" / "S3_Fall_19.mp4"
    piped = out / "alerts_from_command.jsonl"
    with webhook_receiver() as (url, received):
        proc = run_cli("run", str(clip), "-o", str(out), "--no-progress", "--set", f"action.long_lie_s={LONG_LIE_S}",
                       "--alert-webhook", url, "--alert-cmd", f"cat >> {piped}; echo >> {piped}")
    assert proc.returncode == 0, proc.stderr
    return {"out": out, "events": json.loads((out / "S3_Fall_19.events.json").read_text())["events"],
            "lines": read_jsonl(out / "S3_Fall_19.frames.jsonl"), "video": out / "S3_Fall_19.mp4",
            "report": out / "S3_Fall_19.report.html", "webhook": list(received),
            "command": read_jsonl(piped) if piped.exists() else []}
