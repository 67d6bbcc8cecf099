"""`fallwatch batch`: many recordings, one `Pipeline` run each, written exactly as `fallwatch run` would write them
into `OUTDIR/<name>/`, on a pool of local worker processes or as Ray tasks.

Why a pool rather than a shell loop: the models are loaded once per worker, not once per video; each worker's
torch and ONNX Runtime threads are set so that workers x threads = cores (a few single-video pipelines in
parallel use two cores better than one pipeline's intra-op threads); a broken file fails alone; a rerun skips the
videos whose summary says `complete`. Ray (`--ray`) runs the same function as remote tasks with declared CPU (and
GPU) needs, on a local instance or a cluster; workers there load the bundled models from their own installation.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fallwatch.errors import FallwatchError
from fallwatch.io.sources import redact

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".ts", ".flv"}
LIST_SUFFIXES = {".txt", ".list", ".lst"}
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
FIELDS = ("name", "source", "status", "frames", "duration_s", "people", "events", "event_times", "throughput_fps",
          "wall_s", "error")


class BatchError(FallwatchError):
    """Batch input or setup that cannot work; the message is one line."""


@dataclass(frozen=True)
class Job:
    source: str
    name: str
    outdir: str


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files, folders (their videos, recursively, sorted), globs, URLs, and text files listing any of these (one
    per line, `#` comments, paths relative to the list), in order, without repeats. Missing paths are kept: they
    fail alone, with their error in the table."""
    out: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if _URL.match(item):
            found = [item]
        elif path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            lines = [line.strip() for line in path.read_text().splitlines()]
            entries = [line for line in lines if line and not line.startswith("#")]
            found = expand_inputs(e if _URL.match(e) or Path(e).is_absolute() else str(path.parent / e)
                                  for e in entries)
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(os.path.expanduser(item), recursive=True))
        else:
            found = [item]
        out.extend(f for f in found if f not in out)
    return out


def plan(sources: list[str], outdir: Path) -> list[Job]:
    """One job per source; its folder is named after the source's stem (made unique with _2, _3, ...)."""
    jobs, used = [], set()
    for source in sources:
        shown = re.sub(r"^[^/@]*@", "", source.split("://", 1)[1]) if _URL.match(source) else source
        stem = re.sub(r"[^\w.-]+", "_", Path(source.rstrip("/")).stem if not _URL.match(source) else
                      shown.split("?")[0]).strip("_") or "input"
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}_{n}"
        used.add(name)
        jobs.append(Job(source, name, str(outdir / name)))
    return jobs


def finished(job: Job) -> dict | None:
    """The summary of an earlier complete run of this job, if there is one."""
    for path in Path(job.outdir).glob("*.summary.json"):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if summary.get("status") == "complete" and summary.get("input", {}).get("path") == redact(job.source):
            return summary
    return None


# --- what runs in a worker -------------------------------------------------------------------------------------

_PIPELINES: dict[tuple, Any] = {}


def run_job(job: Job, config: str | None, overrides: tuple[str, ...]) -> dict:
    """One `Pipeline.run` in this worker (the pipeline, and so the models, built once per worker and config)."""
    from fallwatch.config import load_config
    from fallwatch.pipeline import Pipeline

    t0 = time.perf_counter()
    if _STOP is not None and _STOP.is_set():
        return row(job, None, "not started", 0.0, "interrupted")
    try:
        key = (config, overrides)
        if key not in _PIPELINES:
            _PIPELINES[key] = Pipeline(load_config(config, list(overrides)))
        result = _PIPELINES[key].run(job.source, Path(job.outdir), progress=False)
        return row(job, result.summary, None, time.perf_counter() - t0)
    except KeyboardInterrupt:
        return row(job, None, "interrupted before it started", time.perf_counter() - t0, "interrupted")
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, FallwatchError):
            message = f"{type(exc).__name__}: {message}"
        return row(job, None, message, time.perf_counter() - t0, "failed")


_STOP = None  # set in pool workers: the parent's "stop" event


def _init_worker(threads: int, stop) -> None:
    """Pool workers ignore Ctrl-C and SIGTERM between runs: the parent handles Ctrl-C and sends SIGTERM, which
    `Pipeline.run` turns into a clean `interrupted` end while a video is running; thread pools are sized before
    torch is imported."""
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def row(job: Job, summary: dict | None, error: str | None, wall: float, status: str | None = None) -> dict:
    """One line of batch.csv / batch.json, from the run's own summary and events."""
    out = {"name": job.name, "source": redact(job.source), "status": status or "failed", "frames": 0,
           "duration_s": None, "people": None, "events": None, "event_times": [], "throughput_fps": None,
           "wall_s": round(wall, 2), "error": error}
    if summary is not None:
        info, counts = summary["input"], summary["counts"]
        events_path = summary.get("outputs", {}).get("events")
        events = []
        if events_path and Path(events_path).is_file():
            events = json.loads(Path(events_path).read_text())["events"]
        out.update(status=summary["status"], frames=info["frames"], people=counts["tracks"], events=len(events),
                   duration_s=round(info["frames"] / info["fps"], 2) if info.get("fps") else None,
                   event_times=[[e["alarm_time"], e["end_time"]] for e in events],
                   throughput_fps=summary.get("throughput_fps"), error=summary.get("error") or error)
    return out


# --- drivers ---------------------------------------------------------------------------------------------------

def run_local(jobs: list[Job], config: str | None, overrides: tuple[str, ...], workers: int,
              on_done: Callable[[dict], None]) -> list[dict]:
    """The jobs on `workers` processes; Ctrl-C or SIGTERM stops them (running videos end `interrupted`, the rest
    are not started) and raises `BatchInterrupted` with every row."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    overrides = (*overrides, f"run.threads={threads}")
    context = get_context("spawn")
    stop = context.Event()
    rows: dict[str, dict] = {}
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads, stop))
    futures: dict[Future, Job] = {executor.submit(run_job, job, config, overrides): job for job in jobs}
    pending = set(futures)
    try:
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    rows[futures[future].name] = future.result()
                    on_done(rows[futures[future].name])
        except KeyboardInterrupt:
            stop.set()  # jobs not yet started return `interrupted` at once
            for future in pending:
                future.cancel()
            for process in list(getattr(executor, "_processes", {}).values()):  # the pool's worker processes
                if process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)  # a run in progress ends cleanly; idle workers ignore it
            for future in pending:
                job = futures[future]
                try:
                    rows[job.name] = future.result(timeout=300) if not future.cancelled() else row(
                        job, None, "not started", 0.0, "interrupted")
                except Exception as exc:
                    rows[job.name] = row(job, None, f"interrupted ({type(exc).__name__})", 0.0, "interrupted")
            raise BatchInterrupted([rows[j.name] for j in jobs]) from None
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return [rows[j.name] for j in jobs]


def run_ray(jobs: list[Job], config: str | None, overrides: tuple[str, ...], address: str | None, workers: int,
            device: str, on_done: Callable[[dict], None]) -> list[dict]:
    """The same jobs as Ray tasks. `address`: None starts a local instance for this run (`workers` CPUs);
    `auto` or `ray://host:port` joins a cluster. Each task declares its CPUs (and a GPU share with cuda)."""
    ray = _ray()
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # Ray starts its workers at niceness 15: beside anything else on the machine they would get almost no CPU
        # (measured here: 9x slower next to two other jobs). The instance started for this run uses normal priority.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", workers)) // workers)
        gpus = 1.0 / workers if device.startswith("cuda") else 0
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_job)
        overrides = (*overrides, f"run.threads={cpus}")
        refs = {task.remote(job, config, overrides): job for job in jobs}
        rows: dict[str, dict] = {}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                result = ray.get(done[0])
                rows[result["name"]] = result
                on_done(result)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # KeyboardInterrupt in the task: its run ends `interrupted`
            for ref in pending:
                job = refs[ref]
                try:
                    rows[job.name] = ray.get(ref, timeout=120)
                except Exception:
                    rows[job.name] = row(job, None, "interrupted before it finished", 0.0, "interrupted")
            raise BatchInterrupted([rows[j.name] for j in jobs]) from None
        return [rows[j.name] for j in jobs]
    finally:
        ray.shutdown()


def _ray():
    try:
        import ray
    except ImportError:
        raise BatchError('--ray needs Ray: pip install "fallwatch[cluster]" (or pip install "ray[default]")') from None
    return ray


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch; carries every row, finished or not."""

    def __init__(self, rows: list[dict]):
        super().__init__("interrupted")
        self.rows = rows


def write_tables(outdir: Path, rows: list[dict], wall: float, mode: str) -> dict:
    """OUTDIR/batch.csv (one row per video) and batch.json (the rows and the totals)."""
    totals = {"videos": len(rows), "wall_s": round(wall, 2), "mode": mode}
    for status in ("complete", "skipped", "failed", "interrupted"):
        totals[status] = sum(r["status"] == status for r in rows)
    totals["frames"] = sum(r["frames"] or 0 for r in rows if r["status"] != "skipped")  # processed in this run
    totals["events"] = sum(r["events"] or 0 for r in rows)
    totals["throughput_fps"] = round(totals["frames"] / wall, 2) if wall > 0 else None
    with open(outdir / "batch.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "event_times": json.dumps(r["event_times"])})
    document = {"totals": totals, "videos": rows}
    tmp = outdir / "batch.json.tmp"
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, outdir / "batch.json")
    return totals


def run_batch(inputs: list[str], outdir: Path, config: Path | None, overrides: list[str], workers: int | None,
              ray_address: str | None, force: bool, progress: bool) -> tuple[dict, list[dict]]:
    """Expand the inputs, skip what is complete (unless `force`), run the rest locally or on Ray (`ray_address`
    not None; "" for a local instance), write batch.csv / batch.json; returns (totals, rows in input order)."""
    from fallwatch.config import ConfigError, load_config

    overrides = [*overrides, "run.progress=false"]
    cfg = load_config(config, overrides)  # a bad key or value fails here, once, not in every worker
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be at least 1")
    if ray_address is not None:
        _ray()  # before anything starts: one clear line if it is not installed
    sources = expand_inputs(inputs)
    if not sources:
        raise BatchError(f"no videos found in: {' '.join(inputs)}")
    outdir.mkdir(parents=True, exist_ok=True)
    jobs = plan(sources, outdir)
    rows: dict[str, dict] = {}
    todo = []
    for job in jobs:
        earlier = None if force else finished(job)
        if earlier is not None:
            rows[job.name] = {**row(job, earlier, None, 0.0), "status": "skipped"}
        else:
            todo.append(job)
    workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    bars = _progress_bars(todo) if progress and todo else []

    def on_done(result: dict) -> None:
        if bars:
            bars[0].update(1)
            bars[1].update(result["frames"] or 0)

    t0 = time.perf_counter()
    config_arg = str(config) if config else None
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop is a Ctrl-C
    mode = f"ray {ray_address or 'local'}" if ray_address is not None else f"local pool of {workers}"
    try:
        if ray_address is not None:
            done = run_ray(todo, config_arg, tuple(overrides), ray_address or None, workers, cfg.run.device, on_done)
        else:
            done = run_local(todo, config_arg, tuple(overrides), workers, on_done)
    except BatchInterrupted as stop:
        done = stop.rows
    finally:
        for bar in bars:
            bar.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    rows.update({r["name"]: r for r in done})
    ordered = [rows[j.name] for j in jobs]
    return write_tables(outdir, ordered, time.perf_counter() - t0, mode), ordered


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _progress_bars(jobs: list[Job]) -> list:
    """Two bars on stderr: videos, and frames (the files' declared counts)."""
    import sys

    import cv2
    from tqdm import tqdm

    frames = 0
    for job in jobs:
        cap = cv2.VideoCapture(job.source)
        frames += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        cap.release()
    return [tqdm(total=len(jobs), unit="video", desc="videos", position=0, file=sys.stderr),
            tqdm(total=frames or None, unit="frame", desc="frames", position=1, file=sys.stderr)]
