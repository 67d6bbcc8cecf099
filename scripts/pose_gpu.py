"""Train the HRNet student on a lent GPU machine in one go: the crop cache travels in parts, the checkpoint comes back.

A lent GPU machine receives only a copy of the repository (64 MiB at a time, ../shared stays behind), so the cache
built here (`fallwatch train pose --cache-only`) is packed into parts of at most `--part-mib` MiB — crops re-encoded
as JPEG (quality `--jpeg-quality`), teacher heatmaps deflated — into `.gpu_pack/` (ignored by git), one part sent
with each command:

    python scripts/pose_gpu.py pack --cache runs/pose_cache --out .gpu_pack        # here, once
    # on the GPU machine, one command per part, each sent with that one part (ignored files there stay):
    python3 scripts/pose_gpu.py stash .gpu_pack/part-000.npz                      # ... every part ...
    # then the training (about 8 minutes of an H200; writes the checkpoint and its report under $OUT), with the
    # CPU run's recipe (docs/benchmarks.md, issue #18):
    python3 scripts/pose_gpu.py train --epochs 60 --batch 256 --workers 12 -- --spec '{...}' \\
        --input-size 192 256 --photo-weight 3

`stash` moves a part out of the working tree (into /tmp/fallwatch-pack), so the next call's copy does not remove
it; `train` unpacks every stashed part into a cache, runs `fallwatch train pose --cache-only-existing --device cuda`
and copies the checkpoint, its resumable `.last.pt` and the report to $OUT. Bring them back into runs/ and evaluate
here with `scripts/eval_pose_student.py` (CPU, the same held-out crops).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STASH = Path("/tmp/fallwatch-pack")
META = ("teacher", "labels", "box", "crop_size", "box_size", "frame_box_px", "soft", "soft_matrix", "frame", "split",
        "source", "group")


def pack(cache: Path, out: Path, part_mib: float, quality: int) -> list[Path]:
    """Parts of at most `part_mib` MiB, each a self-contained slice of the cache (its own JPEG buffer)."""
    sys.path.insert(0, str(ROOT))
    from fallwatch.train.pose_cache import load_cache

    data = load_cache(cache)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.npz"):
        old.unlink()
    budget = part_mib * 2**20 * 0.95
    parts, start, size, jpegs = [], 0, 0, []
    for i in range(len(data)):
        rgb = data.images[i]
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        cost = len(buf) + 6500  # deflated heatmaps are ~5.8 kB per crop, metadata ~0.5 kB
        if jpegs and size + cost > budget:
            parts.append(_write_part(out / f"part-{len(parts):03d}.npz", data, start, i, jpegs))
            start, size, jpegs = i, 0, []
        jpegs.append(buf.tobytes())
        size += cost
    parts.append(_write_part(out / f"part-{len(parts):03d}.npz", data, start, len(data), jpegs))
    (out / "cache_plan.json").write_text((cache / "plan.json").read_text())
    return parts


def _write_part(path: Path, data, start: int, stop: int, jpegs: list[bytes]) -> Path:
    arrays = {k: getattr(data, k)[start:stop] for k in META}
    arrays["jpeg_bytes"] = np.frombuffer(b"".join(jpegs), np.uint8)
    arrays["jpeg_end"] = np.cumsum([len(b) for b in jpegs]).astype(np.int64)
    np.savez_compressed(path, **arrays)
    print(f"{path.name}: crops {start}-{stop - 1}, {path.stat().st_size / 2**20:.1f} MiB", flush=True)
    return path


def stash(part: Path) -> None:
    STASH.mkdir(parents=True, exist_ok=True)
    shutil.copy(part, STASH / part.name)
    plan = part.parent / "cache_plan.json"
    if plan.exists():
        shutil.copy(plan, STASH / "cache_plan.json")
    print(f"stashed {part.name}; now {sorted(p.name for p in STASH.glob('part-*.npz'))}")


def train(args, extra: list[str]) -> int:
    cache = Path("/tmp/fallwatch-cache")
    shards = cache / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    for part in sorted(STASH.glob("part-*.npz")):
        shutil.copy(part, shards / part.name)  # a part has the layout of a shard
    shutil.copy(STASH / "cache_plan.json", cache / "plan.json")
    out = Path(os.environ.get("OUT", "runs/gpu"))
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "fallwatch", "train", "pose", "--cache", str(cache), "--cache-only-existing",
           "--device", "cuda", "--workers", str(args.workers), "--batch", str(args.batch), "--epochs",
           str(args.epochs), "--samples-per-epoch", str(args.samples_per_epoch), "--out", str(out / "student.pt"),
           "--no-progress", *extra]
    print(" ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", "FALLWATCH_OFFLINE": "1"}
    rc = subprocess.call(cmd, env=env)
    print(json.dumps({"exit": rc, "files": sorted(p.name for p in out.iterdir())}))
    return rc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--cache", type=Path, default=ROOT / "runs/pose_cache")
    p.add_argument("--out", type=Path, default=ROOT / ".gpu_pack")
    p.add_argument("--part-mib", type=float, default=60.0)
    p.add_argument("--jpeg-quality", type=int, default=85)
    s = sub.add_parser("stash")
    s.add_argument("part", type=Path)
    t = sub.add_parser("train")
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--samples-per-epoch", type=int, default=40000)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--workers", type=int, default=12)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.what == "pack":
        pack(args.cache, args.out, args.part_mib, args.jpeg_quality)
    elif args.what == "stash":
        stash(args.part)
    else:
        raise SystemExit(train(args, extra))


if __name__ == "__main__":
    main()
