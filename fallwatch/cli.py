"""Command line: parse, build the config, call. No logic of its own.

Every user-fixable problem ends in one line on stderr and a non-zero exit, never a traceback
(FALLWATCH_DEBUG=1 shows one for bug reports).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fallwatch import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_PROJECT = Path("runs") / "fallwatch"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fallwatch", description="Per-person fall detection in video.")
    parser.add_argument("--version", action="version", version=f"fallwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="process a video file, image folder, webcam index or stream URL")
    run.add_argument("source", help="video file, folder of images, webcam index (0) or rtsp/http URL")
    run.add_argument("-o", "--output", type=Path, help=f"output folder (default: {DEFAULT_PROJECT}/runN)")
    run.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides run.device)")
    run.add_argument("--config", type=Path, help="YAML file overlaid on configs/default.yaml")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override one config value, e.g. --set detect.imgsz=320 (repeatable)")
    run.add_argument("--max-frames", type=int, help="stop after N frames")
    run.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    run.add_argument("--mot", action="store_true", help="also write MOTChallenge tracks (<name>.mot.txt)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    models = sub.add_parser("models", help="list registered models and where each is found")
    models.add_argument("--config", type=Path, help="YAML file overlaid on configs/default.yaml")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="fallwatch: %(levelname)s: %(message)s", level=logging.WARNING)
    os.environ.setdefault("YOLO_VERBOSE", "False")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "models":
            return _models(args)
    except KeyboardInterrupt:
        print("fallwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("FALLWATCH_DEBUG"):
            raise
        from fallwatch.errors import FallwatchError

        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, FallwatchError):
            message = f"unexpected {type(exc).__name__}: {message} (FALLWATCH_DEBUG=1 shows the traceback)"
        print(f"fallwatch: error: {message}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_ERROR)
    return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from fallwatch.config import load_config

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"run.device={args.device}")
    if args.no_video:
        overrides.append("output.video=false")
    if args.mot:
        overrides.append("output.mot=true")
    if args.no_progress:
        overrides.append("run.progress=false")
    if args.max_frames is not None and args.max_frames < 1:
        from fallwatch.config import ConfigError

        raise ConfigError("--max-frames must be at least 1")
    cfg = load_config(args.config, overrides)

    from fallwatch.io.sources import ReaderSettings, open_source
    from fallwatch.pipeline import Pipeline, next_run_dir

    # Check the input before loading any model, so a typo fails in milliseconds.
    open_source(args.source, ReaderSettings.from_config(cfg.run)).close()
    outdir = args.output if args.output is not None else next_run_dir(DEFAULT_PROJECT)
    pipeline = Pipeline(cfg)
    result = pipeline.run(args.source, outdir, max_frames=args.max_frames)
    fps = result.summary.get("throughput_fps") or 0.0
    written = ", ".join(Path(p).name for p in result.outputs.values())
    print(f"fallwatch: {result.status}: {result.frames} frames at {fps:.1f} fps -> {outdir}: {written}")
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_OK if result.status == "complete" else EXIT_ERROR


def _models(args: argparse.Namespace) -> int:
    from fallwatch.config import load_config
    from fallwatch.weights import WeightsError, registry, resolve

    cfg = load_config(args.config)
    in_use = {cfg.detect.model: "detect"}
    for name, entry in registry().items():
        try:
            found = resolve(name, allow_download=False)
            where = f"found: {found.path} ({found.source})"
        except WeightsError:
            where = "missing" + (f" (downloadable: {entry.url})" if entry.url else " (no public download)")
        used = f" [used by {in_use[name]}]" if name in in_use else ""
        print(f"{name:22s} {entry.task:7s} {entry.file:36s} {where}{used}")
        print(f"{'':22s} licence: {entry.licence}")
    return EXIT_OK
