"""Distilling an HRNet from the MoveNet teacher (`fallwatch train pose`, scripts/distill_pose.py).

1. The crop cache (`pose_cache.build`): every video of ../shared/data and the LSPET photos, people lying, falling
   and small weighted up, labelled by the teacher with flip-test averaging, its heatmaps kept (soft targets).
   Held out whole (split "val"): the fall evaluation's test clips and every `val_every`-th LSPET photo.
2. `train`: heatmap learning (`heatmap_loss`) on random views of the cached crops against a blend of Gaussians at
   the keypoints and the teacher's own heatmaps, crops drawn with weights (lying and falling people, small
   people), AdamW with a one-cycle schedule, a fixed seed, a resumable `.last.pt` after every epoch and the best one
   (validation PCK against the teacher) as the output.
3. `evaluate`: the student through `PoseEstimator` (exactly what `fallwatch run` does) on the held-out crops: PCK@0.1
   of the box size against the teacher, and against human labels where they exist, per pose group.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from fallwatch.pose.dark import decode_heatmaps
from fallwatch.pose.hrnet import RGB_MEAN, RGB_STD, HRNet, HRNetSpec, count_macs
from fallwatch.train.loop import restore, run_epoch, save_epoch
from fallwatch.train.pose_data import AugmentSettings, CropSet, crop_keypoints, make_sample, sample_split

LYING_GROUPS = ("fallen", "falling", "horizontal", "inverted")  # people on the floor or on their way there


@dataclass
class PoseTrainSettings:
    spec: dict = field(default_factory=lambda: {"width": 16, "stem_width": 32, "layer1_blocks": 1,
                                                "modules": [1, 1], "blocks": 2})
    input_size: tuple[int, int] = (144, 192)  # width, height (3:4)
    sigma: float = 2.0  # target Gaussian, heatmap pixels
    min_teacher_score: float = 0.3  # teacher keypoints below this are not trained on (and not scored)
    epochs: int = 40
    samples_per_epoch: int = 4000
    batch: int = 32
    lr: float = 5e-3
    weight_decay: float = 1e-4
    bce_weight: float = 0.25  # weight of the confidence (BCE) term against the localisation (softmax CE) term
    pck_threshold: float = 0.1  # of the box's longer side
    soft_weight: float = 0.5  # share of the teacher's own heatmap in a teacher joint's target (0: Gaussians only)
    lying_weight: float = 3.0  # people falling or on the floor are drawn this many times more often
    small_weight: float = 2.0  # ... and people smaller than small_px (longer box side in the frame) this many times
    small_px: float = 96.0
    photo_weight: float = 1.0  # ... and the photos (LSPET: the hardest poses, the only human labels) this many times
    val_crops: int = 1500  # held-out crops scored after each epoch (a fixed subset) to keep the best checkpoint
    device: str = "cpu"
    workers: int = 0  # DataLoader processes making the views (0: in the training process)
    compile: bool = False  # training steps through torch.compile (CPU: 1.5x the views per second, measured)
    channels_last: bool = False  # NHWC weights and inputs (a layout only; CPU: 1.3x eager, nothing with compile)
    seed: int = 0
    augment: AugmentSettings = field(default_factory=AugmentSettings)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> normalised (N, 3, H, W), as HRNetHeatmapModel feeds the network."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x - torch.tensor(RGB_MEAN).view(1, 3, 1, 1)) / torch.tensor(RGB_STD).view(1, 3, 1, 1)


def batch(data: CropSet, idx: np.ndarray, s: PoseTrainSettings, rng: np.random.Generator | None, stride: int):
    samples = [make_sample(data, int(i), tuple(s.input_size), stride, s.sigma, s.min_teacher_score, rng, s.augment,
                           s.soft_weight) for i in idx]
    images, heatmaps, weights = (np.stack(x) for x in zip(*samples, strict=True))
    return to_tensor(images), torch.from_numpy(heatmaps), torch.from_numpy(weights)


def sampling_weights(data: CropSet, idx: np.ndarray, s: PoseTrainSettings) -> np.ndarray:
    """Probability of drawing each of `idx`: lying / falling people, small people and photos weighted up."""
    weight = np.where(np.isin(data.group[idx], LYING_GROUPS), s.lying_weight, 1.0)
    if data.frame_box_px is not None:
        weight = weight * np.where(data.frame_box_px[idx] < s.small_px, s.small_weight, 1.0)
    if data.frame is not None:
        weight = weight * np.where(data.frame[idx] < 0, s.photo_weight, 1.0)
    return weight / weight.sum()


def heatmap_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, sigma: float,
                 bce_weight: float = 1.0) -> torch.Tensor:
    """Per joint: cross-entropy between the spatial softmax of the logits and the normalised target Gaussian (it
    forces localisation from the first step; plain heatmap MSE first collapses to all-zero maps and, measured here,
    was still there after 8,000 samples: held-out PCK 0.04), plus per-pixel binary cross-entropy of sigmoid(logits)
    against the Gaussian itself, which makes the map's peak a calibrated confidence (0..1, like MoveNet's)."""
    n, k = logits.shape[:2]
    flat, goal = logits.reshape(n, k, -1), target.reshape(n, k, -1)
    dist = goal / goal.sum(-1, keepdim=True).clamp_min(1e-6)
    ce = -(dist * torch.log_softmax(flat, -1)).sum(-1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(flat, goal, reduction="none").sum(-1)
    bce = bce / (2 * np.pi * sigma**2)  # about one per joint: the Gaussian's area
    return ((ce + bce_weight * bce) * weight).sum() / weight.sum().clamp_min(1.0)


@torch.inference_mode()
def heatmap_pck(model: HRNet, data: CropSet, idx: np.ndarray, s: PoseTrainSettings, stride: int,
                rng: np.random.Generator | None) -> float:
    """Validation during training: PCK against the (weighted) targets, decoded with DARK, at the pipeline's own
    view (`rng` None) or at random rotated views."""
    model.eval()
    hits = total = 0.0
    for start in range(0, len(idx), 64):
        part = idx[start:start + 64]
        x, hm, w = batch(data, part, s, rng, stride)
        device = next(model.parameters()).device
        coords, _ = decode_heatmaps(torch.sigmoid(model(x.to(device))).float().cpu().numpy(), 11, True)
        target, _ = decode_heatmaps(hm.numpy(), 11, True)
        scale = s.input_size[0] / data.crop_size[part, 0]
        norm = (data.box_size[part] * scale * s.pck_threshold / stride)[:, None]
        ok = np.linalg.norm(coords - target, axis=-1) <= norm
        hits += float((ok * w.numpy()).sum())
        total += float(w.numpy().sum())
    return hits / max(total, 1.0)


class ViewBatches(torch.utils.data.IterableDataset):
    """Endless training batches of random views, drawn with `draw` weights; with DataLoader workers each worker has
    its own seeded stream (seed, epoch, worker), so a run is reproducible for a given number of workers."""

    def __init__(self, data: CropSet, idx: np.ndarray, draw: np.ndarray, s: PoseTrainSettings, seed: int,
                 stride: int):
        super().__init__()
        self.data, self.idx, self.draw, self.s, self.seed, self.stride = data, idx, draw, s, seed, stride

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, 0 if info is None else info.id + 1])
        while True:
            yield batch(self.data, rng.choice(self.idx, self.s.batch, p=self.draw), self.s, rng, self.stride)


# may change between the sessions of one run; nothing else may
SPEED_SETTINGS = ("device", "workers", "compile", "channels_last")


def check_same_recipe(resume: Path | None, s: PoseTrainSettings) -> None:
    """A run spanning sessions must be resumed with the recipe it started with (the one-cycle schedule is fixed by
    epochs x samples, the draws by the weights): a resume with other settings is refused, naming them."""
    if resume is None or not resume.exists():
        return
    saved = json.loads(json.dumps(torch.load(resume, weights_only=False, map_location="cpu").get("train", {})))
    now = json.loads(json.dumps(asdict(s)))  # both with tuples as lists
    changed = sorted(k for k in now if k not in SPEED_SETTINGS and k in saved and saved[k] != now[k])
    if changed:
        from fallwatch.errors import UsageError

        first = changed[0]
        raise UsageError(f"{resume} was trained with other settings ({', '.join(changed)}; e.g. {first} "
                         f"{saved[first]!r}, now {now[first]!r}): resume with the same arguments, or start anew")


def train(data: CropSet, s: PoseTrainSettings, out: Path, resume: Path | None = None, progress: bool = True) -> dict:
    check_same_recipe(resume, s)
    torch.manual_seed(s.seed)
    device = torch.device(s.device)
    spec = HRNetSpec.from_dict(s.spec)
    layout = torch.channels_last if s.channels_last else torch.contiguous_format
    model = HRNet(spec).to(device, memory_format=layout)  # before the optimiser and the restore: same parameters
    stride = 4
    train_idx = np.flatnonzero(data.split == "train")
    val_idx = np.flatnonzero(data.split == "val")
    if len(val_idx) > s.val_crops:  # checkpoint selection on a fixed subset; the full held-out set is scored at the end
        val_idx = np.sort(np.random.default_rng(s.seed).choice(val_idx, s.val_crops, replace=False))
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    steps = s.samples_per_epoch // s.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, s.lr, total_steps=s.epochs * steps, pct_start=0.1)
    start_epoch, history, best = restore(resume, model, opt, sched)
    draw = sampling_weights(data, train_idx, s)
    # The compiled module shares `model`'s parameters; validation and checkpoints use `model` itself (eager, no
    # recompilation for eval mode, state-dict keys without the wrapper's prefix).
    forward = torch.compile(model) if s.compile else model

    for epoch in range(start_epoch, s.epochs):
        t0 = time.time()
        stream = ViewBatches(data, train_idx, draw, s, s.seed * 1000 + epoch, stride)
        batches = iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=s.workers)
                       if s.workers else stream)

        def step_loss() -> torch.Tensor:
            x, hm, w = (t.to(device, non_blocking=True) for t in next(batches))  # noqa: B023 - this epoch's stream
            return heatmap_loss(forward(x.contiguous(memory_format=layout)), hm, w, s.sigma, s.bce_weight)

        loss = run_epoch(model, opt, sched, steps, step_loss, f"epoch {epoch + 1}/{s.epochs}", progress)
        pck = heatmap_pck(model, data, val_idx, s, stride, None)
        pck_rot = heatmap_pck(model, data, val_idx, s, stride, np.random.default_rng(12345))
        history.append({"epoch": epoch + 1, "loss": loss, "val_pck": pck, "val_pck_random_views": pck_rot,
                        "s": round(time.time() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)
        payload = {"spec": spec.to_dict(), "input_size": list(s.input_size), "activation": "sigmoid",
                   "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "train": asdict(s)}
        best = save_epoch(out, payload, "val_pck", pck, best, opt, sched, epoch + 1, history)
    return {"best_val_pck": best, "history": history, "train_crops": int(len(train_idx)),
            "val_crops": int((data.split == "val").sum()), "params": sum(p.numel() for p in model.parameters()),
            "macs_per_person": count_macs(model.cpu(), tuple(s.input_size))}


def pck_by_group(pred: np.ndarray, ref: np.ndarray, weight: np.ndarray, box_size: np.ndarray, groups: np.ndarray,
                 threshold: float) -> dict:
    """PCK (hits / scored joints) per group, over lying groups and overall; `crops`: those with a scored joint (a
    video's `upright` and LSPET's `upright` share a name, and only the photos have human labels)."""
    d = np.linalg.norm(pred[..., :2] - ref[..., :2], axis=-1)
    hit = (d <= threshold * box_size[:, None]) & weight
    out = {}
    selections = {g: groups == g for g in np.unique(groups)}
    selections["lying (" + ", ".join(LYING_GROUPS) + ")"] = np.isin(groups, LYING_GROUPS)
    selections["all"] = np.ones(len(groups), bool)
    for name, sel in selections.items():
        n = int(weight[sel].sum())
        if n:
            out[str(name)] = {"pck": float(hit[sel].sum() / n), "joints": n, "crops": int(weight[sel].any(-1).sum())}
    return out


def evaluate(estimator, data: CropSet, split: str = "val", min_teacher_score: float = 0.3,
             threshold: float = 0.1, sample: int | None = None, seed: int = 0) -> dict:
    """Any PoseEstimator on the stored crops of `split` (all, or a seeded sample of `sample`), through its own crop
    path: PCK against the teacher's confident keypoints and against human labels, per group (`source` kind: videos
    / LSPET)."""
    idx = sample_split(data, split, sample, seed)
    pred = crop_keypoints(estimator, data, idx)
    teacher = data.teacher[idx]
    teacher_w = (teacher[:, :, 2] >= min_teacher_score) & np.isfinite(teacher[:, :, :2]).all(-1)
    labels = data.labels[idx]
    label_w = labels[:, :, 2] > 0
    groups = data.group[idx]
    result = {"crops": int(len(idx)),
              "vs_teacher": pck_by_group(np.nan_to_num(pred, nan=1e9), np.nan_to_num(teacher), teacher_w,
                                         data.box_size[idx], groups, threshold)}
    if label_w.any():
        result["vs_labels"] = pck_by_group(np.nan_to_num(pred, nan=1e9), labels, label_w, data.box_size[idx],
                                           groups, threshold)
        result["teacher_vs_labels"] = pck_by_group(np.nan_to_num(teacher, nan=1e9), labels, label_w,
                                                   data.box_size[idx], groups, threshold)
    return result


def reference_estimator(name: str, cfg):
    """A PoseEstimator on a registry model (e.g. movenet-thunder) as `fallwatch run` runs it: one pass, raw
    scores, no smoothing."""
    from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
    from fallwatch.weights import resolve

    pose = replace(cfg.pose, model=name, backend="auto", flip_test=False, smoothing=False, calibrate_scores=False)
    return PoseEstimator(pose, build_heatmap_model(pose, resolve(name).path, "cpu"))


def student_estimator(checkpoint: Path, cfg):
    """A PoseEstimator on a distilled checkpoint, configured as `fallwatch run` would be."""
    from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model

    pose_cfg = replace(cfg.pose, model=str(checkpoint), backend="hrnet", smoothing=False)
    return PoseEstimator(pose_cfg, build_heatmap_model(pose_cfg, checkpoint, "cpu"))


def run_from_args(args) -> dict:
    """`fallwatch train pose` / scripts/distill_pose.py: build (or complete) the cache, train, evaluate, report."""
    from fallwatch.config import load_config
    from fallwatch.train import pose_cache

    cfg = load_config(args.config, [*args.overrides, f"pose.model={args.teacher}", "pose.backend=auto",
                                    "pose.smoothing=false", "pose.flip_test=true", "run.progress=false"])
    settings = PoseTrainSettings(epochs=args.epochs, samples_per_epoch=args.samples_per_epoch, seed=args.seed,
                                 lr=args.lr, bce_weight=args.bce_weight, soft_weight=args.soft_weight,
                                 batch=args.batch, device=args.device, workers=args.workers,
                                 photo_weight=args.photo_weight, compile=args.compile,
                                 channels_last=args.channels_last)
    if args.spec:
        settings.spec = json.loads(args.spec)
    if args.input_size:
        settings.input_size = tuple(args.input_size)
    check_same_recipe(args.resume, settings)  # before the cache (minutes to build, ~25 s to load), not after
    plan = pose_cache.CachePlan(seed=args.seed, min_det_score=args.min_det_score, min_box_px=args.min_box_px,
                                max_people=args.max_people, val_every=args.val_every)
    aspect = settings.input_size[0] / settings.input_size[1]
    if not args.cache_only_existing:
        needed = [args.data / "images" / "lspet_subset" / "joints.csv", args.data / "videos"]
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            from fallwatch.errors import UsageError

            raise UsageError(f"no crop cache can be built without the training data: missing {missing[0]}")
        pose_cache.build(args.data, args.cache, cfg, plan, aspect, args.detections, progress=not args.no_progress,
                         part=args.part)
    data = pose_cache.load_cache(args.cache)
    if args.cache_only:
        return {"cache": cache_report(args.cache, data)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    report = train(data, settings, args.out, args.resume, progress=not args.no_progress)
    report["train_s"] = round(time.time() - t0, 1)
    report["score_calibration"] = calibrate_scores(args.out, cfg, data)
    report["cache"] = cache_report(args.cache, data)
    as_run = replace(cfg, pose=replace(cfg.pose, flip_test=False))  # cfg is the flip-tested teacher's
    report["heldout"] = evaluate(student_estimator(args.out, as_run), data, "val", settings.min_teacher_score,
                                 settings.pck_threshold)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def calibrate_scores(checkpoint: Path, cfg, data: CropSet) -> dict:
    """Store in `checkpoint` the map of its scores onto the teacher's single-pass scale (fallwatch/pose/scores.py)."""
    from fallwatch.train.pose_scores import calibrate_checkpoint

    raw = replace(cfg, pose=replace(cfg.pose, flip_test=False, calibrate_scores=False))
    student, reference = student_estimator(checkpoint, raw), reference_estimator(cfg.pose.model, cfg)
    return calibrate_checkpoint(checkpoint, student, reference, data, threshold=cfg.action.min_keypoint_score)


def cache_report(cache: Path, data: CropSet) -> dict:
    """What the cache holds: crops per split and group, distinct sources, small people."""
    out = {"path": str(cache), "crops": len(data), "plan": json.loads((cache / "plan.json").read_text())}
    for split in ("train", "val"):
        sel = data.split == split
        out[split] = {"crops": int(sel.sum()), "sources": int(len(np.unique(data.source[sel]))),
                      "groups": {str(g): int((data.group[sel] == g).sum()) for g in np.unique(data.group[sel])}}
        if data.frame_box_px is not None:
            out[split]["small_under_96px"] = int((data.frame_box_px[sel] < 96).sum())
    return out
