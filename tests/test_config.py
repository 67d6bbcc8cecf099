from __future__ import annotations

import dataclasses

import pytest
import yaml

from fallwatch.config import Config, ConfigError, default_config_path, load_config


def _leaf_keys(cls, prefix=""):
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type) or (isinstance(f.type, type) and dataclasses.is_dataclass(f.type)):
            yield from _leaf_keys(f.type, f"{prefix}{f.name}.")
        else:
            yield prefix + f.name


def test_default_yaml_defines_every_key_with_a_comment():
    cfg = load_config()
    text = default_config_path().read_text()
    raw = yaml.safe_load(text)
    for section, values in cfg.to_dict().items():
        assert set(values) == set(raw[section]), section
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped and not stripped.endswith(":"):
            assert "#" in line, f"tunable without a comment: {line!r}"


def test_overrides_are_typed():
    cfg = load_config(overrides=["detect.imgsz=320", "detect.conf=0.2", "run.max_frames=5", "output.video=false"])
    assert cfg.detect.imgsz == 320 and cfg.detect.conf == 0.2
    assert cfg.run.max_frames == 5 and cfg.output.video is False
    assert load_config(overrides=["run.max_frames=null"]).run.max_frames is None
    assert load_config(overrides=["detect.conf=1"]).detect.conf == 1.0  # int accepted for float


@pytest.mark.parametrize(
    "override, needle",
    [
        ("detect.imgsz=3.5", "integer"),
        ("output.video=maybe", "true or false"),
        ("track.tracker=sort", "bytetrack, botsort"),
        ("detect.nope=1", "valid keys in detect"),
        ("detect=1", "is a section"),
        ("novalue", "key=value"),
    ],
)
def test_bad_overrides(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(overrides=[override])


def test_file_overlay_and_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("detect:\n  imgsz: 480\ntrack:\n  tracker: botsort\n")
    cfg = load_config(f, ["detect.imgsz=256"])
    assert isinstance(cfg, Config)
    assert cfg.detect.imgsz == 256 and cfg.track.tracker == "botsort"
    f.write_text("detect:\n  imgsize: 480\n")
    with pytest.raises(ConfigError, match="imgsize"):
        load_config(f)


def test_tracker_presets_load():
    from fallwatch.config import config_dir

    for name in ("bytetrack", "botsort"):
        cfg = load_config(config_dir() / "trackers" / f"{name}.yaml")
        assert cfg.track.tracker == name
