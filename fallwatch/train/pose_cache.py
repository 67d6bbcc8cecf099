"""The teacher-labelled crop cache for distilling our HRNet (issue 18).

Every video in ../shared/data and the LSPET photos; people lying, falling and small weighted up (more of their
frames sampled here, drawn more often in training); each crop labelled by MoveNet Thunder through the pipeline's own
crop -> heatmap -> DARK path with flip-test averaging, and its heatmaps kept as soft targets.

Which frames (`plan_frames`) follows only the data, the `CachePlan` and its seed: during a fall every frame, else
every 3rd, the fall-free clips (streets, crowds: up to 8 people a frame) every 5th, each clip from a seeded offset.
Boxes are the real YOLOv8n's (the detection cache of the evaluation scripts when it holds the clip, else the
detector on the planned frames), at least `min_box_px` tall, score >= `min_det_score` — or, since people lying on
the floor often score only 0.15-0.4, >= `low_det_score` where the teacher's mean joint confidence in the box is at
least `low_min_teacher` (a person, not furniture).

Held out, whole (split "val", never trained on): every clip of the fall evaluation's test splits (URFD 21-30,
GMDCSA24 subject 3, the MOT pedestrian videos, test_new's sources and fall-free recordings) and every
`val_every`-th LSPET photo. So the student's own fall evaluation never sees a frame it was trained on.

One shard per source (`<cache>/shards/<name>.npz`, written atomically): a build that is stopped resumes at the
first missing shard, and the loaded cache (`load_cache`) is the shards in name order — the same crops for the same
data and plan. Crops are stored as JPEG (quality 92, `store_px` square), teacher heatmaps as uint8 (sigmoid x 255)
with the matrix from stored-crop pixels to heatmap cells, so a training view can warp them like the image.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from fallwatch.pose import crop
from fallwatch.train.pose_data import CropSet, clip_group, lspet_items, store_transforms

JPEG_QUALITY = 92
DETECT_KEY_FIELDS = ("conf", "half", "imgsz", "iou", "max_det", "model")  # what the detection cache is keyed on


@dataclass(frozen=True)
class CachePlan:
    seed: int = 0
    store_px: int = 320  # side of a stored crop (1.5x the pipeline crop's long side: room to rotate and zoom out)
    stride_falling: int = 1  # frames between samples while the person falls
    stride_fallen: int = 3  # ... after the fall (on the floor)
    stride_upright: int = 3  # ... before the fall and in daily-activity clips
    stride_free: int = 5  # ... in the fall-free clips (streets, crowds, indoor life)
    min_det_score: float = 0.4  # boxes at least this sure are used as they are
    low_det_score: float = 0.15  # weaker boxes (people lying are often 0.15-0.4) only where the teacher sees a
    low_min_teacher: float = 0.2  # person: its mean joint confidence at least this
    min_box_px: float = 20.0
    max_people: int = 8
    val_every: int = 5  # every N-th LSPET photo is held out

    def stride(self, group: str, fall_free: bool) -> int:
        if fall_free:
            return self.stride_free
        return {"falling": self.stride_falling, "fallen": self.stride_fallen}.get(group, self.stride_upright)


def clip_sources(data: Path) -> list[tuple[object, str]]:
    """(clip, split) for every labelled video in `data`, split as the fall evaluation splits them."""
    from fallwatch.eval.clips import shared_clips

    clips = shared_clips(data)
    out = [(clip, split) for key, split in (("train", "train"), ("train_new", "train"), ("test", "val"),
                                            ("fall_free", "val"), ("test_new", "val")) for clip in clips[key]]
    names = [c.name for c, _ in out]
    if len(set(names)) != len(names):
        raise ValueError("two clips share a name; their shards would collide")
    return out


def fall_free_names(data: Path) -> set[str]:
    from fallwatch.eval.clips import fall_free_clips, pedestrian_clips

    names = {c.name for _, c in fall_free_clips(data / "videos" / "fall_free")}
    return names | {c.name for c in pedestrian_clips(data / "mot")}


def _offset(name: str, seed: int, stride: int) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % stride


def plan_frames(clip, frame_count: int, plan: CachePlan, fall_free: bool) -> list[tuple[int, str]]:
    """(frame index, group) to sample from one clip: each group's stride from the clip's seeded offset."""
    out = []
    for index in range(frame_count):
        group = clip_group(clip, index)
        stride = plan.stride(group, fall_free)
        if (index - _offset(clip.name, plan.seed, stride)) % stride == 0:
            out.append((index, group))
    return out


class ShardWriter:
    """Collects one source's crops; `save` writes them as one shard, atomically."""

    def __init__(self, teacher, plan: CachePlan, aspect: float, padding: float):
        self.teacher, self.plan, self.aspect, self.padding = teacher, plan, aspect, padding
        self.rows: dict[str, list] = {}

    def add(self, image_bgr: np.ndarray, boxes: np.ndarray, split: str, source: str, group: str,
            labels: np.ndarray | None = None, weak: np.ndarray | None = None, frame: int = -1) -> None:
        """Crops of `boxes`; a `weak` box is kept only where the teacher sees a person in it."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return
        heatmaps, teacher_m = self.teacher.heatmaps(image_bgr, boxes)
        keypoints = self.teacher.keypoints(heatmaps, teacher_m)
        if weak is not None:
            sure = ~weak | (keypoints[:, :, 2].mean(1) >= self.plan.low_min_teacher)
            boxes, heatmaps, teacher_m, keypoints = boxes[sure], heatmaps[sure], teacher_m[sure], keypoints[sure]
            if len(boxes) == 0:
                return
        store_m, crop_size, box_size = store_transforms(boxes, self.aspect, self.padding, self.plan.store_px)
        images = crop.warp_crops(image_bgr, store_m, (self.plan.store_px, self.plan.store_px))
        if labels is None:
            labels = np.zeros((len(boxes), keypoints.shape[1], 3))
        stride = self.teacher.model.input_size[0] / heatmaps.shape[-1]
        offset = getattr(self.teacher.model, "heatmap_offset", 0.0)
        cells = _to_cells(teacher_m, stride, offset)  # frame -> teacher heatmap cells
        soft_m = _compose(cells, crop.invert(store_m))  # stored crop -> teacher heatmap cells
        row = {
            "jpeg": [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes() for im in images],
            "teacher": np.concatenate([crop.apply(store_m, keypoints[:, :, :2].astype(np.float64)),
                                       keypoints[:, :, 2:]], 2).astype(np.float32),
            "labels": np.concatenate([crop.apply(store_m, np.nan_to_num(labels[:, :, :2])), labels[:, :, 2:]],
                                     2).astype(np.float32),
            "box": crop.apply(store_m, boxes.reshape(-1, 2, 2)).reshape(-1, 4).astype(np.float32),
            "crop_size": crop_size.astype(np.float32), "box_size": box_size.astype(np.float32),
            "frame_box_px": np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]),
            "soft": np.clip(np.rint(heatmaps * 255), 0, 255).astype(np.uint8), "soft_matrix": soft_m,
            "frame": np.full(len(boxes), frame, np.int64),
            "split": [split] * len(boxes), "source": [source] * len(boxes), "group": [group] * len(boxes),
        }
        for key, value in row.items():
            self.rows.setdefault(key, []).append(value)

    def save(self, path: Path) -> int:
        if not self.rows:
            arrays = _empty_shard()
        else:
            jpeg = [b for part in self.rows.pop("jpeg") for b in part]
            arrays = {k: np.concatenate(v) if isinstance(v[0], np.ndarray) else np.asarray(sum(v, []))
                      for k, v in self.rows.items()}
            arrays["jpeg_bytes"] = np.frombuffer(b"".join(jpeg), np.uint8)
            arrays["jpeg_end"] = np.cumsum([len(b) for b in jpeg]).astype(np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")  # not *.npz: a shard being written is never loaded
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
        self.rows = {}
        return len(arrays["jpeg_end"])


def _to_cells(matrices: np.ndarray, stride: float, offset: float) -> np.ndarray:
    """Frame -> model input matrices, followed by input pixels -> heatmap cells (cell i centred at (i+offset)*s)."""
    out = matrices / stride
    out[:, :, 2] -= offset
    return out


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 2, 3) affine maps: a after b."""
    full = np.concatenate([b, np.tile([[[0.0, 0.0, 1.0]]], (len(b), 1, 1))], 1)
    return np.einsum("nij,njk->nik", a, full)


def _empty_shard() -> dict:
    return {"jpeg_bytes": np.zeros(0, np.uint8), "jpeg_end": np.zeros(0, np.int64)}


def in_part(names: list[str], part: tuple[int, int] | None) -> set[str]:
    """The shards that part (k, n) of a build writes: every n-th name from the k-th, in sorted order, so n builders
    (one per core) share the sources without overlap and together write every shard."""
    if part is None:
        return set(names)
    k, n = part
    if not 0 <= k < n:
        raise ValueError(f"part {k}/{n}: k must be in 0..{n - 1}")
    return {name for i, name in enumerate(sorted(names)) if i % n == k}


def build(data: Path, cache: Path, cfg, plan: CachePlan, aspect: float, detections: Path | None,
          progress: bool = True, only: set[str] | None = None, part: tuple[int, int] | None = None) -> dict:
    """Writes every missing shard of `cache` (of `only`, of `part`); `cfg` is the config whose detector and pose
    model (the teacher, with pose.flip_test on) label the crops. Returns {shard name: crops} for the shards written
    now."""
    from tqdm import tqdm

    from fallwatch.detect import YoloDetector
    from fallwatch.eval.clips import DetectionCache
    from fallwatch.io.sources import ReaderSettings, open_source
    from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
    from fallwatch.weights import resolve

    shards = cache / "shards"
    (cache / "plan.json").parent.mkdir(parents=True, exist_ok=True)
    meta = {"plan": asdict(plan), "teacher": cfg.pose.model, "flip_test": cfg.pose.flip_test, "aspect": aspect,
            "padding": cfg.pose.padding}
    if (cache / "plan.json").exists() and json.loads((cache / "plan.json").read_text()) != meta:
        raise ValueError(f"{cache} was built with another plan or teacher; use another folder")
    tmp = cache / f"plan.{os.getpid()}.tmp"  # atomic: builders of other parts may be reading it
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, cache / "plan.json")
    sources = clip_sources(data)
    mine = in_part(["lspet", *(c.name for c, _ in sources)], part)
    only = mine if only is None else mine & set(only)
    teacher = PoseEstimator(cfg.pose, build_heatmap_model(cfg.pose, resolve(cfg.pose.model, allow_download=False).path,
                                                          "cpu"))
    detect_key = {k: v for k, v in cfg.to_dict()["detect"].items() if k in DETECT_KEY_FIELDS}
    det_cache = DetectionCache(detections, detect_key) if detections else None
    detector = None
    written = {}
    writer = ShardWriter(teacher, plan, aspect, cfg.pose.padding)
    if "lspet" in only and not (shards / "lspet.npz").exists():
        for path, split, group, box, labels in tqdm(list(lspet_items(data / "images" / "lspet_subset",
                                                                      plan.val_every)),
                                                    desc="LSPET", disable=not progress):
            image = cv2.imread(str(path))
            if image is not None:
                writer.add(image, box[None], split, path.stem, group, labels[None])
        written["lspet"] = writer.save(shards / "lspet.npz")
    free = fall_free_names(data)
    settings = ReaderSettings.from_config(cfg.run)
    todo = [(c, s) for c, s in sources if not (shards / f"{c.name}.npz").exists() and c.name in only]
    for clip, split in tqdm(todo, desc="videos", disable=not progress):
        known = det_cache.load(clip) if det_cache is not None else None
        with open_source(str(clip.path), settings) as src:
            frames = src.info.frame_count or 0
            wanted = dict(plan_frames(clip, frames, plan, clip.name in free))
            for frame in src:
                group = wanted.get(frame.index)
                if group is None:
                    continue
                image = clip.view(frame.image)
                if known is not None and frame.index in known:
                    det = known[frame.index]
                else:
                    if detector is None:
                        detector = YoloDetector(cfg.detect, resolve(cfg.detect.model, allow_download=False), "cpu")
                    det = detector(image)
                keep = (det.scores >= plan.low_det_score) & ((det.boxes[:, 3] - det.boxes[:, 1]) >= plan.min_box_px)
                order = np.argsort(-det.scores[keep], kind="stable")[:plan.max_people]
                writer.add(image, det.boxes[keep][order], split, clip.name, group,
                           weak=det.scores[keep][order] < plan.min_det_score, frame=frame.index)
        written[clip.name] = writer.save(shards / f"{clip.name}.npz")
    return written


def load_cache(cache: Path) -> CropSet:
    """Every shard of `cache` in name order, as one CropSet (JPEG crops decoded on demand)."""
    parts = []
    for path in sorted((cache / "shards").glob("*.npz")):
        with np.load(path) as z:
            if len(z["jpeg_end"]):
                parts.append({k: z[k] for k in z.files})
    if not parts:
        from fallwatch.errors import UsageError

        raise UsageError(f"no crop cache at {cache}: no shard there holds a crop")
    offset, ends, blobs = 0, [], []
    for p in parts:
        ends.append(p["jpeg_end"] + offset)
        offset += len(p["jpeg_bytes"])
        blobs.append(p["jpeg_bytes"])
    fields = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k not in ("jpeg_bytes", "jpeg_end")}
    return CropSet(images=JpegImages(np.concatenate(blobs), np.concatenate(ends)), **{
        k: fields[k] for k in CropSet.__dataclass_fields__ if k in fields})


class JpegImages:
    """`images[i]` -> the i-th stored crop (uint8 RGB), decoded from one contiguous JPEG buffer."""

    def __init__(self, blob: np.ndarray, ends: np.ndarray):
        self.blob, self.ends = blob, ends
        self.starts = np.r_[0, ends[:-1]]

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> np.ndarray:
        bgr = cv2.imdecode(self.blob[self.starts[i]:self.ends[i]], cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
