"""Command line: parse, build the config, call. No logic of its own.

Every user-fixable problem ends in one line on stderr and a non-zero exit, never a traceback
(FALLWATCH_DEBUG=1 shows one for bug reports).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from fallwatch import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_PROJECT = Path("runs") / "fallwatch"


def _part(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N), 0 <= K < N: which share of the crop cache one builder writes."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 0/2, got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"K/N needs 0 <= K < N, got {text!r}")
    return k, n


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
    run.add_argument("--alert-webhook", action="append", default=[], metavar="URL",
                     help="POST each fall event's new / update / end message to URL (repeatable)")
    run.add_argument("--alert-cmd", action="append", default=[], metavar="COMMAND",
                     help="run COMMAND per message with the JSON on stdin (repeatable)")
    run.add_argument("--alert-mqtt", action="append", default=[], metavar="mqtt://HOST:PORT/TOPIC",
                     help="publish each message over MQTT (repeatable; needs paho-mqtt)")

    batch = sub.add_parser("batch", help="many videos: one run each into OUTDIR/<name>/, on a worker pool or Ray")
    batch.add_argument("inputs", nargs="+", help="video files, folders of videos, globs, URLs, or .txt lists of them")
    batch.add_argument("-o", "--output", type=Path, required=True, help="output folder (one subfolder per video)")
    batch.add_argument("--workers", type=int, help="parallel videos (default: one per CPU core, at most one per video)")
    batch.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="run as Ray tasks: on a local Ray instance, or on a cluster (auto | ray://host:port)")
    batch.add_argument("--force", action="store_true", help="redo videos whose earlier run is complete")
    batch.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    batch.add_argument("--config", type=Path, help="YAML file overlaid on configs/default.yaml")
    batch.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    batch.add_argument("--no-video", action="store_true", help="do not write the annotated videos")
    batch.add_argument("--no-progress", action="store_true", help="no progress bars")

    report = sub.add_parser("report", help="(re)build the HTML report of every run in an output folder")
    report.add_argument("outdir", type=Path, help="a folder written by `fallwatch run`")

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    action = train.add_parser("action", help="the ST-GCN fall classifier, from skeleton sequences")
    action.add_argument("--kaggle", type=Path, help="COCO-17 sequence set (.npz with keypoints/offsets/labels)")
    action.add_argument("--extracted", type=Path, nargs="+", help="folder(s) written by scripts/extract_skeletons.py "
                        "(e.g. the clips and their low-resolution copies)")
    action.add_argument("--clips", nargs="*", help="extracted clips to train on (default: the manifest's train split)")
    action.add_argument("--out", type=Path, default=Path("models/stgcn_fall.pt"))
    action.add_argument("--epochs", type=int, default=8)
    action.add_argument("--windows-per-epoch", type=int, default=8000)
    action.add_argument("--widths", type=int, nargs="*", help="block widths (default 32 32 64 64 128)")
    action.add_argument("--strides", type=int, nargs="*", help="block temporal strides")
    action.add_argument("--seed", type=int, default=0)
    action.add_argument("--extracted-share", type=float,
                        help="share of training windows drawn from --extracted (default: by sequence count)")
    action.add_argument("--max-drift", type=float, default=0.0,
                        help="steady drift augmentation, torso lengths per window (default 0: off)")
    action.add_argument("--resume", type=Path, help="continue from a .last.pt checkpoint")
    action.add_argument("--config", type=Path)
    action.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    action.add_argument("--no-progress", action="store_true")

    pose = train.add_parser("pose", help="an HRNet distilled from the MoveNet teacher")
    pose.add_argument("--data", type=Path, default=Path("../shared/data"), help="labelled videos and LSPET photos")
    pose.add_argument("--cache", type=Path, default=Path("runs/pose_cache"),
                      help="folder of teacher-labelled crop shards (missing shards are built first, then reused)")
    pose.add_argument("--detections", type=Path, default=Path("runs/detections"),
                      help="the evaluation scripts' detection cache, used where it holds a clip")
    pose.add_argument("--cache-only", action="store_true", help="build the crop cache, report it, do not train")
    pose.add_argument("--part", type=_part, metavar="K/N",
                      help="build only every N-th shard from the K-th (one builder per core); 0/2 and 1/2 together "
                           "write the whole cache")
    pose.add_argument("--cache-only-existing", action="store_true",
                      help="train on the shards already there; build nothing (no ../shared/data needed)")
    pose.add_argument("--out", type=Path, default=Path("runs/hrnet_student.pt"))
    pose.add_argument("--teacher", default="movenet-thunder", help="registry name or path of the teacher")
    pose.add_argument("--epochs", type=int, default=40)
    pose.add_argument("--samples-per-epoch", type=int, default=4000)
    pose.add_argument("--batch", type=int, default=32)
    pose.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:N")
    pose.add_argument("--workers", type=int, default=0, help="processes making training views (0: in the trainer)")
    pose.add_argument("--lr", type=float, default=5e-3, help="peak learning rate (one-cycle)")
    pose.add_argument("--bce-weight", type=float, default=0.25, help="confidence term against the localisation term")
    pose.add_argument("--soft-weight", type=float, default=0.5,
                      help="share of the teacher's heatmap in a teacher joint's target (0: Gaussians only)")
    pose.add_argument("--compile", action="store_true",
                      help="train through torch.compile (needs a C++ compiler; ~1.5x faster on a CPU)")
    pose.add_argument("--channels-last", action="store_true",
                      help="NHWC layout for the student and its inputs (speed only: 1.3x eager training on a CPU, "
                           "nothing on top of --compile)")
    pose.add_argument("--photo-weight", type=float, default=1.0,
                      help="photos (LSPET) are drawn this many times as often as a video crop of the same kind")
    pose.add_argument("--spec", help='student HRNet as JSON, e.g. \'{"width": 16, "modules": [1, 1]}\'')
    pose.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="student input (default 144 192)")
    pose.add_argument("--min-det-score", type=float, default=0.4, help="detector boxes below this are not used")
    pose.add_argument("--min-box-px", type=float, default=20.0, help="boxes shorter than this are not used")
    pose.add_argument("--max-people", type=int, default=8, help="at most this many boxes per frame")
    pose.add_argument("--val-every", type=int, default=5, help="every N-th LSPET photo is held out")
    pose.add_argument("--seed", type=int, default=0)
    pose.add_argument("--resume", type=Path, help="continue from a .last.pt checkpoint")
    pose.add_argument("--config", type=Path)
    pose.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    pose.add_argument("--no-progress", action="store_true")

    evaluate = sub.add_parser("eval", help="evaluate").add_subparsers(dest="what", required=True)
    falls = evaluate.add_parser("falls", help="fall events of the full pipeline against labelled clips")
    falls.add_argument("videos", nargs="*", type=Path, help="clips to run (default: every clip in --labels)")
    falls.add_argument("--labels", type=Path, required=True,
                       help="CSV: file,fall_start_frame,fall_end_frame[,roi,group] (see docs/formats.md)")
    falls.add_argument("--config", type=Path)
    falls.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    falls.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    falls.add_argument("--out", type=Path, help="write the metrics as JSON here")

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
        if args.command == "eval":
            return _eval_falls(args)
        if args.command == "batch":
            return _batch(args)
        if args.command == "report":
            from fallwatch.report import report_names, write_report

            for name in report_names(args.outdir):
                print(f"fallwatch: report -> {write_report(args.outdir, name)}")
            return EXIT_OK
        if args.command == "train" and args.what == "pose":
            from fallwatch.train.pose import run_from_args as train_pose

            report = train_pose(args)
            if args.cache_only:
                print(json.dumps(report["cache"], indent=2))
                return EXIT_OK
            print(f"fallwatch: trained {args.out}: held-out PCK against the teacher "
                  f"{report['heldout']['vs_teacher']['all']['pck']:.3f}")
            return EXIT_OK
        if args.command == "train":
            from fallwatch.train.action import run_from_args

            report = run_from_args(args)
            print(f"fallwatch: trained {args.out}: best validation AUC {report['best_val_auc']:.4f}")
            return EXIT_OK
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
    for key, values in (("webhooks", args.alert_webhook), ("commands", args.alert_cmd), ("mqtt", args.alert_mqtt)):
        if values:
            overrides.append(f"alerts.{key}={json.dumps(values)}")
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


def _batch(args: argparse.Namespace) -> int:
    from fallwatch.batch import run_batch

    overrides = [*args.overrides] + ([f"run.device={args.device}"] if args.device else [])
    overrides += ["output.video=false"] if args.no_video else []
    totals, rows = run_batch(args.inputs, args.output, args.config, overrides, args.workers, args.ray, args.force,
                             not args.no_progress)
    for r in rows:
        if r["status"] in ("failed", "interrupted"):
            print(f"fallwatch: {r['status']}: {r['source']}: {r['error']}", file=sys.stderr)
    print(f"fallwatch: batch: {totals['complete']} complete, {totals['skipped']} skipped, {totals['failed']} failed, "
          f"{totals['interrupted']} interrupted; {totals['frames']} frames in {totals['wall_s']:.1f} s "
          f"({totals['mode']}) -> {args.output / 'batch.csv'}")
    if totals["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_ERROR if totals["failed"] else EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from fallwatch.config import load_config
    from fallwatch.weights import WeightsError, registry, resolve

    cfg = load_config(args.config)
    in_use = {cfg.detect.model: "detect", cfg.pose.model: "pose", cfg.action.model: "action"}
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


def _eval_falls(args: argparse.Namespace) -> int:
    import json

    from fallwatch.config import load_config
    from fallwatch.eval.clips import read_labels_csv
    from fallwatch.eval.falls import run_clip, score
    from fallwatch.io.sources import SourceError
    from fallwatch.pipeline import Pipeline

    overrides = [*args.overrides, "run.progress=false"] + ([f"run.device={args.device}"] if args.device else [])
    cfg = load_config(args.config, overrides)
    if not args.labels.is_file():
        raise SourceError(f"labels file not found: {args.labels}")
    clips = read_labels_csv(args.labels)
    if args.videos:
        wanted = {p.resolve() for p in args.videos}
        clips = [c for c in clips if c.path.resolve() in wanted]
        if not clips:
            raise SourceError("none of the given videos is in the labels file")
    pipeline = Pipeline(cfg)
    results = []
    for clip in clips:
        results.append(run_clip(pipeline, clip))
        r = results[-1]
        print(f"{clip.name}: {r.frames} frames, alarms at frames {r.alarms}", flush=True)
    report = score(results)
    print(json.dumps({k: v for k, v in report.items() if k != "clips"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_OK
