"""One typed configuration tree.

Every default lives in `configs/default.yaml` (the dataclasses below carry no defaults of their own, so a tunable
cannot hide in code); a user YAML file overlays it and `--set section.key=value` overlays that. Values are checked
against the field types, and unknown keys are rejected with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from fallwatch.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A configuration value or key the user can fix; the message is one line."""


@dataclass
class DetectConfig:
    model: str
    imgsz: int
    conf: float
    iou: float
    max_det: int
    half: bool
    runtime: Literal["auto", "openvino", "torch", "predict"]
    every: int


@dataclass
class TrackConfig:
    enabled: bool
    tracker: Literal["bytetrack", "botsort"]
    track_high_thresh: float
    track_low_thresh: float
    new_track_thresh: float
    track_buffer: int
    track_buffer_s: float | None
    match_thresh: float
    second_match_thresh: float
    unconfirmed_match_thresh: float
    fuse_score: bool
    predict_new_tracks: bool
    lost_track_rule: Literal["fallwatch", "ultralytics"]
    output_box: Literal["detection", "filtered"]
    min_box_area: float
    gmc_method: Literal["sparseOptFlow", "none"]
    gmc_downscale: int
    gmc_min_motion_px: float
    with_reid: bool
    proximity_thresh: float
    appearance_thresh: float
    feature_momentum: float


@dataclass
class PoseConfig:
    enabled: bool
    model: str
    backend: Literal["auto", "onnx", "hrnet"]
    small_model: str | None
    small_max_px: float
    hrnet_width: int
    hrnet_runtime: Literal["auto", "onnxruntime", "torch"]
    input_size: list[int]
    padding: float
    dark: bool
    blur_kernel: int
    flip_test: bool
    calibrate_scores: bool
    batch: int
    smoothing: bool
    one_euro_min_cutoff: float
    one_euro_beta: float
    one_euro_d_cutoff: float


@dataclass
class ActionConfig:
    enabled: bool
    model: str
    window_steps: int
    rate_hz: float
    min_span_s: float
    min_keypoint_score: float
    max_gap_s: float
    normalisation: Literal["window", "frame"]
    stride: int
    on_threshold: float
    off_threshold: float
    min_duration_s: float
    getup_s: float
    upright_ratio: float
    down_hold_s: float
    long_lie_s: float
    reassociate_radius: float
    edge_gate: bool
    confirm_low: bool


@dataclass
class OutputConfig:
    video: bool
    jsonl: bool
    events: bool
    summary: bool
    mot: bool
    video_codec: str
    draw_scores: bool
    line_width: int
    report: bool
    clips: bool
    clip_pre_s: float
    clip_post_s: float
    rotate: Literal["never", "live", "always"]
    rotate_s: float | None
    rotate_mb: float | None


@dataclass
class RunConfig:
    device: str
    max_frames: int | None
    queue_size: int
    live_queue_size: int
    folder_fps: float
    reconnect_initial_s: float
    reconnect_max_s: float
    reconnect_attempts: int
    allow_download: bool
    progress: bool
    threads: int
    overlap: bool
    mmap_threshold_kib: int
    heap_trim_s: float


@dataclass
class AlertConfig:
    webhooks: list[str]
    commands: list[str]
    mqtt: list[str]
    timeout_s: float
    retries: int
    backoff_s: float
    queue_size: int


@dataclass
class Config:
    detect: DetectConfig
    track: TrackConfig
    pose: PoseConfig
    action: ActionConfig
    output: OutputConfig
    run: RunConfig
    alerts: AlertConfig

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_dir() -> Path:
    """The bundled `configs/` folder (a checkout's top-level folder, or package data in an installed wheel)."""
    return Path(str(resources.files("fallwatch.configs")))


def default_config_path() -> Path:
    return config_dir() / "default.yaml"


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file at `path` (if any), then `key=value` overrides."""
    tree = _read_yaml(default_config_path())
    if path is not None:
        _merge(tree, _read_yaml(Path(path)), where=str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return _build(Config, tree, "")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data


def _fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str, prefix: str = "") -> None:
    for key, value in extra.items():
        full = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"unknown config key {full!r} in {where}; valid: {', '.join(sorted(base))}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, where, prefix=f"{full}.")
        else:
            base[key] = value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            scope = ".".join(parts[:depth]) or "the config"
            valid = ", ".join(sorted(node)) if isinstance(node, dict) else "(none: not a section)"
            raise ConfigError(f"unknown config key {key!r}; valid keys in {scope}: {valid}")
        if depth == len(parts) - 1:
            if isinstance(node[part], dict):
                raise ConfigError(f"{key!r} is a section; set one of its keys: {', '.join(sorted(node[part]))}")
            node[part] = value
        else:
            node = node[part]


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {path or 'root'!r} must be a mapping")
    hints = _fields(cls)
    unknown = set(data) - set(hints)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown config key {path + key!r}; valid: {', '.join(hints)}")
    missing = [name for name in hints if name not in data]
    if missing:
        raise ConfigError(f"config is missing {path + missing[0]!r} (default.yaml must define every key)")
    values = {}
    for name, hint in hints.items():
        full = path + name
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, data[name], full + ".")
        else:
            values[name] = _coerce(data[name], hint, full)
    return cls(**values)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin in (list, tuple):
        (item,) = get_args(hint)[:1]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list; got {value!r}")
        return [_coerce(v, item, key) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false; got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer; got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number; got {value!r}")
    if hint is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string; got {value!r}")
    raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover - a programming error
