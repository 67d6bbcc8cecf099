"""The product as a new user gets it: a wheel built from the checkout, installed into a second environment, run
from an empty folder with no weights folder, an empty home and cache, and no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import DATA, ROOT, read_jsonl

CLIP = DATA / "videos" / "falls" / "videos" / "le2i_coffee_017.mp4"  # 320x240, 25 fps, one person who falls
FRAMES = 60  # p(fall) needs action.min_span_s (1 s) of track
DEFAULT_MODELS = {"yolov8n": "detect", "movenet-lightning": "pose", "stgcn-fall": "action"}
SKIP = shutil.ignore_patterns(".git", ".venv*", "runs", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` on a clean copy of the checkout (no stale build/ folder can leak into the wheel)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(tmp)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (found,) = tmp.glob("fallwatch-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """A second virtual environment with only the wheel installed in it; torch and the other dependencies come
    from this test environment's site-packages through a plain path entry (so they are not installed twice, and
    this environment's editable install of the checkout is not seen)."""
    tmp = tmp_path_factory.mktemp("user")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "fallwatch_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    home, cache, work = tmp / "home", tmp / "cache", tmp / "empty"
    for folder in (home, cache, work):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"FALLWATCH_WEIGHTS", "PYTHONPATH", "YOLO_CONFIG_DIR"}}
    env.update(HOME=str(home), FALLWATCH_CACHE=str(cache), FALLWATCH_OFFLINE="1", XDG_CONFIG_HOME=str(home / ".config"),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return {"venv": venv, "python": python, "site": Path(site), "env": env, "cwd": work}


def _user_run(installed: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed["venv"] / "bin" / "fallwatch"), *args], capture_output=True, text=True,
                          env=installed["env"], cwd=installed["cwd"], timeout=timeout)


def test_wheel_carries_models_configs_and_schemas(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for file in ("yolov8n.pt", "movenet_singlepose_thunder.onnx", "movenet_singlepose_lightning.onnx",
                 "stgcn_fall.pt", "hrnet_fallwatch_s.pt", "registry.yaml", "NOTICE", "LICENSE-Apache-2.0.txt"):
        assert f"fallwatch/models/{file}" in names, file
    assert "fallwatch/configs/default.yaml" in names
    assert {"fallwatch/schemas/frame.schema.json", "fallwatch/schemas/summary.schema.json"} <= names
    assert wheel.stat().st_size < 30e6


def test_installed_wheel_is_what_runs(installed):
    where = subprocess.run([str(installed["python"]), "-c", "import fallwatch; print(fallwatch.__file__)"],
                           capture_output=True, text=True, env=installed["env"], cwd=installed["cwd"], check=True)
    assert Path(where.stdout.strip()).is_relative_to(installed["site"]), where.stdout


def test_models_lists_every_default_model_as_bundled(installed):
    proc = _user_run(installed, "models")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line and not line.startswith(" ")}
    for name, stage in DEFAULT_MODELS.items():
        assert "(bundled)" in lines[name] and f"[used by {stage}]" in lines[name], lines[name]
    assert "(bundled)" in lines["movenet-lightning"]


def test_fresh_install_runs_a_real_clip_offline(installed):
    out = installed["cwd"] / "out"
    proc = _user_run(installed, "run", str(CLIP), "-o", str(out), "--max-frames", str(FRAMES), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    name = CLIP.stem
    for suffix in (".mp4", ".frames.jsonl", ".events.json", ".summary.json"):
        assert (out / f"{name}{suffix}").stat().st_size > 0, suffix
    frames = read_jsonl(out / f"{name}.frames.jsonl")
    assert len(frames) == FRAMES
    persons = [p for f in frames for p in f["persons"]]
    assert persons and all(len(p["keypoints"]) == 17 for p in persons)
    assert any(p["fall_prob"] is not None for p in persons)
    summary = json.loads((out / f"{name}.summary.json").read_text())
    assert summary["status"] == "complete"
    models = summary["models"]
    assert set(models) == {"detect", "pose", "action"}
    assert {m["found_in"] for m in models.values()} == {"bundled"}, models
    assert {m["name"] for m in models.values()} == set(DEFAULT_MODELS)
