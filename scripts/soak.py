"""Soak test of a live run: a real RTSP server loops a real clip, `fallwatch run rtsp://…` watches it for a long time;
resident memory, throughput, capture-to-result latency, dropped frames, reconnects and output segments are sampled.

    python scripts/soak.py --minutes 25 --out docs/figures/soak.json
    python scripts/soak.py --minutes 25 --restart-at 12 --video ../shared/data/mot/TUD-Stadtmitte/TUD-Stadtmitte.mp4

The server is GStreamer's RTSP server (tests/rtsp_server.py, run by the system Python that has `gi`), serving the
clip repeated into one long file. The default clip is a real fall (GMDCSA24 S3_Fall_19, 5.7 s), so every repeat
opens and closes a fall event: the event path (evidence clips, alerts, report rebuilds, person states) runs hundreds
of times, not only the frame loop.
`--restart-at M` kills the server M minutes in and starts it again a few seconds later (a camera reboot).
Memory: growth of the resident set from the end of the warm-up (`--warmup` minutes) to the end of the run, and the
largest sample after the warm-up; the goal is growth under 5 %. Latency and drops come from the run's summary
(frame decoded -> results written, 1 ms bins). The run ends with SIGINT, as a user's Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared/data/videos/gmdcsa24/videos/S3_Fall_19.mp4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(video: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests/rtsp_server.py"), str(video), str(port), "live"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    if not line.startswith("ready"):
        server.kill()
        sys.exit(f"soak: the RTSP server did not start ({line.strip() or 'no output'})")
    return server


def looped_video(video: Path, minutes: float, folder: Path) -> Path:
    """The clip repeated to last `minutes` as one file, so the stream plays through without the server seeking
    back at each end (a seek is a stream discontinuity that a real camera does not have)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    if not frames:
        sys.exit(f"soak: cannot read {video}")
    target = folder / f"{video.stem}.looped.mp4"
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for index in range(int(minutes * 60 * fps)):
        writer.write(frames[index % len(frames)])
    writer.release()
    return target


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class LineCounter:
    """Frames written so far, over every frames.jsonl segment, reading only what is new."""

    def __init__(self, outdir: Path):
        self.outdir = outdir
        self.offsets: dict[Path, int] = {}
        self.lines = 0

    def update(self) -> int:
        for path in self.outdir.glob("*.frames.jsonl"):
            start = self.offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(start)
                chunk = fh.read()
            complete = chunk.rfind(b"\n") + 1
            self.lines += chunk[:complete].count(b"\n")
            self.offsets[path] = start + complete
        return self.lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="minutes before memory growth is measured")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--restart-at", type=float, help="minutes into the run to restart the server")
    parser.add_argument("--rotate-s", type=float, default=300.0, help="output segment length (output.rotate_s)")
    parser.add_argument("--outdir", type=Path, help="keep the run's outputs here (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = tempfile.TemporaryDirectory(prefix="fallwatch-soak-")
    if args.outdir is None:
        args.outdir = Path(work.name) / "out"
    stream = looped_video(args.video, args.minutes + 5, Path(work.name))
    port = free_port()
    server = start_server(stream, port)
    url = f"rtsp://127.0.0.1:{port}/live"
    cmd = [sys.executable, "-m", "fallwatch", "run", url, "-o", str(args.outdir), "--no-progress",
           "--set", f"output.rotate_s={args.rotate_s}"]
    for item in args.overrides:
        cmd += ["--set", item]
    # The run ends with SIGINT, as a user's Ctrl-C: restore its default in the child, which a shell's background
    # job (this script under nohup, say) would otherwise inherit as ignored.
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    counter = LineCounter(args.outdir)
    samples, t0, restarted = [], time.monotonic(), None
    try:
        while (elapsed := time.monotonic() - t0) < args.minutes * 60:
            time.sleep(args.interval)
            if run.poll() is not None:
                break
            if args.restart_at is not None and restarted is None and elapsed >= args.restart_at * 60:
                server.kill()
                server.wait()
                time.sleep(3)
                server = start_server(stream, port)
                restarted = round(elapsed, 1)
            samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": rss_mb(run.pid),
                            "frames": counter.update()})
            print(json.dumps(samples[-1]), flush=True)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
        try:
            _, stderr = run.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            run.kill()
            _, stderr = run.communicate()
        server.kill()
        server.wait()
    summaries = list(args.outdir.glob("*.summary.json"))
    if run.returncode not in (0, 130) or not summaries:  # 130: ended by the SIGINT above, as intended
        sys.exit(f"soak: the run failed (exit {run.returncode}): {stderr.strip()[-2000:]}")
    summary = json.loads(summaries[0].read_text())
    report = build_report(args, samples, summary, restarted)
    report["outputs"] = sorted(p.name for p in args.outdir.iterdir())
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    work.cleanup()


def build_report(args, samples: list[dict], summary: dict, restarted: float | None) -> dict:
    warm = [s for s in samples if s["t_s"] >= args.warmup * 60 and s["rss_mb"]]
    memory = None
    if len(warm) >= 2:
        first, last = warm[0]["rss_mb"], warm[-1]["rss_mb"]
        memory = {"after_warmup_mb": round(first, 1), "end_mb": round(last, 1),
                  "max_after_warmup_mb": round(max(s["rss_mb"] for s in warm), 1),
                  "growth_pct": round(100 * (last - first) / first, 2)}
    rates = [(b["frames"] - a["frames"]) / (b["t_s"] - a["t_s"]) for a, b in zip(samples, samples[1:], strict=False)]
    info = summary["input"]
    return {
        "command": "python scripts/soak.py " + " ".join(sys.argv[1:]),
        "video": str(args.video),
        "minutes": round(summary["wall_s"] / 60, 2),
        "status": summary["status"],
        "frames": info["frames"],
        "source_fps": info["fps"],
        "throughput_fps": summary["throughput_fps"],
        "throughput_fps_min_max_per_interval": [round(min(rates), 2), round(max(rates), 2)] if rates else None,
        "frames_dropped": info["frames_dropped"],
        "reconnects": info["reconnects"],
        "stream_lost": info["stream_lost"],
        "server_restarted_at_s": restarted,
        "latency_ms": summary.get("latency_ms"),
        "memory": memory,
        "events": summary["counts"]["events"],
        "segments": len(summary.get("segments", [])),
        "timing_ms": summary["timing_ms"],
        "cpu_count": os.cpu_count(),
        "samples": samples,
    }


if __name__ == "__main__":
    main()
