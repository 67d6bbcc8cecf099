"""Where a long run's memory goes: `fallwatch run` in this process, with glibc's heap statistics sampled beside it.

    python scripts/heap_probe.py --minutes 8 --out docs/figures/heap_default.json
    python scripts/heap_probe.py --minutes 8 --set run.heap_trim_s=0 --out docs/figures/heap_no_trim.json
    python scripts/heap_probe.py --minutes 12 --rtsp --out docs/figures/heap_live.json

The input is a real fall clip repeated into one file, processed at full speed with outputs rotating every 2
minutes, or (`--rtsp`) streamed by GStreamer's RTSP server as scripts/soak.py does, for a live run. Every
`--interval` seconds: resident memory, the bytes malloc has handed out and not taken back ("allocated"), the free
bytes it keeps inside its arenas ("free in arenas"), the arenas' size, the separately mapped blocks, and the frames
written. Growth is reported per processed frame after `--warmup` seconds: resident memory that grows while
"allocated" stays flat and "free in arenas" grows is fragmentation, not a leak; resident memory that grows while
all of malloc's figures stay flat is held outside malloc.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import DEFAULT_VIDEO, LineCounter, free_port, looped_video, start_server  # noqa: E402


class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def sample(libc, counter: LineCounter, t0: float) -> dict:
    info = libc.mallinfo2()
    status = Path("/proc/self/status").read_text().splitlines()
    rss = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))
    mib = 1 / 2**20
    return {"t_s": round(time.monotonic() - t0, 1), "frames": counter.update(), "rss_mb": round(rss, 1),
            "allocated_mb": round(info.uordblks * mib, 1), "free_in_arenas_mb": round(info.fordblks * mib, 1),
            "arenas_mb": round(info.arena * mib, 1), "mapped_mb": round(info.hblkhd * mib, 1)}


def growth(samples: list[dict], warmup: float) -> dict:
    warm = [s for s in samples if s["t_s"] >= warmup]
    if len(warm) < 2:
        return {}
    first, last = warm[0], warm[-1]
    frames = max(last["frames"] - first["frames"], 1)
    return {"frames": frames, **{f"{k}_kb_per_frame": round(1024 * (last[k] - first[k]) / frames, 2)
                                 for k in ("rss_mb", "allocated_mb", "free_in_arenas_mb", "arenas_mb", "mapped_mb")},
            "rss_growth_pct": round(100 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--minutes", type=float, default=8.0, help="length of the repeated clip (at its own rate)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before growth is measured")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--rtsp", action="store_true", help="serve the repeated clip over RTSP (a live run, as the "
                        "soak) instead of reading the file; the run then ends after --minutes")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = MallInfo2
    work = tempfile.TemporaryDirectory(prefix="fallwatch-heap-")
    video = looped_video(args.video, args.minutes, Path(work.name))
    outdir = Path(work.name) / "out"
    counter, samples, t0, done = LineCounter(outdir), [], time.monotonic(), threading.Event()

    def sampler() -> None:
        while not done.wait(args.interval):
            samples.append(sample(libc, counter, t0))

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    from fallwatch.cli import main as fallwatch

    argv = ["run", str(video), "-o", str(outdir), "--no-progress", "--set", "output.rotate=always",
            "--set", "output.rotate_s=120"]
    for item in args.overrides:
        argv += ["--set", item]
    server = None
    if args.rtsp:  # a live source: newest-frame reader, live report, latency; stopped by SIGINT after --minutes
        import os
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job inherits SIGINT ignored
        port = free_port()
        server = start_server(video, port)
        argv[1] = f"rtsp://127.0.0.1:{port}/live"
        threading.Timer(args.minutes * 60 - 20, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        code = fallwatch(argv)
    finally:
        if server is not None:
            server.kill()
    done.set()
    thread.join()
    report = {"command": "python scripts/heap_probe.py " + " ".join(sys.argv[1:]), "exit": code,
              "growth_after_warmup": growth(samples, args.warmup), "samples": samples}
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    work.cleanup()


if __name__ == "__main__":
    main()
