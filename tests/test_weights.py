from __future__ import annotations

import pytest

from fallwatch.weights import WeightsError, registry, resolve, sha256_of


def test_registry_names_are_complete():
    reg = registry()
    assert {"yolov8n", "movenet-thunder", "movenet-lightning"} <= set(reg)
    for entry in reg.values():
        assert entry.file and entry.licence and entry.sha256


def test_resolve_from_env_one_folder_down(weights_dir):
    found = resolve("yolov8n")
    assert found.source == "env" and found.path.name == "yolov8n.pt"
    assert found.path.parent.name == "yolov8n-coco"
    assert found.sha256 in registry()["yolov8n"].sha256


def test_explicit_path_wins(weights_dir):
    path = weights_dir / "yolov8n-coco" / "yolov8n.pt"
    found = resolve(str(path))
    assert found.source == "path" and found.path == path.resolve()
    assert found.sha256 == sha256_of(path)
    with pytest.raises(WeightsError, match="not found"):
        resolve(str(path.parent / "missing.pt"))


def test_cache_is_searched_after_env(tmp_path, monkeypatch, weights_dir):
    monkeypatch.setenv("FALLWATCH_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("FALLWATCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "yolov8n.pt").write_bytes((weights_dir / "yolov8n-coco" / "yolov8n.pt").read_bytes())
    assert resolve("yolov8n", allow_download=False).source == "cache"


def test_wrong_file_under_a_registered_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FALLWATCH_WEIGHTS", str(tmp_path))
    (tmp_path / "yolov8n.pt").write_bytes(b"not the model")
    with pytest.raises(WeightsError, match="sha256"):
        resolve("yolov8n")


def test_missing_offline_names_places_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("FALLWATCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("FALLWATCH_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("FALLWATCH_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        resolve("hrnet-w32-dark")  # registered with a public URL, not bundled
    msg = str(info.value)
    assert "hrnet_w32_coco_256x192_dark" in msg and str(tmp_path / "w") in msg and str(tmp_path / "c") in msg
    assert "https://download.openmmlab.com" in msg and "downloads are off" in msg and "\n" not in msg
    with pytest.raises(WeightsError, match="no public download"):
        resolve("mobilenetv2-embedder")  # registered, not bundled, no URL


def test_unknown_name():
    with pytest.raises(WeightsError, match="unknown model"):
        resolve("yolov99")


BUNDLED = ["yolov8n", "movenet-thunder", "movenet-lightning", "hrnet-fallwatch-s", "stgcn-fall"]


@pytest.mark.parametrize("name", BUNDLED)
def test_shipped_models_need_no_weights_folder(name, tmp_path, monkeypatch):
    """The default models and the ones fallwatch trains ship in models/ and resolve offline with nothing else."""
    monkeypatch.setenv("FALLWATCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("FALLWATCH_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("FALLWATCH_OFFLINE", "1")
    found = resolve(name)
    assert found.source == "bundled" and found.path.parent.name == "models"
    assert found.sha256 in registry()[name].sha256
    assert found.sha256 == registry()[name].bundled


def test_only_the_default_models_are_bundled():
    """Weights in models/ are exactly the registry's `bundled` entries, and nothing else from ../shared/weights."""
    from fallwatch.weights import models_dir

    shipped = {p.name for p in models_dir().iterdir() if p.suffix in {".pt", ".pth", ".onnx"}}
    assert shipped == {registry()[name].file for name in BUNDLED}
    assert {name for name, entry in registry().items() if entry.bundled} == set(BUNDLED)
