"""Action stage: graph, network size, windows (time resampling, gaps, normalisation), recognizer events and
awkward input. The shipped model's accuracy is measured by scripts/eval_falls.py (docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fallwatch.action.buffers import TrackBuffers, WindowSpec, normalise, resample
from fallwatch.action.graph import spatial_partitions
from fallwatch.action.recognizer import FallRecognizer
from fallwatch.action.stgcn import STGCN, STGCNSpec, count_macs
from fallwatch.config import load_config
from fallwatch.types import Poses, Tracks

SPEC = WindowSpec(steps=50, rate_hz=25.0, min_span_s=1.0, min_score=0.2, max_gap_s=1.0, normalisation="window")


def standing(t: float, drop: float = 0.0) -> np.ndarray:
    """A COCO-17 stick figure (pixels, y down), hips at y=300 + drop, swaying with time."""
    sway = 10 * np.sin(2 * np.pi * 0.5 * t)
    ys = np.array([100, 95, 95, 100, 100, 150, 150, 200, 200, 250, 250, 300, 300, 380, 380, 460, 460], float)
    xs = np.array([0, -5, 5, -10, 10, -30, 30, -40, 40, -45, 45, -20, 20, -22, 22, -24, 24], float) + 300 + sway
    return np.stack([xs, ys + drop, np.full(17, 0.9)], 1).astype(np.float32)


def test_partitions_are_normalised_neighbourhoods():
    a = spatial_partitions()
    assert a.shape == (3, 17, 17)
    assert np.allclose(a.sum(axis=(0, 1)), 1.0)  # each joint's neighbourhood weights sum to one
    assert a[0, 11, 11] > 0 and a[1:, 11, 11].sum() == 0  # the centre is its own root


def test_reference_configuration_size():
    model = STGCN(STGCNSpec(in_channels=2))  # PP-Human: C=2, V=17, K=3, 2 classes
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - 3.07e6) / 3.07e6 < 0.01
    assert 0.9e9 < count_macs(model, 50) < 1.1e9


def test_windows_mean_the_same_motion_at_15_and_60_fps():
    windows = []
    for fps in (15.0, 60.0):
        times = np.arange(0, 3.0, 1 / fps)
        kps = np.stack([standing(t, drop=120 * max(0.0, t - 1.5)) for t in times])
        windows.append(normalise(resample(times, kps, SPEC, end_time=times[-1])))
    assert np.abs(windows[0] - windows[1]).max() < 0.05


def test_missing_joints_are_interpolated_not_zeroed():
    times = np.arange(0, 2.5, 1 / 25)
    kps = np.stack([standing(t) for t in times])
    kps[20:30, 9, 2] = 0.05  # the left wrist drops out for 0.4 s
    kps[:, 3, 2] = 0.0  # the left ear is never seen
    w = resample(times, kps, SPEC, end_time=times[-1])
    assert np.all(w[:, 9, 2] == 1) and np.all(np.abs(w[:, 9, 0] - 255) < 12)  # wrist ~x=255 throughout
    assert np.all(w[:, 3, 2] == 0)


def test_window_normalisation_keeps_the_drop_of_a_fall():
    times = np.arange(0, 2.0, 1 / 25)
    kps = np.stack([standing(t, drop=200 * min(1.0, max(0.0, t - 0.8) / 0.6)) for t in times])
    w = normalise(resample(times, kps, SPEC, end_time=times[-1]))
    hips_y = w[:, 11:13, 1].mean(1)
    assert hips_y[-1] - hips_y[0] == pytest.approx(200 / 150, abs=0.05)  # a 200 px drop, torso 150 px


class _Scripted(torch.nn.Module):
    """A stand-in network whose p(fall) follows a script, to test the event logic alone."""

    def __init__(self):
        super().__init__()
        self.p = 0.0

    def forward(self, x):
        p = torch.full((x.shape[0],), self.p)
        return torch.stack([torch.log1p(-p.clamp(max=1 - 1e-6)), torch.log(p.clamp(min=1e-6))], 1)


def _cfg(**kw):
    return load_config(overrides=[f"action.{k}={v}" for k, v in kw.items()]).action


def test_events_open_after_min_duration_and_close_with_hysteresis():
    net = _Scripted()
    rec = FallRecognizer(_cfg(stride=1, on_threshold=0.7, off_threshold=0.4, min_duration_s=0.2), net)
    script = [0.1] * 30 + [0.9] * 10 + [0.5] * 10 + [0.2] * 5  # 25 fps
    states, opened, closed = [], [], []
    for f, p in enumerate(script):
        net.p = p
        t = f / 25
        acts, events = rec.update(f, t, Tracks([4], [[100, 100, 200, 400]], [0.9]), Poses(standing(t)[None]))
        states.append(acts.state[0])
        opened += [e for e in events if e.end_frame is None]
        closed += [e for e in events if e.end_frame is not None]
    assert len(opened) == 1 and len(closed) == 1
    assert opened[0].start_frame == 30 and states[30] == "pending" and states[35] == "fallen"
    assert states[45] == "fallen"  # 0.5 is below on but above off: the event stays open
    assert closed[0].end_frame == 50 and states[-1] == "ok" and closed[0].peak_prob == pytest.approx(0.9, abs=1e-3)


def test_awkward_input_gives_no_exception_and_no_event():
    net = _Scripted()
    net.p = 0.99
    rec = FallRecognizer(_cfg(stride=1), net)
    # A track shorter than min_span: not ready, probability NaN, state ok.
    acts, events = rec.update(0, 0.0, Tracks([1], [[0, 0, 10, 10]], [0.9]), Poses(standing(0)[None]))
    assert np.isnan(acts.fall_prob[0]) and acts.state == ("ok",) and not events
    # Missing timestamps, NaN keypoints, a window with no joints at all.
    nan_kp = np.full((1, 17, 3), np.nan, np.float32)
    for f in range(1, 40):
        acts, events = rec.update(f, float("nan"), Tracks([2], [[0, 0, 10, 10]], [0.9]), Poses(nan_kp))
        assert not events
    zero = np.zeros((1, 17, 3), np.float32)
    for f in range(40, 80):
        acts, events = rec.update(f, f / 25, Tracks([3], [[0, 0, 10, 10]], [0.9]), Poses(zero))
        assert np.isfinite(acts.fall_prob).all() or np.isnan(acts.fall_prob).all()
    # An ended track frees its window and closes nothing it did not open.
    _, events = rec.update(80, 80 / 25, Tracks.empty(ended=(1, 2, 3)), Poses(np.zeros((0, 17, 3))))
    assert len(rec.buffers) == 0


def test_buffers_evict_and_reset_after_a_gap():
    buf = TrackBuffers(SPEC)
    for f in range(30):
        buf.add(f / 25, np.array([1]), standing(f / 25)[None])
    assert buf.ready(1, 29 / 25)
    buf.add(10.0, np.array([1]), standing(10.0)[None])  # back after 8 s: a fresh window
    assert not buf.ready(1, 10.0)
    buf.forget([1])
    assert len(buf) == 0


def test_per_frame_normalisation_loses_the_drop():
    """Why windows are normalised as a whole: per-frame box coordinates hide the fall entirely."""
    times = np.arange(0, 2.0, 1 / 25)
    kps = np.stack([standing(t, drop=200 * min(1.0, max(0.0, t - 0.8) / 0.6)) for t in times])
    w = normalise(resample(times, kps, SPEC, end_time=times[-1]), "frame")
    hips_y = w[:, 11:13, 1].mean(1)
    assert abs(hips_y[-1] - hips_y[0]) < 0.02


def test_a_model_trained_on_other_windows_is_refused():
    from fallwatch.config import ConfigError

    with pytest.raises(ConfigError, match="steps"):
        FallRecognizer(_cfg(), _Scripted(), trained_window={"steps": 32, "rate_hz": 25.0})


def test_action_training_runs_resumes_and_loads(tmp_path):
    """A few steps on real Kaggle sequences: checkpoints written, a resume continues the epochs, the result loads."""
    from conftest import DATA

    from fallwatch.action.recognizer import load_stgcn
    from fallwatch.train.action import TrainSettings, load_kaggle, train

    seqs = load_kaggle(DATA / "skeletons" / "kaggle_real_fall_coco17" / "kaggle_real_fall_coco17.npz", 30.0)
    seqs = seqs[::40]
    from fallwatch.action.recognizer import window_spec

    spec = window_spec(load_config().action)
    settings = TrainSettings(widths=(8, 8), strides=(1, 2), epochs=1, windows_per_epoch=32, batch=16)
    out = tmp_path / "stgcn.pt"
    train(seqs, spec, settings, out, progress=False)
    again = train(seqs, spec, settings, out, resume=out.with_suffix(".last.pt"), progress=False)
    assert [h["epoch"] for h in again["history"]] == [1]  # nothing left to do: the resume is a no-op, not a restart
    model, _ = load_stgcn(out)
    assert sum(p.numel() for p in model.parameters()) == again["params"]


def test_drift_augmentation_moves_the_body_steadily_without_changing_its_shape():
    """The drift is a translation growing linearly over the window, the same for every joint: a walking person's
    path, not a change of posture."""
    from conftest import DATA

    from fallwatch.action.recognizer import window_spec
    from fallwatch.train.action import TrainSettings, augment_window, load_kaggle

    seq = load_kaggle(DATA / "skeletons" / "kaggle_real_fall_coco17" / "kaggle_real_fall_coco17.npz", 30.0)[0]
    spec = window_spec(load_config().action)
    window = normalise(resample(seq.times, seq.keypoints, spec, seq.times[-1]))
    window[..., 2] = 1.0  # every joint visible, so that dropout is the only thing that can hide one
    settings = TrainSettings(drift_prob=1.0, max_drift=1.5)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    drifted = augment_window(window, rng_a, settings)
    still = augment_window(window, rng_b, TrainSettings(drift_prob=0.0, max_drift=1.5))
    both = (drifted[..., 2] > 0) & (still[..., 2] > 0)
    shift = np.where(both[..., None], drifted[..., :2] - still[..., :2], np.nan)
    per_step = np.nanmean(shift, axis=1)  # (T, 2)
    assert np.nanmax(np.abs(shift - per_step[:, None])) < 1e-5  # all joints move together
    steps = np.diff(per_step, axis=0)
    assert np.allclose(steps, steps[0], atol=1e-5)  # at a constant speed
    assert 0 < np.linalg.norm(per_step[-1] - per_step[0]) <= 1.5 + 1e-6


def test_faller_continuity_sees_an_id_switch_mid_fall():
    from fallwatch.eval.falls import faller_continuity

    frames = np.arange(100)
    one = {"fps": 10.0, "frames": 100, "frame": frames, "id": np.ones(100, int)}
    assert faller_continuity(one, 40, 60) == (1.0, 1.0)
    switched = dict(one, id=np.where(frames < 50, 1, 2))  # a new id from frame 50: 30..49 vs 50..70
    span, seen = faller_continuity(switched, 40, 60)
    assert span == pytest.approx(21 / 41) and seen == pytest.approx(21 / 41)
    gappy = dict(one, frame=frames[frames % 2 == 0], id=np.ones(50, int))  # every other frame missed
    span, seen = faller_continuity(gappy, 40, 60)
    assert span == pytest.approx(41 / 41) and seen == pytest.approx(21 / 41)


def test_an_ensemble_checkpoint_averages_its_members_probabilities(tmp_path):
    """Two differently seeded networks merged: the recognizer's p(fall) is the mean of theirs; members trained on
    another window are refused."""
    from dataclasses import asdict

    from fallwatch.action.recognizer import load_stgcn, window_spec
    from fallwatch.errors import UsageError
    from fallwatch.train.ensemble import merge

    spec = STGCNSpec(widths=(8, 8), strides=(1, 2))
    window = asdict(window_spec(load_config().action))
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = STGCN(spec)
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_()  # non-trivial statistics so that members really differ in eval mode
        paths.append(tmp_path / f"m{seed}.pt")
        torch.save({"spec": asdict(spec), "state_dict": net.state_dict(), "window": window}, paths[-1])
    merge(paths, tmp_path / "ens.pt")
    x = np.random.default_rng(0).normal(size=(5, 50, 17, 3)).astype(np.float32)
    members = [FallRecognizer(_cfg(), load_stgcn(p)[0]).probabilities(x) for p in paths]
    ensemble = FallRecognizer(_cfg(), load_stgcn(tmp_path / "ens.pt")[0]).probabilities(x)
    assert np.abs(members[0] - members[1]).max() > 1e-3
    np.testing.assert_allclose(ensemble, (members[0] + members[1]) / 2, atol=1e-6)

    torch.save({"spec": asdict(spec), "state_dict": STGCN(spec).state_dict(), "window": {**window, "steps": 32}},
               tmp_path / "other.pt")
    with pytest.raises(UsageError, match="window"):
        merge([paths[0], tmp_path / "other.pt"], tmp_path / "bad.pt")
