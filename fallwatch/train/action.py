"""Training the ST-GCN fall classifier on skeleton windows.

Sources:
- the COCO-17 "real fall" sequence set (`.npz`: keypoints, offsets, labels, files), one label per sequence;
- skeletons our own pipeline extracted from labelled videos (`scripts/extract_skeletons.py`), labelled per window
  by time: a window is a fall if its end lies within `positive_after_s` after the person reached the floor (the
  descent is inside it), not a fall if it ends before the onset or comes from a clip without a fall; windows of
  a person lying after a fall are left out (neither label is right for them).

Windows are built by the same `resample` + `normalise` the run-time buffers use. Augmentation: mirror with
left/right swap, scale, small rotation, speed jitter (timestamps stretched), temporal crop (random window end),
joint dropout, and degradation towards real footage (low frame rates, lost joints, keypoint jitter).
Validation is split by recording (base name of the sequence), never by random window.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fallwatch.action.buffers import WindowSpec, normalise, resample
from fallwatch.action.stgcn import STGCN, STGCNSpec, count_macs
from fallwatch.train.loop import restore, run_epoch, save_epoch
from fallwatch.types import COCO_FLIP_INDEX

FLIP = np.array(COCO_FLIP_INDEX)


@dataclass
class Sequence:
    times: np.ndarray  # (F,)
    keypoints: np.ndarray  # (F, 17, 3)
    label: int  # sequence label (kaggle) or -1 (per-window labels from fall times)
    group: str  # recording, for the split
    fall_onset: float | None = None  # seconds (extracted clips)
    fall_end: float | None = None


@dataclass
class TrainSettings:
    widths: tuple[int, ...] = (32, 32, 64, 64, 128)
    strides: tuple[int, ...] = (1, 1, 2, 1, 2)
    dropout: float = 0.1
    epochs: int = 8
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    windows_per_epoch: int = 8000
    kaggle_fps: float = 30.0  # not documented upstream; typical of phone video
    positive_after_s: float = 1.0
    val_fraction: float = 0.2
    extracted_share: float | None = None  # share of windows from our own pipeline's skeletons; None: by count
    drift_prob: float = 0.5  # share of windows given a steady drift (a person walking across the image)
    max_drift: float = 0.0  # torso lengths over the window (0: off; 1.5 was tried, docs/benchmarks.md)
    seed: int = 0


def _base_name(path: str) -> str:
    name = Path(path).name
    name = re.sub(r"_keypoints\.csv$", "", name)
    return re.sub(r"_(resized|anonymized)", "", name)


def _hash_fraction(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def load_kaggle(path: Path, fps: float) -> list[Sequence]:
    data = np.load(path)
    kps, offsets, labels, files = data["keypoints"], data["offsets"], data["labels"], data["files"]
    seqs = []
    for i, label in enumerate(labels):
        a, b = offsets[i], offsets[i + 1]
        if b - a < 10:
            continue
        seqs.append(Sequence(np.arange(b - a) / fps, kps[a:b].astype(np.float32), int(label),
                             "kaggle:" + _base_name(str(files[i]))))
    return seqs


def load_extracted(folder: Path, names: list[str]) -> list[Sequence]:
    """The tracks of extracted clips: in a fall clip only the person who falls (the track seen most during the
    fall), in other clips every track."""
    seqs = []
    for name in names:
        data = np.load(folder / f"{name}.npz")
        fps = float(data["fps"])
        start, end = int(data["fall_start"]), int(data["fall_end"])
        ids = data["id"]
        if len(ids) == 0:
            continue
        onset_t = start / fps if start >= 0 else None
        end_t = end / fps if end >= 0 else None
        tracks = np.unique(ids)
        if onset_t is not None:
            during = (data["frame"] >= start) & (data["frame"] <= max(end, start))
            counts = [(np.sum(during & (ids == t)), t) for t in tracks]
            tracks = [max(counts)[1]] if max(counts)[0] > 0 else []
        for t in tracks:
            rows = ids == t
            if rows.sum() < 10:
                continue
            seqs.append(Sequence(data["time"][rows].astype(np.float64), data["keypoints"][rows], -1,
                                 f"clip:{name}", onset_t, end_t))
    return seqs


def split(seqs: list[Sequence], fraction: float) -> tuple[list[Sequence], list[Sequence]]:
    """Validation = kaggle sequences of the two balanced families (C_*, S_*) whose base name hashes into
    `fraction`; everything else trains (extracted clips are evaluated on held-out videos instead)."""
    train, val = [], []
    for s in seqs:
        base = s.group.split(":", 1)[1]
        balanced = s.group.startswith("kaggle:") and base[:2] in ("C_", "S_")
        (val if balanced and _hash_fraction(base) < fraction else train).append(s)
    return train, val


def sample_window(seq: Sequence, spec: WindowSpec, rng: np.random.Generator, settings: TrainSettings,
                  augment: bool) -> tuple[np.ndarray, int] | None:
    times = seq.times * (rng.uniform(0.8, 1.25) if augment else 1.0)
    scale_t = times[-1] / seq.times[-1] if seq.times[-1] > 0 else 1.0
    t0, t1 = times[0] + spec.min_span_s, times[-1]
    if t1 < t0:
        return None
    if seq.label >= 0:  # kaggle: falls are near the end of their sequence
        lo = t0 if seq.label == 0 else max(t0, times[0] + 0.6 * (t1 - times[0]))
        end, label = rng.uniform(lo, t1), seq.label
    else:
        onset = None if seq.fall_onset is None else seq.fall_onset * scale_t
        fall_end = None if seq.fall_end is None else seq.fall_end * scale_t
        if onset is None:
            end, label = rng.uniform(t0, t1), 0
        elif rng.random() < 0.5 and fall_end is not None and fall_end <= t1:
            end, label = rng.uniform(fall_end, min(t1, fall_end + settings.positive_after_s * scale_t)), 1
        elif onset > t0:
            end, label = rng.uniform(t0, onset), 0
        else:
            return None
    keypoints = seq.keypoints
    if augment:
        times, keypoints = degrade(times, keypoints, rng)
    window = normalise(resample(times, keypoints, spec, end), spec.normalisation)
    if augment:
        window = augment_window(window, rng, settings)
    return window, label


def degrade(times: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator):
    """What real cameras and a real pose model do to clean sequences: a low frame rate (half the time, 6-30 fps),
    joints lost now and then (interpolated at run time), and keypoint jitter that grows as the person gets small
    (Gaussian, up to 8 % of the torso length)."""
    if rng.random() < 0.5:
        fps = rng.uniform(6, 30)
        keep = np.r_[True, np.diff(np.floor(times * fps)) > 0]
        times, keypoints = times[keep], keypoints[keep]
    keypoints = keypoints.copy()
    lost = rng.random(keypoints.shape[:2]) < rng.uniform(0, 0.15)
    keypoints[..., 2] = np.where(lost, 0.0, keypoints[..., 2])
    torso = np.nanmedian(np.linalg.norm(keypoints[:, [5, 6], :2].mean(1) - keypoints[:, [11, 12], :2].mean(1), axis=1))
    if np.isfinite(torso) and torso > 0:
        keypoints[..., :2] += rng.normal(0, rng.uniform(0, 0.08) * torso, keypoints[..., :2].shape)
    return times, keypoints


def augment_window(w: np.ndarray, rng: np.random.Generator, settings: TrainSettings) -> np.ndarray:
    """Mirror (L/R swap), rotation, scale, joint dropout, and a steady drift in a random direction: people walk
    towards and away from elevated cameras, which moves them down or up the image without any fall; the drift
    teaches the model that a translation alone is not a fall (pedestrian videos raised most false alarms)."""
    w = w.copy()
    vis = w[..., 2] > 0
    if rng.random() < 0.5:
        w = w[:, FLIP]
        w[..., 0] *= -1
        vis = w[..., 2] > 0
    angle = np.deg2rad(rng.uniform(-15, 15))
    c, s = np.cos(angle), np.sin(angle)
    xy = w[..., :2] @ np.array([[c, -s], [s, c]]).T * rng.uniform(0.85, 1.15)
    if rng.random() < settings.drift_prob:
        heading = rng.uniform(0, 2 * np.pi)
        ramp = np.linspace(-0.5, 0.5, len(w))[:, None, None]
        xy = xy + ramp * rng.uniform(0, settings.max_drift) * np.array([np.cos(heading), np.sin(heading)])
    drop = rng.random(w.shape[1]) < 0.05
    vis = vis & ~drop[None, :]
    w[..., :2] = np.where(vis[..., None], xy, 0.0)
    w[..., 2] = vis
    return w


def make_batch(seqs, spec, rng, settings, n, augment, balance=True):
    """Half the draws from kaggle falls and extracted clips (per-window labels), half from kaggle non-falls and
    extracted clips - every sequence in proportion to its count; or, with `extracted_share`, that share of the
    windows from the extracted clips and the rest half kaggle falls, half kaggle non-falls."""
    xs, ys = [], []
    labels = np.array([s.label for s in seqs])
    extracted = np.flatnonzero(labels < 0)
    if settings.extracted_share is None or not len(extracted):
        pools = (np.flatnonzero(labels != 0), np.flatnonzero(labels <= 0))
        share = 0.0
    else:
        pools = (np.flatnonzero(labels == 1), np.flatnonzero(labels == 0))
        share = settings.extracted_share
    while len(xs) < n:
        if rng.random() < share:
            pool = extracted
        elif balance and len(pools[0]) and len(pools[1]):
            pool = pools[0] if rng.random() < 0.5 else pools[1]
        else:
            pool = np.arange(len(seqs))
        seq = seqs[int(rng.choice(pool))]
        item = sample_window(seq, spec, rng, settings, augment)
        if item is not None:
            xs.append(item[0])
            ys.append(item[1])
    x = np.stack(xs).transpose(0, 3, 1, 2)[..., None]
    return torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.tensor(ys)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U), ties counted half."""
    from scipy.stats import rankdata

    pos, neg = labels == 1, labels == 0
    if not pos.any() or not neg.any():
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


def fixed_val_set(val: list[Sequence], spec: WindowSpec, settings: TrainSettings, per_seq: int = 2):
    rng = np.random.default_rng(settings.seed + 1)
    xs, ys = [], []
    for s in val:
        for _ in range(per_seq):
            item = sample_window(s, spec, rng, settings, augment=False)
            if item is not None:
                xs.append(item[0])
                ys.append(item[1])
    x = np.stack(xs).transpose(0, 3, 1, 2)[..., None]
    return torch.from_numpy(np.ascontiguousarray(x, np.float32)), np.array(ys)


@torch.inference_mode()
def predict(model: STGCN, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    return np.concatenate([torch.softmax(model(x[i:i + batch]), 1)[:, 1].numpy() for i in range(0, len(x), batch)])


def train(seqs: list[Sequence], spec: WindowSpec, settings: TrainSettings, out: Path, resume: Path | None = None,
          progress: bool = True) -> dict:
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    train_seqs, val_seqs = split(seqs, settings.val_fraction)
    val_x, val_y = fixed_val_set(val_seqs, spec, settings)
    model_spec = STGCNSpec(widths=tuple(settings.widths), strides=tuple(settings.strides), dropout=settings.dropout)
    model = STGCN(model_spec)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = settings.windows_per_epoch // settings.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.epochs * steps_per_epoch)
    start_epoch, history, best = restore(resume, model, opt, sched)
    if start_epoch:
        rng = np.random.default_rng(settings.seed + start_epoch)
    loss_fn = nn.CrossEntropyLoss()

    def step_loss() -> torch.Tensor:
        x, y = make_batch(train_seqs, spec, rng, settings, settings.batch, augment=True)
        return loss_fn(model(x), y)

    for epoch in range(start_epoch, settings.epochs):
        t0 = time.time()
        loss = run_epoch(model, opt, sched, steps_per_epoch, step_loss, f"epoch {epoch + 1}/{settings.epochs}",
                         progress)
        auc = roc_auc(predict(model, val_x), val_y)
        history.append({"epoch": epoch + 1, "loss": loss, "val_auc": auc, "s": time.time() - t0})
        print(json.dumps(history[-1]), flush=True)
        payload = {
            "spec": asdict(model_spec),
            "state_dict": model.state_dict(),
            "window": asdict(spec),
            "train": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
        }
        best = save_epoch(out, payload, "val_auc", auc, best, opt, sched, epoch + 1, history)
    return {
        "best_val_auc": best,
        "history": history,
        "train_sequences": len(train_seqs),
        "val_sequences": len(val_seqs),
        "val_windows": int(len(val_y)),
        "params": sum(p.numel() for p in model.parameters()),
        "macs_per_window": count_macs(model, spec.steps),
    }


def run_from_args(args) -> dict:
    """`fallwatch train action` / scripts/train_action.py."""
    from fallwatch.action.recognizer import window_spec
    from fallwatch.config import load_config

    cfg = load_config(args.config, args.overrides)
    spec = window_spec(cfg.action)
    settings = TrainSettings(epochs=args.epochs, windows_per_epoch=args.windows_per_epoch, seed=args.seed,
                             extracted_share=args.extracted_share, max_drift=args.max_drift)
    if args.widths:
        settings.widths = tuple(args.widths)
        settings.strides = tuple(args.strides) if args.strides else tuple(
            2 if i in (len(args.widths) // 2, len(args.widths) - 1) else 1 for i in range(len(args.widths)))
    seqs = []
    if args.kaggle:
        seqs += load_kaggle(args.kaggle, settings.kaggle_fps)
    for folder in args.extracted or []:
        manifest = json.loads((folder / "clips.json").read_text()) if (folder / "clips.json").exists() else None
        if args.clips:
            names = list(args.clips)
        elif manifest:
            names = [c["name"] for c in manifest["splits"]["train"]]
        else:
            names = [p.stem for p in sorted(folder.glob("*.npz"))]
        seqs += load_extracted(folder, names)
    if not seqs:
        from fallwatch.errors import UsageError

        raise UsageError("no training data: give --kaggle NPZ and/or --extracted FOLDER")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = train(seqs, spec, settings, args.out, args.resume, progress=not args.no_progress)
    report["sources"] = {"kaggle": str(args.kaggle) if args.kaggle else None,
                         "extracted": [str(f) for f in args.extracted] if args.extracted else None}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return report
