"""Benchmarks whose figures go into docs/benchmarks.md.

    python scripts/bench.py pipeline VIDEO [--imgsz 640] [--device cpu] [--repeats 2]
        fallwatch with only the detector stage (JSONL on, video off) against plain ultralytics predict on the same
        video, model, image size and device, alternating A/B runs in fresh subprocesses; per-stage ms and the ratio.
    python scripts/bench.py e2e VIDEO [--repeats 3] [--variant NAME=KEY=VALUE,KEY=VALUE ...]
        the whole default pipeline (detect + track + pose + fall, default outputs) against plain ultralytics predict
        with the same yolov8n.pt in torch at the same input size, on the same frames, alternating A/B in fresh
        subprocesses; frames per second of each, the ratio, per-stage ms; each --variant is one more pipeline
        setting measured in the same rounds (the first run of each fills the detector cache and is not timed).
    python scripts/bench.py tracker [--tracks 30] [--frames 600]
        tracker update cost on one CPU core (no GMC), and GMC's cost per 1280x720 frame.
    python scripts/bench.py action [--frames 300]
        action stage per frame at 1, 4 and 16 tracks with the shipped model, CPU.
    python scripts/bench.py pose [--repeats 5]
        pose stage (crop + forward + DARK + inverse map) per person at 1, 4 and 16 people per frame, CPU; the
        shipped student against MoveNet Thunder at 4 people in the same run.
    python scripts/bench.py report RUN_DIR --name NAME [--hours 1]
        the HTML report of a one-hour run (a real run's frames and events tiled): its size and build time.
    python scripts/bench.py batch [--clips 20] [--max-frames 50] [--workers 2]
        wall time of the same short clips: sequential `fallwatch run`s, `fallwatch batch`, `fallwatch batch --ray`.
    python scripts/bench.py students [--rounds 3 --repeats 10 --threads 2 --hrnet-runtime auto --candidates ...]
        candidate student HRNets (random weights): parameters, MACs and ms per person at 1 and 4 people, CPU,
        against MoveNet Thunder and Lightning in the same rounds.
    python scripts/bench.py train-step [--batch 32 --rounds 3 --repeats 3 --threads 2]
        training views per second of a student, eager against torch.compile (`fallwatch train pose --compile`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _ultralytics_predict(video: str, imgsz: int, device: str, conf: float, iou: float) -> dict:
    from ultralytics import YOLO

    from fallwatch.weights import resolve

    model = YOLO(str(resolve("yolov8n", allow_download=False).path), task="detect")
    t0 = time.perf_counter()
    n = 0
    for _ in model.predict(video, stream=True, classes=[0], conf=conf, iou=iou, imgsz=imgsz, device=device,
                           verbose=False):
        n += 1
    wall = time.perf_counter() - t0
    return {"frames": n, "wall_s": wall}


def _fallwatch_run(video: str, imgsz: int, device: str, extra: list[str]) -> dict:
    from fallwatch.config import load_config
    from fallwatch.pipeline import Pipeline

    overrides = [f"detect.imgsz={imgsz}", f"run.device={device}", "run.progress=false", *extra]
    pipeline = Pipeline(load_config(overrides=overrides))
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = pipeline.run(video, Path(out))
        wall = time.perf_counter() - t0
    return {"frames": result.frames, "wall_s": wall, "timing_ms": result.summary["timing_ms"],
            "persons": result.summary["counts"]["persons"]}


def _child(kind: str, args) -> dict:
    return _run_child(kind, args.video, args.imgsz, args.device, args.set or [])


def _run_child(kind: str, video: str, imgsz: int, device: str, overrides: list[str]) -> dict:
    """Run one measurement in a fresh interpreter so neither side inherits the other's warm caches."""
    cmd = [sys.executable, __file__, "_child", kind, video, "--imgsz", str(imgsz), "--device", device]
    for item in overrides:
        cmd += ["--set", item]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_pipeline(args) -> dict:
    from fallwatch.config import load_config

    det = load_config().detect
    runs = {"fallwatch": [], "ultralytics": []}
    for _ in range(args.repeats):
        for kind in ("ultralytics", "fallwatch"):
            runs[kind].append(_child(kind, args))
    fw = statistics.median(r["wall_s"] for r in runs["fallwatch"])
    ul = statistics.median(r["wall_s"] for r in runs["ultralytics"])
    stages = runs["fallwatch"][0]["timing_ms"]
    stage = {k: statistics.median(r["timing_ms"][k] for r in runs["fallwatch"]) for k in stages}
    report = {
        "video": args.video,
        "frames": runs["fallwatch"][0]["frames"],
        "imgsz": args.imgsz,
        "device": args.device,
        "conf": det.conf,
        "fallwatch_wall_s": [round(r["wall_s"], 2) for r in runs["fallwatch"]],
        "ultralytics_wall_s": [round(r["wall_s"], 2) for r in runs["ultralytics"]],
        "fallwatch_stage_ms": stage,
        "ratio_fallwatch_over_ultralytics": round(fw / ul, 3),
    }
    print(json.dumps(report, indent=2))
    return report


def bench_e2e(args) -> dict:
    variants = {"default": []}
    for spec in args.variant or []:
        name, _, sets = spec.partition("=")
        variants[name] = [item for item in sets.split(",") if item]
    for overrides in variants.values():  # warm-up: converts and caches the detector graph; not timed
        _run_child("e2e", args.video, args.imgsz, args.device, [*overrides, "run.max_frames=2"])
    runs: dict[str, list[dict]] = {"ultralytics predict (torch, detection only)": [], **{k: [] for k in variants}}
    for _ in range(args.repeats):
        runs["ultralytics predict (torch, detection only)"].append(_child("ultralytics", args))
        for name, overrides in variants.items():
            runs[name].append(_run_child("e2e", args.video, args.imgsz, args.device, overrides))
    frames = runs["default"][0]["frames"]
    report = {"video": args.video, "frames": frames, "imgsz": args.imgsz, "device": args.device,
              "cpu_count": os.cpu_count(), "repeats": args.repeats, "variants": variants, "results": {}}
    reference = statistics.median(r["wall_s"] for r in runs["ultralytics predict (torch, detection only)"])
    for name, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        entry = {"wall_s": [round(r["wall_s"], 2) for r in results], "fps": round(frames / wall, 2),
                 "ratio_to_ultralytics": round(wall / reference, 3)}
        if "timing_ms" in results[0]:
            entry["stage_ms"] = {k: round(statistics.median(r["timing_ms"][k] for r in results), 1)
                                 for k in results[0]["timing_ms"]}
            entry["persons_per_frame"] = round(results[0]["persons"] / frames, 2)
        report["results"][name] = entry
    print(json.dumps(report, indent=2))
    return report


def bench_tracker(args) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2

    from fallwatch.config import load_config
    from fallwatch.track import build_tracker
    from fallwatch.track.gmc import SparseFlowGMC
    from fallwatch.types import Detections

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    n = args.tracks
    start = rng.uniform([50, 100], [1200, 600], (n, 2))
    velocity = rng.uniform(-3, 3, (n, 2))
    size = rng.uniform([30, 80], [70, 200], (n, 2))
    results = {}
    for kind in ("bytetrack", "botsort"):
        cfg = load_config(overrides=[f"track.tracker={kind}", "track.gmc_method=none"]).track
        tracker = build_tracker(cfg, 30.0)
        times, counts = [], []
        for t in range(args.frames):
            centre = start + velocity * t + rng.normal(0, 1.5, (n, 2))
            boxes = np.c_[centre - size / 2, centre + size / 2]
            scores = rng.uniform(0.3, 0.95, n)
            scores[rng.random(n) < 0.1] = 0.15  # some boxes fall to the second round
            dets = Detections(boxes, scores)
            t0 = time.perf_counter()
            tracks = tracker.update(dets)
            times.append(time.perf_counter() - t0)
            counts.append(len(tracks))
        steady = times[50:]
        results[kind] = {
            "tracks_mean": float(np.mean(counts[50:])),
            "ms_per_frame_median": 1000 * float(np.median(steady)),
            "ms_per_frame_mean": 1000 * float(np.mean(steady)),
            "ms_per_frame_p95": 1000 * float(np.percentile(steady, 95)),
        }
    video = Path(args.gmc_video)
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < 120:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(image, (1280, 720)))
    cap.release()
    gmc = SparseFlowGMC(load_config().track.gmc_downscale)
    gmc_times = []
    for image in frames:
        t0 = time.perf_counter()
        gmc.apply(image)
        gmc_times.append(time.perf_counter() - t0)
    results["gmc_720p_ms_median"] = 1000 * float(np.median(gmc_times[5:]))
    results["cpu_cores_used"] = 1
    print(json.dumps(results, indent=2))
    return results


def bench_gmc_noise(args) -> dict:
    """What GMC estimates, frame to frame, on each video: the largest displacement its affine gives a frame corner
    (every estimate kept). On a static camera this is the fit's noise, which `track.gmc_min_motion_px` discards."""
    import cv2

    from fallwatch.config import load_config
    from fallwatch.track.gmc import SparseFlowGMC, largest_shift

    results = {}
    for video in args.videos:
        gmc, shifts = SparseFlowGMC(load_config().track.gmc_downscale, 0.0), []
        cap = cv2.VideoCapture(str(video))
        ok, image = cap.read()
        while ok:
            shifts.append(largest_shift(gmc.apply(image), image.shape[1], image.shape[0]))
            ok, image = cap.read()
        cap.release()
        q = np.percentile(shifts[1:], [50, 90, 99, 100])
        results[Path(video).parent.name] = {"frames": len(shifts), "corner_shift_px_median": float(q[0]),
                                            "p90": float(q[1]), "p99": float(q[2]), "max": float(q[3])}
    print(json.dumps(results, indent=2))
    return results


def bench_pose(args) -> dict:
    """Pose stage cost per person at 1, 4 and 16 people per frame (one batched pass per frame), CPU."""
    import cv2

    from fallwatch.config import load_config
    from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
    from fallwatch.weights import resolve

    cap = cv2.VideoCapture(args.video)
    ok, image = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read {args.video}")
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    results = {}
    for label, overrides, path in (
        ("hrnet-fallwatch-s (ours)", [], resolve("hrnet-fallwatch-s", allow_download=False).path),
        ("movenet-thunder", ["pose.model=movenet-thunder"], resolve("movenet-thunder", allow_download=False).path),
        ("movenet-lightning", ["pose.model=movenet-lightning"],
         resolve("movenet-lightning", allow_download=False).path),
        ("hrnet-w32 256x192 (random weights, speed only)", ["pose.model=hrnet-w32-dark"], None),
    ):
        cfg = load_config(overrides=overrides).pose
        model = build_heatmap_model(cfg, path, "cpu") if path else None
        if model is None:
            from fallwatch.pose.hrnet import HRNetHeatmapModel, HRNetSpec

            model = HRNetHeatmapModel(None, HRNetSpec(width=cfg.hrnet_width), tuple(cfg.input_size), "cpu",
                                      cfg.hrnet_runtime)
        estimator = PoseEstimator(cfg, model)
        row = {}
        for n in (1, 4, 16):
            centre = rng.uniform([60, 100], [w - 60, h - 100], (n, 2))
            boxes = np.c_[centre - [30, 80], centre + [30, 80]]
            estimator.estimate(image, boxes)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                estimator.estimate(image, boxes)
                times.append(time.perf_counter() - t0)
            row[f"ms_per_person_at_{n}"] = round(1000 * statistics.median(times) / n, 2)
        row["ratio_16_over_1"] = round(row["ms_per_person_at_16"] / row["ms_per_person_at_1"], 3)
        results[label] = row
    student, teacher = results["hrnet-fallwatch-s (ours)"], results["movenet-thunder"]
    results["student_over_thunder_at_4"] = round(student["ms_per_person_at_4"] / teacher["ms_per_person_at_4"], 3)
    print(json.dumps(results, indent=2))
    return results


def _student(width: int, modules: tuple, blocks: int, size: tuple, stem: int = 32, layer1: int = 1):
    return {"width": width, "stem_width": stem, "layer1_blocks": layer1, "modules": modules, "blocks": blocks}, size


STUDENT_CANDIDATES = {  # name (width, modules of stages 2-4, blocks per branch, input) -> (HRNetSpec fields, (w, h))
    "A: W16 (1,1) b2 144x192 (hrnet-fallwatch-s)": _student(16, (1, 1), 2, (144, 192)),
    "W16 (1,2) b2 144x192": _student(16, (1, 2), 2, (144, 192)),
    "W32 (1,1) b2 144x192": _student(32, (1, 1), 2, (144, 192)),
    "W24 (1,1) b2 144x192": _student(24, (1, 1), 2, (144, 192)),
    "W16 (1,1) b2 192x256": _student(16, (1, 1), 2, (192, 256)),
    "W18 (1,1,1) b1 192x256 (W18-small-like)": _student(18, (1, 1, 1), 1, (192, 256)),
    "W18 (1,1,1) b2 192x256": _student(18, (1, 1, 1), 2, (192, 256)),
    "W24 (1,1) b2 192x256": _student(24, (1, 1), 2, (192, 256)),
    "W18-small-v2 192x256 (stem 64, (1,3,2))": _student(18, (1, 3, 2), 2, (192, 256), stem=64, layer1=2),
}


def bench_students(args) -> dict:
    """Cost per person of candidate students against MoveNet Thunder in the same run, through the pipeline's own
    path (crops -> model -> DARK -> frame), batched at 1 and 4 people; rounds alternate between the models so that
    a slow spell of the machine hits them all."""
    import cv2
    import torch

    from fallwatch.config import load_config
    from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
    from fallwatch.pose.hrnet import HRNet, HRNetHeatmapModel, HRNetSpec, count_macs
    from fallwatch.weights import resolve

    torch.set_num_threads(args.threads)
    cap = cv2.VideoCapture(args.video)
    ok, image = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read {args.video}")
    cfg = load_config(overrides=["pose.model=movenet-thunder", "pose.smoothing=false"]).pose
    models = {name: build_heatmap_model(cfg, resolve(name).path, "cpu", args.threads)
              for name in ("movenet-thunder", "movenet-lightning")}
    info = {}
    for name, (fields, size) in STUDENT_CANDIDATES.items():
        if args.candidates and name not in args.candidates:
            continue
        model = HRNetHeatmapModel(None, HRNetSpec(**fields), size, runtime=args.hrnet_runtime, threads=args.threads)
        models[name] = model
        info[name] = {"input": list(size), "params": sum(p.numel() for p in model.net.parameters()),
                      "macs": count_macs(HRNet(HRNetSpec(**fields)), size)}
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    boxes = {n: np.c_[c - [30, 80], c + [30, 80]] for n in (1, 4)
             for c in [rng.uniform([60, 100], [w - 60, h - 100], (n, 2))]}
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for name, model in models.items():
            estimator = PoseEstimator(cfg, model)
            for n, b in boxes.items():
                estimator.estimate(image, b)  # warm-up
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    estimator.estimate(image, b)
                    times.setdefault((name, n), []).append((time.perf_counter() - t0) / n)
    results = {"threads": args.threads, "hrnet_runtime": args.hrnet_runtime, "video": args.video, "candidates": {}}
    thunder = {n: statistics.median(times[("movenet-thunder", n)]) for n in boxes}
    for name in models:
        row = dict(info.get(name, {}))
        for n in boxes:
            ms = 1000 * statistics.median(times[(name, n)])
            row[f"ms_per_person_at_{n}"] = round(ms, 2)
            row[f"over_thunder_at_{n}"] = round(ms / (1000 * thunder[n]), 3)
        results["candidates"][name] = row
    print(json.dumps(results, indent=2))
    return results


def bench_train_step(args) -> dict:
    """Training views per second of a student, eager against torch.compile (`fallwatch train pose --compile`), each in
    the default NCHW and in the channels-last layout (`--channels-last`), in one process, rounds alternating: forward,
    the distillation loss, backward and the AdamW step on a batch at the student's input (random pixels and targets:
    the cost of a step does not depend on their values)."""
    import torch

    from fallwatch.pose.hrnet import HRNet, HRNetSpec
    from fallwatch.train.pose import heatmap_loss

    torch.set_num_threads(args.threads)
    fields, (w, h) = STUDENT_CANDIDATES[args.student]
    target = torch.rand(args.batch, 17, h // 4, w // 4)
    weight = torch.ones(args.batch, 17)
    steps, compile_s = {}, {}
    for layout_name, layout in (("", torch.contiguous_format), (", channels last", torch.channels_last)):
        torch.manual_seed(0)
        model = HRNet(HRNetSpec(**fields)).to(memory_format=layout)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        x = torch.randn(args.batch, 3, h, w).contiguous(memory_format=layout)
        for mode, forward in (("eager", model), ("compiled", torch.compile(model))):

            def step(forward=forward, x=x, opt=opt) -> None:
                loss = heatmap_loss(forward(x), target, weight, 2.0, 0.25)
                opt.zero_grad()
                loss.backward()
                opt.step()

            t0 = time.perf_counter()
            step()  # compiles on its first call
            compile_s[mode + layout_name] = round(time.perf_counter() - t0, 1)
            steps[mode + layout_name] = step
    rates: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            step()  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                step()
            rates[name].append(args.batch * args.repeats / (time.perf_counter() - t0))
    results = {"student": args.student, "threads": args.threads, "batch": args.batch,
               "first_step_s": compile_s,
               "views_per_s": {k: [round(r, 2) for r in v] for k, v in rates.items()},
               "median_views_per_s": {k: round(statistics.median(v), 2) for k, v in rates.items()}}
    median = results["median_views_per_s"]
    results["over_eager"] = {k: round(v / median["eager"], 3) for k, v in median.items()}
    print(json.dumps(results, indent=2))
    return results


def bench_action(args) -> dict:
    """Action stage cost per frame (buffers, windows every `stride` frames, one batched forward) at 1, 4, 16 tracks,
    with the shipped model, CPU; and the share it adds to a frame of the full pipeline at 4 tracks."""
    from fallwatch.action.recognizer import FallRecognizer, load_stgcn
    from fallwatch.config import load_config
    from fallwatch.types import Poses, Tracks
    from fallwatch.weights import resolve

    cfg = load_config().action
    model, _ = load_stgcn(resolve(cfg.model, allow_download=False).path)
    rng = np.random.default_rng(0)
    base = rng.uniform(50, 400, (17, 2))
    results = {}
    for n in (1, 4, 16):
        rec = FallRecognizer(cfg, model)
        times = []
        for f in range(args.frames):
            t = f / 25.0
            kps = np.concatenate([base[None] + rng.normal(0, 2, (n, 17, 2)), np.full((n, 17, 1), 0.9)], -1)
            tracks = Tracks(np.arange(1, n + 1), np.tile([0, 0, 100, 300], (n, 1)), np.full(n, 0.9))
            t0 = time.perf_counter()
            rec.update(f, t, tracks, Poses(kps.astype(np.float32)))
            times.append(time.perf_counter() - t0)
        steady = times[50:]  # after the windows are ready
        results[f"ms_per_frame_at_{n}_tracks"] = round(1000 * float(np.mean(steady)), 3)
    print(json.dumps(results, indent=2))
    return results


def bench_report(args) -> dict:
    """The report of a long run: a real run's frames.jsonl and events tiled to `hours` (times and ids shifted per
    tile, so every tile is new people), then the report built from them; its size and build time."""
    import shutil

    from fallwatch.report import write_report

    src, name = Path(args.run), args.name
    lines = (src / f"{name}.frames.jsonl").read_text().splitlines()
    events = json.loads((src / f"{name}.events.json").read_text())
    span = json.loads(lines[-1])["time"] + 1 / events["fps"]
    tiles = int(np.ceil(args.hours * 3600 / span))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        shutil.copy(src / f"{name}.summary.json", out)
        shutil.copy(src / f"{name}.mp4", out)
        tiled_events = []
        with open(out / f"{name}.frames.jsonl", "w") as fh:
            for k in range(tiles):
                for line in lines:
                    d = json.loads(line)
                    d["frame"] += k * len(lines)
                    d["time"] = round(d["time"] + k * span, 3)
                    for p in d["persons"]:
                        p["id"] += 1000 * k
                        if "event_id" in p:
                            p["event_id"] += 1000 * k
                    fh.write(json.dumps(d, separators=(",", ":")) + "\n")
                for e in events["events"]:
                    shifted = dict(e, event_id=e["event_id"] + 1000 * k, id=e["id"] + 1000 * k,
                                   track_ids=[t + 1000 * k for t in e["track_ids"]])
                    for key in ("start_frame", "end_frame", "alarm_frame", "long_lie_frame"):
                        shifted[key] = None if e[key] is None else e[key] + k * len(lines)
                    for key in ("start_time", "end_time", "alarm_time", "down_since", "long_lie_time"):
                        shifted[key] = None if e[key] is None else round(e[key] + k * span, 3)
                    tiled_events.append(shifted)
        (out / f"{name}.events.json").write_text(json.dumps({**events, "events": tiled_events}))
        t0 = time.perf_counter()
        path = write_report(out, name)
        took = time.perf_counter() - t0
        result = {"hours": args.hours, "frames": tiles * len(lines), "events": len(tiled_events),
                  "frames_jsonl_mb": round((out / f"{name}.frames.jsonl").stat().st_size / 1e6, 1),
                  "report_mb": round(path.stat().st_size / 1e6, 2), "build_s": round(took, 2)}
    print(json.dumps(result, indent=2))
    return result


def bench_batch(args) -> dict:
    """Wall time of the same short clips run one `fallwatch run` after another, by `fallwatch batch` on the local
    pool, and by `fallwatch batch --ray` on a local Ray instance (each in fresh processes, outputs in a temp dir)."""
    import csv as csv_module

    folder = Path(args.data) / "videos" / "falls"
    with open(folder / "labels.csv") as fh:
        lengths = {row["file"]: int(row["frames"]) for row in csv_module.DictReader(fh)}
    clips = sorted(sorted(lengths, key=lambda f: (lengths[f], f))[: args.clips])  # the shortest, by a fixed rule
    videos = [str(folder / f) for f in clips]
    common = ["--no-progress", "--set", f"run.max_frames={args.max_frames}"]
    fw = [sys.executable, "-m", "fallwatch"]
    results = {"clips": clips, "max_frames": args.max_frames, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for i, video in enumerate(videos):
            subprocess.run([*fw, "run", video, "-o", f"{tmp}/seq/{i}", *common], check=True, capture_output=True)
        results["sequential_s"] = round(time.perf_counter() - t0, 1)
        for mode, extra in (("pool", []), ("ray", ["--ray"])):
            t0 = time.perf_counter()
            subprocess.run([*fw, "batch", *videos, "-o", f"{tmp}/{mode}", "--workers", str(args.workers), *extra,
                            *common], check=True, capture_output=True)
            results[f"{mode}_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(results, indent=2))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="fallwatch benchmarks")
    sub = parser.add_subparsers(dest="what", required=True)
    for name, repeats in (("pipeline", 2), ("e2e", 3)):
        p = sub.add_parser(name)
        p.add_argument("video")
        p.add_argument("--imgsz", type=int, default=640)
        p.add_argument("--device", default="cpu")
        p.add_argument("--repeats", type=int, default=repeats)
        p.add_argument("--set", action="append", help="extra fallwatch config overrides (pipeline)")
        p.add_argument("--out", type=Path)
        if name == "e2e":
            p.add_argument("--variant", action="append", help="NAME=KEY=VALUE,KEY=VALUE: another pipeline setting")
    t = sub.add_parser("tracker")
    t.add_argument("--tracks", type=int, default=30)
    t.add_argument("--frames", type=int, default=600)
    t.add_argument("--gmc-video", default=str(HERE.parent.parent / "shared/data/mot/PETS09-S2L1/vtest.avi"))
    t.add_argument("--out", type=Path)
    g = sub.add_parser("gmc-noise")
    mot = HERE.parent.parent / "shared/data/mot"
    g.add_argument("videos", nargs="*", default=[str(mot / "TUD-Campus/TUD-Campus.mp4"),
                                                 str(mot / "TUD-Stadtmitte/TUD-Stadtmitte.mp4"),
                                                 str(mot / "PETS09-S2L1/vtest.avi")])
    g.add_argument("--out", type=Path)
    q = sub.add_parser("pose")
    q.add_argument("--video", default=str(HERE.parent.parent / "shared/data/mot/PETS09-S2L1/vtest.avi"))
    q.add_argument("--repeats", type=int, default=5)
    q.add_argument("--out", type=Path)
    st = sub.add_parser("students")
    st.add_argument("--video", default=str(HERE.parent.parent / "shared/data/videos/gmdcsa24/videos/S3_Fall_19.mp4"))
    st.add_argument("--repeats", type=int, default=10)
    st.add_argument("--rounds", type=int, default=3)
    st.add_argument("--threads", type=int, default=2)
    st.add_argument("--hrnet-runtime", default="auto", choices=("auto", "onnxruntime", "torch"),
                    help="how the students run (pose.hrnet_runtime; the published sweep: torch)")
    st.add_argument("--candidates", nargs="*", choices=list(STUDENT_CANDIDATES), help="only these (default: all)")
    st.add_argument("--out", type=Path)
    ts = sub.add_parser("train-step")
    ts.add_argument("--student", default="W18 (1,1,1) b1 192x256 (W18-small-like)", choices=list(STUDENT_CANDIDATES))
    ts.add_argument("--batch", type=int, default=32)
    ts.add_argument("--repeats", type=int, default=3)
    ts.add_argument("--rounds", type=int, default=3)
    ts.add_argument("--threads", type=int, default=2)
    ts.add_argument("--out", type=Path)
    a = sub.add_parser("action")
    a.add_argument("--frames", type=int, default=300)
    a.add_argument("--out", type=Path)
    r = sub.add_parser("report")
    r.add_argument("run", help="an output folder of a real `fallwatch run`")
    r.add_argument("--name", required=True, help="the run's name (its input's stem)")
    r.add_argument("--hours", type=float, default=1.0)
    r.add_argument("--out", type=Path)
    b = sub.add_parser("batch")
    b.add_argument("--data", default=str(HERE.parent.parent / "shared/data"))
    b.add_argument("--clips", type=int, default=20)
    b.add_argument("--max-frames", type=int, default=50)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--out", type=Path)
    c = sub.add_parser("_child")
    c.add_argument("kind")
    c.add_argument("video")
    c.add_argument("--imgsz", type=int)
    c.add_argument("--device")
    c.add_argument("--set", action="append")
    args = parser.parse_args()
    if args.what == "_child":
        from fallwatch.config import load_config

        det = load_config().detect
        if args.kind == "ultralytics":
            out = _ultralytics_predict(args.video, args.imgsz, args.device, det.conf, det.iou)
        elif args.kind == "e2e":
            out = _fallwatch_run(args.video, args.imgsz, args.device, args.set or [])
        else:
            extra = ["track.enabled=false", "pose.enabled=false", "output.video=false", *(args.set or [])]
            out = _fallwatch_run(args.video, args.imgsz, args.device, extra)
        print(json.dumps(out))
        return
    benches = {"pipeline": bench_pipeline, "e2e": bench_e2e, "tracker": bench_tracker, "pose": bench_pose,
               "action": bench_action, "students": bench_students, "gmc-noise": bench_gmc_noise,
               "report": bench_report, "batch": bench_batch, "train-step": bench_train_step}
    report = benches[args.what](args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
