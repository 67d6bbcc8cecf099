"""The corridor: the only module where the stages meet.

frames -> detect -> track -> (pose -> action) -> sinks. Each stage is built from its own config section, exposes one
call and keeps its own state; this module times them, streams results to the sinks and writes the run summary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fallwatch import __version__
from fallwatch.action.recognizer import FallRecognizer, load_stgcn
from fallwatch.allocator import HeapTrimmer, set_mmap_threshold
from fallwatch.config import Config, ConfigError
from fallwatch.detect import YoloDetector
from fallwatch.device import select_device
from fallwatch.errors import FallwatchError
from fallwatch.io.alerts import AlertSink
from fallwatch.io.evidence import EvidenceSink
from fallwatch.io.rotation import Segmenter, remove_stale_segments
from fallwatch.io.sinks import EventSink, JsonlSink, MotSink, VideoSink, write_json_atomic
from fallwatch.io.sources import FrameSource, ReaderSettings, SourceInfo, open_source, redact
from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
from fallwatch.report import LiveReportSink, write_report
from fallwatch.runstats import Counts, StageTimer
from fallwatch.track import build_tracker
from fallwatch.types import Detections, Frame, FrameResult, Poses
from fallwatch.viz import annotate
from fallwatch.viz.shared import SharedAnnotator
from fallwatch.weights import ResolvedWeights, resolve

STAGES = ("detect", "track", "pose", "action", "write")  # as shown in the progress bar


class OutputError(FallwatchError, OSError):
    """An output folder or file that cannot be written; the message is one line."""


@dataclass
class RunResult:
    status: str  # complete | interrupted | failed
    frames: int
    outdir: Path
    outputs: dict[str, str]
    summary: dict[str, Any]


def runtime_threads(configured: int, overlap: bool) -> int:
    """Threads per inference runtime. With run.overlap two threads of the pipeline run inference at once (the
    detector, and the pose and action stages): each runtime gets half the cores, as two runtimes each spreading over
    all cores fight for them (on 2 cores: 7.9 frames/s against 7.4, docs/benchmarks.md). 0 keeps their defaults."""
    if configured > 0 or not overlap:
        return configured
    return max(1, (os.cpu_count() or 2) // 2)


def output_paths(outdir: Path, name: str, cfg: Config) -> dict[str, Path]:
    wanted = {
        "video": (cfg.output.video, f"{name}.mp4"),
        "jsonl": (cfg.output.jsonl, f"{name}.frames.jsonl"),
        "events": (cfg.output.events, f"{name}.events.json"),
        "summary": (cfg.output.summary, f"{name}.summary.json"),
        "mot": (cfg.output.mot and cfg.track.enabled, f"{name}.mot.txt"),
        "report": (cfg.output.report and cfg.output.jsonl, f"{name}.report.html"),
    }
    return {key: outdir / fname for key, (on, fname) in wanted.items() if on}


def next_run_dir(root: Path, stem: str = "run") -> Path:
    """ultralytics-style auto-increment: root/run, root/run2, root/run3, ..."""
    candidate, n = root / stem, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stem}{n}"
    return candidate


class Pipeline:
    """Build every configured stage once; `run()` streams a source through them into the sinks."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        set_mmap_threshold(cfg.run.mmap_threshold_kib)  # process-wide
        self.trim_heap = HeapTrimmer(cfg.run.heap_trim_s)  # keeps a days-long run's memory flat
        self.threads = runtime_threads(cfg.run.threads, cfg.run.overlap)
        if self.threads > 0:
            import torch

            torch.set_num_threads(self.threads)
        self.device = select_device(cfg.run.device)
        self.models: dict[str, ResolvedWeights] = {"detect": resolve(cfg.detect.model, cfg.run.allow_download)}
        self.detector = YoloDetector(cfg.detect, self.models["detect"], self.device, self.threads)
        if cfg.track.enabled and cfg.track.with_reid:
            raise ConfigError(
                "track.with_reid: the CLI has no appearance embedder yet; use BoT-SORT without it, or pass an "
                "embedder through the Python API (fallwatch.track.build_tracker(cfg, fps, embedder))"
            )
        self.tracker_factory = (lambda fps: build_tracker(cfg.track, fps)) if cfg.track.enabled else None
        self.pose = None
        if cfg.pose.enabled:
            self.models["pose"] = resolve(cfg.pose.model, cfg.run.allow_download)
            model = build_heatmap_model(cfg.pose, self.models["pose"].path, self.device, self.threads)
            small = None
            if cfg.pose.small_model:
                self.models["pose_small"] = resolve(cfg.pose.small_model, cfg.run.allow_download)
                small = build_heatmap_model(cfg.pose, self.models["pose_small"].path, self.device, self.threads)
            self.pose = PoseEstimator(cfg.pose, model, small)
        self.action_model = None
        if cfg.action.enabled:
            if not (cfg.track.enabled and cfg.pose.enabled):
                raise ConfigError("action.enabled needs track.enabled and pose.enabled (or set action.enabled=false)")
            self.models["action"] = resolve(cfg.action.model, cfg.run.allow_download)
            self.action_model, checkpoint = load_stgcn(self.models["action"].path, self.device)
            self.action_window = checkpoint.get("window")
            self.new_recognizer()  # checks the config against the model's training window now, not mid-run
        self.timer = StageTimer()

    def new_recognizer(self) -> FallRecognizer | None:
        """Per-input state of the action stage (windows, open events)."""
        if self.action_model is None:
            return None
        return FallRecognizer(self.cfg.action, self.action_model, self.device, self.action_window)

    def skips_detection(self, index: int) -> bool:
        """detect.every = k > 1: the detector sees every k-th frame; the tracker carries people between (opt-in)."""
        every = self.cfg.detect.every
        return every > 1 and self.tracker_factory is not None and index % every != 0

    def process(self, frame: Frame, tracker=None, recognizer=None, detections: Detections | None = None) -> FrameResult:
        """Run every stage on one frame (`detections`: this frame's detector output from an earlier run, so that
        offline ablations of the later stages skip the detector)."""
        coasting = tracker is not None and self.skips_detection(frame.index)
        if coasting:
            detections = Detections.empty()
        elif detections is None:
            with self.timer("detect"):
                detections = self.detector(frame.image)
        tracks = poses = None
        if tracker is not None:
            with self.timer("track"):
                tracks = tracker.coast() if coasting else tracker.update(detections, frame.image)
        if self.pose is not None:
            with self.timer("pose"):
                if tracks is not None:
                    poses = self.pose(frame.image, tracks, frame.time)
                else:
                    poses = Poses(self.pose.estimate(frame.image, detections.boxes))
        actions, events = None, ()
        if recognizer is not None:
            with self.timer("action"):
                actions, changed = recognizer.update(frame.index, frame.time, tracks, poses, frame.size)
                events = tuple(changed)
        return FrameResult(frame.index, frame.time, detections, tracks, poses, actions, events)

    def run(self, source: str, outdir: Path, max_frames: int | None = None, progress: bool | None = None) -> RunResult:
        """Process `source` into `outdir`. Ctrl-C / SIGTERM end the run cleanly with status `interrupted`."""
        cfg = self.cfg
        settings = ReaderSettings.from_config(cfg.run)
        max_frames = max_frames if max_frames is not None else cfg.run.max_frames
        with open_source(source, settings) as src:
            paths = self._prepare_outputs(outdir, src.info)
            tracker = self.tracker_factory(src.info.fps) if self.tracker_factory else None
            recognizer = self.new_recognizer()
            sinks = self._open_sinks(paths, src.info)
            segmenter = self._segmenter(outdir, paths, src.info)
            started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
            status, error, frames, counts = "complete", None, 0, Counts()
            self.trim_heap = HeapTrimmer(cfg.run.heap_trim_s)  # this run's trims, counted in its summary
            signals = _SignalGuard()
            signals.terminate_as_interrupt()
            bar = self._progress(src.info, max_frames, progress)
            try:
                frames = self._loop(src, tracker, recognizer, sinks, segmenter, max_frames, counts, bar)
            except KeyboardInterrupt:
                status = "interrupted"
            except Exception as exc:
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                signals.ignore()  # a second Ctrl-C must not leave the outputs half-written
                try:
                    if bar is not None:
                        bar.close()
                    frames = max(frames, counts.frames)
                    close_error = _close_all(sinks.values())
                    if close_error and status == "complete":
                        status, error = "failed", close_error
                    wall = time.perf_counter() - t0
                    summary = self._summary(src, paths, status, error, counts, started, wall, sinks.get("video"))
                    if segmenter is not None:
                        summary["segments"] = segmenter.segments
                    if "summary" in paths:
                        write_json_atomic(paths["summary"], summary)
                    if "report" in paths:
                        _report(outdir, src.info.name)
                finally:
                    signals.restore()
        return RunResult(status, frames, outdir, {k: str(v) for k, v in paths.items()}, summary)

    def _loop(self, src: FrameSource, tracker, recognizer, sinks: dict, segmenter: Segmenter | None,
              max_frames: int | None, counts, bar) -> int:
        if src.info.width and src.info.height:
            self.detector.prepare(src.info.width, src.info.height)  # compile now, not inside the first frame
        last = None
        detected = self._detected(iter(src), max_frames)
        try:
            for frame, detections in detected:
                last = self._step(frame, detections, tracker, recognizer, sinks, segmenter, src, counts, bar)
        finally:
            # now, while the source is open: its worker may be reading a frame (closed later, that read never ends)
            detected.close()
        if recognizer is not None and last is not None:  # the input ended: so did every open fall event
            closed = recognizer.finish(last.index, last.time)
            counts.add_events(closed)
            for key in ("alerts", "events"):
                if key in sinks:
                    sinks[key].record(closed)
        return counts.frames

    def _step(self, frame: Frame, detections, tracker, recognizer, sinks: dict, segmenter: Segmenter | None,
              src: FrameSource, counts: Counts, bar) -> Frame:
        """One frame through the later stages into the sinks; returns it."""
        result = self.process(frame, tracker, recognizer, detections)
        with self.timer("write"):
            if segmenter is not None:
                segmenter.before_write(frame.index, frame.time, sinks)
            for sink in sinks.values():
                sink.write(frame, result)
        counts.add(result)
        self.trim_heap()
        if src.info.is_live:
            counts.latency.add(time.monotonic() - frame.captured)
        if bar is not None:
            bar.update(1)
            if counts.frames % 10 == 1:  # the rate is tqdm's own; the stages are the run's means so far
                ms = self.timer.mean_ms()
                bar.set_postfix_str(" ".join(f"{k} {ms[k]:.0f}" for k in STAGES if k in ms) + " ms", refresh=False)
        return frame

    def _detected(self, frames: Iterator[Frame], max_frames: int | None) -> Iterator[tuple[Frame, Detections]]:
        """Frames with their detections, in order. With run.overlap, a second thread reads and detects frame t+1
        while the caller takes frame t through the later stages (the detector keeps no state, so the results are
        those of the plain loop); nothing waits on a frame that has not arrived, so a live source gains no latency."""
        read = 0

        def read_and_detect() -> tuple[Frame, Detections] | None:
            nonlocal read
            if max_frames is not None and read >= max_frames:
                return None
            with self.timer("read"):
                frame = next(frames, None)
            if frame is None:
                return None
            read += 1
            if self.skips_detection(frame.index):
                return frame, None
            with self.timer("detect"):
                return frame, self.detector(frame.image)

        if not self.cfg.run.overlap:
            while (item := read_and_detect()) is not None:
                yield item
            return
        with ThreadPoolExecutor(1, thread_name_prefix="fallwatch-detect") as pool:
            ahead = pool.submit(read_and_detect)
            while (item := ahead.result()) is not None:
                ahead = pool.submit(read_and_detect)
                yield item

    def _prepare_outputs(self, outdir: Path, info: SourceInfo) -> dict[str, Path]:
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from None
        if not _writable(outdir):
            raise OutputError(f"output folder {outdir} is not writable")
        paths = output_paths(outdir, info.name, self.cfg)
        if info.kind == "file" and any(p.resolve() == Path(info.spec).resolve() for p in paths.values()):
            raise OutputError(f"output would overwrite the input {info.spec}: choose another -o folder")
        remove_stale_segments(outdir, info.name)  # this run rewrites the plain files; later segments are its own
        return paths

    def _segmenter(self, outdir: Path, paths: dict[str, Path], info: SourceInfo) -> Segmenter | None:
        out = self.cfg.output
        if out.rotate == "never" or (out.rotate == "live" and not info.is_live):
            return None
        if out.rotate_s is None and out.rotate_mb is None:
            return None
        max_bytes = None if out.rotate_mb is None else int(out.rotate_mb * 1e6)
        return Segmenter(info.name, lambda stem: output_paths(outdir, stem, self.cfg), out.rotate_s, max_bytes,
                         paths)

    def _open_sinks(self, paths: dict[str, Path], info: SourceInfo) -> dict[str, Any]:
        out = self.cfg.output
        sinks: dict[str, Any] = {}
        try:
            if "jsonl" in paths:
                sinks["jsonl"] = JsonlSink(paths["jsonl"])
            if "mot" in paths:
                sinks["mot"] = MotSink(paths["mot"])
            if "report" in paths and info.is_live:
                sinks["report"] = LiveReportSink(paths["report"].parent, info.name)
            # evidence and alerts close before the events file's last write, which records what they did
            draw = SharedAnnotator(functools.partial(annotate, line_width=out.line_width, draw_scores=out.draw_scores))
            if out.clips and self.action_model is not None:
                sinks["evidence"] = EvidenceSink(next(iter(paths.values())).parent, info.name, info.fps,
                                                 out.clip_pre_s, out.clip_post_s, out.video_codec, draw)
            alerts = self.cfg.alerts
            if alerts.webhooks or alerts.commands or alerts.mqtt:
                sinks["alerts"] = AlertSink(alerts, info.spec, sinks.get("evidence"))
            if "events" in paths:
                sinks["events"] = EventSink(paths["events"], Path(info.spec).name, info.fps,
                                            _event_extras(sinks.get("evidence"), sinks.get("alerts")))
            if "video" in paths:
                sinks["video"] = VideoSink(paths["video"], info.fps, (info.width, info.height), out.video_codec, draw,
                                           self.cfg.run.queue_size)
        except OSError as exc:
            _close_all(sinks.values())
            raise OutputError(f"cannot write outputs in {next(iter(paths.values())).parent}: {exc}") from None
        return sinks

    def _progress(self, info: SourceInfo, max_frames: int | None, progress: bool | None):
        show = self.cfg.run.progress if progress is None else progress
        if not show or info.is_live:
            return None
        from tqdm import tqdm

        total = info.frame_count
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        return tqdm(total=total, unit="frame", desc=info.name, dynamic_ncols=True, file=sys.stderr, leave=False)

    def _summary(self, src, paths, status, error, counts, started, wall, video) -> dict[str, Any]:
        info = src.info
        timing = self.timer.mean_ms()
        return {
            "fallwatch": __version__,
            "status": status,
            "error": error,
            "input": {
                "path": info.spec,
                "kind": info.kind,
                "frames": counts.frames,
                "frames_declared": info.frame_count,
                "frames_dropped": src.dropped,
                "reconnects": src.stats.reconnects,
                "stream_lost": src.stats.lost,
                "fps": round(info.fps, 3),
                "width": info.width,
                "height": info.height,
            },
            "outputs": {k: str(v) for k, v in paths.items()},
            "video_frames": video.frames_written if video is not None else None,
            "device": self.device,
            "models": {
                stage: {"name": w.name, "file": str(w.path), "sha256": w.sha256, "found_in": w.source}
                for stage, w in self.models.items()
            },
            "timing_ms": timing,
            "throughput_fps": round(counts.frames / wall, 3) if wall > 0 else None,
            "latency_ms": counts.latency.summary(),  # live sources: frame decoded -> results written
            "heap_trims": {"count": self.trim_heap.trims, "ms_total": round(1000 * self.trim_heap.total_s, 1)},
            "wall_s": round(wall, 3),
            "counts": counts.as_dict(),
            "config": _shown_config(self.cfg),
            "versions": _versions(),
            "started_at": started.isoformat(timespec="seconds"),
            "ended_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }


def _event_extras(evidence, alerts):
    """event_id -> what events.json adds to an event: its snapshot and clip, what became of its alerts."""
    if evidence is None and alerts is None:
        return None

    def extra(event_id: int) -> dict[str, Any]:
        out = evidence.evidence(event_id) if evidence is not None else {}
        return {**out, "alerts": alerts.status(event_id)} if alerts is not None else out

    return extra


def _shown_config(cfg: Config) -> dict[str, Any]:
    """The effective config as the summary records it: receiver URLs with their secrets masked."""
    tree = cfg.to_dict()
    for key in ("webhooks", "mqtt"):
        tree["alerts"][key] = [redact(url) for url in tree["alerts"][key]]
    return tree


def _report(outdir: Path, name: str) -> None:
    """The run report, last, from the files just written; a failure is a warning, never the run's status."""
    try:
        write_report(outdir, name)
    except Exception as exc:
        print(f"fallwatch: warning: no report: {type(exc).__name__}: {exc}", file=sys.stderr)


def _close_all(sinks) -> str | None:
    error = None
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:  # keep closing the others: every finished frame must reach disk
            error = error or f"{type(exc).__name__}: {exc}"
    return error


def _writable(folder: Path) -> bool:
    probe = folder / ".fallwatch-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


class _SignalGuard:
    """SIGTERM behaves like Ctrl-C during a run; both are ignored while outputs are finalised (main thread only)."""

    def __init__(self) -> None:
        self._active = threading.current_thread() is threading.main_thread()
        self._saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if self._active else {}

    def terminate_as_interrupt(self) -> None:
        if self._active:
            signal.signal(signal.SIGTERM, _raise_interrupt)

    def ignore(self) -> None:
        if self._active:
            for s in self._saved:
                signal.signal(s, signal.SIG_IGN)

    def restore(self) -> None:
        for s, handler in self._saved.items():
            signal.signal(s, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _versions() -> dict[str, str]:
    import cv2
    import torch

    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}
    versions["opencv"] = cv2.__version__
    with contextlib.suppress(Exception):
        import ultralytics

        versions["ultralytics"] = ultralytics.__version__
    return versions
