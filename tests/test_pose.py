"""The pose stage on real images with the real MoveNet Thunder, the HRNet backend, and awkward input."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from conftest import DATA

from fallwatch.config import load_config
from fallwatch.errors import FallwatchError
from fallwatch.pose import crop
from fallwatch.pose.estimator import PoseEstimator, build_heatmap_model
from fallwatch.pose.onnx_heatmap import OnnxHeatmapModel
from fallwatch.types import LSP_TO_COCO, Tracks
from fallwatch.weights import resolve

LSP = DATA / "images" / "lspet_subset"
STUDENT_FLOOR = 0.38  # models/hrnet_fallwatch_s.pt as shipped: 0.432 on the first 100 held-out photos (Thunder 0.719)


def _cfg(*overrides):
    return load_config(overrides=list(overrides)).pose


@pytest.fixture(scope="module")
def thunder(weights_dir):
    cfg = _cfg()
    return PoseEstimator(cfg, build_heatmap_model(cfg, resolve("movenet-thunder").path, "cpu"))


def _upright_samples(n: int):
    with open(LSP / "joints.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["pose_group"] == "upright"][:n]
    for r in rows:
        joints = {k: (float(r[f"{k}_x"]), float(r[f"{k}_y"]), r[f"{k}_vis"] == "1") for k in LSP_TO_COCO}
        allv = [(float(r[f"{k}_x"]), float(r[f"{k}_y"])) for k in
                [c[:-4] for c in r if c.endswith("_vis")] if r[f"{k}_vis"] == "1"]
        yield cv2.imread(str(LSP / r["file"])), np.array(allv), joints


def test_keypoints_on_real_people_are_accurate(thunder):
    hits = total = 0
    for image, visible, joints in _upright_samples(40):
        box = np.r_[visible.min(0), visible.max(0)]
        kp = thunder.estimate(image, box[None])[0]
        size = max(box[2] - box[0], box[3] - box[1])
        for name, idx in LSP_TO_COCO.items():
            x, y, vis = joints[name]
            if vis:
                total += 1
                hits += np.hypot(kp[idx, 0] - x, kp[idx, 1] - y) <= 0.1 * size
    assert total > 300
    assert hits / total >= 0.7, hits / total  # measured 0.82 on the upright group (docs/benchmarks.md)


def test_crop_and_inverse_agree_with_movenets_own_keypoints(thunder, weights_dir):
    """Our heatmap -> DARK -> offset -> inverse affine chain against the model's own regression output."""
    full = ort.InferenceSession(str(resolve("movenet-thunder").path), providers=["CPUExecutionProvider"])
    errors = []
    for image, visible, _ in _upright_samples(20):
        box = np.r_[visible.min(0), visible.max(0)]
        ours = thunder.estimate(image, box[None])[0]
        centre, size = crop.center_size(box[None], 1.0, 1.25)
        m = crop.crop_matrices(centre, size, (256, 256))
        patch = crop.warp_crops(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), m, (256, 256))
        ref = full.run(["Identity:0"], {"input:0": patch.astype(np.int32)})[0][0, 0]  # y, x, score in [0, 1]
        ref_xy = crop.apply(crop.invert(m), (ref[:, [1, 0]] * 256)[None])[0]
        good = ref[:, 2] > 0.3
        errors.append((ours[good, :2] - ref_xy[good]) / (size[0, 0] / 256))  # in crop pixels
    err = np.concatenate(errors)
    assert np.abs(np.median(err, axis=0)).max() < 0.75  # unbiased
    assert np.median(np.linalg.norm(err, axis=1)) < 3.0


def test_batched_equals_one_by_one(thunder, weights_dir):
    image = cv2.imread(str(LSP / "images" / "im00004.jpg"))
    boxes = np.array([[10, 60, 130, 190], [30, 70, 110, 180], [0, 0, 60, 60]], np.float64)
    together = thunder.estimate(image, boxes)
    one_cfg = _cfg("pose.batch=1")
    single = PoseEstimator(one_cfg, thunder.model).estimate(image, boxes)
    assert np.allclose(together, single, atol=1e-3, equal_nan=True)


def test_awkward_boxes(thunder):
    image = np.full((120, 160, 3), 90, np.uint8)
    boxes = np.array([[-100, -100, -50, -20], [150, 100, 400, 300], [80, 60, 82, 61]], np.float64)
    kp = thunder.estimate(image, boxes)
    assert kp.shape == (3, 17, 3) and np.isfinite(kp[:, :, 2]).all()
    assert thunder.estimate(image, np.zeros((0, 4))).shape == (0, 17, 3)
    poses = thunder(image, Tracks.empty())
    assert len(poses) == 0


def test_flip_test_and_smoothing_run(weights_dir):
    cfg = _cfg("pose.flip_test=true", "pose.smoothing=true")
    est = PoseEstimator(cfg, build_heatmap_model(cfg, resolve("movenet-lightning").path, "cpu"))
    image = cv2.imread(str(LSP / "images" / "im00004.jpg"))
    tracks = Tracks([7], [[10, 60, 130, 190]], [0.9])
    a = est(image, tracks, 0.0).keypoints
    b = est(image, tracks, 0.04).keypoints
    assert np.allclose(a, b, atol=1e-3, equal_nan=True)  # same image: the smoother holds still
    est(image, Tracks.empty(ended=(7,)), 0.08)
    assert 7 not in est.smoother._state


def test_hrnet_backend_runs_a_checkpoint(tmp_path):
    from conftest import SHARED

    cfg = _cfg("pose.hrnet_width=8")
    model = build_heatmap_model(cfg, SHARED / "design" / "reference" / "hrnet_tiny_state_dict.pt", "cpu")
    kp = PoseEstimator(cfg, model).estimate(np.zeros((100, 100, 3), np.uint8), np.array([[10, 10, 60, 90]]))
    assert kp.shape == (1, 17, 3) and np.isfinite(kp[..., 2]).all()
    assert np.array_equal(np.isnan(kp[..., 0]), kp[..., 2] == 0)  # a joint without evidence has no position


def test_hrnet_runs_the_same_through_onnxruntime_and_torch():
    """pose.hrnet_runtime: the shipped student exported to ONNX at load (the default on a CPU) gives torch's keypoints
    on real people — one crop and three in one batch — so the faster runtime changes nothing."""
    estimators = {}
    for runtime in ("auto", "torch"):
        cfg = _cfg("pose.model=hrnet-fallwatch-s", f"pose.hrnet_runtime={runtime}")
        estimator = PoseEstimator(cfg, build_heatmap_model(cfg, resolve(cfg.model).path, "cpu"))
        estimators[estimator.model.runtime] = estimator
    assert set(estimators) == {"onnxruntime", "torch"}  # auto on a CPU is ONNX Runtime
    confident = []
    for image, visible, _ in _upright_samples(5):
        box = np.r_[visible.min(0), visible.max(0)]
        boxes = np.stack([box, box + [-20, -10, 15, 10], box + [10, 5, -10, 0]])  # a batch of three crops
        for batch in (boxes[:1], boxes):
            fast, slow = (estimators[k].estimate(image, batch) for k in ("onnxruntime", "torch"))
            np.testing.assert_allclose(fast[..., :2], slow[..., :2], atol=1e-3)
            np.testing.assert_allclose(fast[..., 2], slow[..., 2], atol=1e-5)
            confident.append((fast[..., 2] > 0.2).mean())
        np.testing.assert_allclose(fast[0], estimators["onnxruntime"].estimate(image, boxes[:1])[0], atol=1e-3)
    assert np.mean(confident) > 0.5, confident  # real people: mostly confident joints
    with pytest.raises(FallwatchError, match="hrnet_runtime"):
        _cfg("pose.hrnet_runtime=tensorrt")


def test_onnx_without_heatmaps_is_refused(weights_dir):
    with pytest.raises(FallwatchError, match="heatmaps"):
        OnnxHeatmapModel(weights_dir / "yolox-nano-coco" / "yolox_nano.onnx")


def _heldout_pck(estimator, n: int) -> dict[str, float]:
    """PCK@0.1 of the box against the human labels on the first `n` LSPET photos the shipped student never
    trained on (`fallwatch train pose --val-every 5`), per pose group."""
    from fallwatch.train.pose_data import lspet_items

    hits: dict[str, list[bool]] = {}
    photos = [item for item in lspet_items(LSP, 5) if item[1] == "val"][:n]
    for path, _, group, box, labels in photos:
        kp = estimator.estimate(cv2.imread(str(path)), box[None])[0]
        size = max(box[2] - box[0], box[3] - box[1])
        visible = labels[:, 2] > 0
        ok = np.hypot(*(kp[visible, :2] - labels[visible, :2]).T) <= 0.1 * size
        for key in (group, "all"):
            hits.setdefault(key, []).extend(ok.tolist())
    return {k: float(np.mean(v)) for k, v in hits.items()}


def test_shipped_student_runs_offline_and_holds_its_measured_accuracy(thunder):
    """The distilled HRNet in models/ loads by name with its own architecture and input size, and on held-out photos
    (many bodies horizontal or upside down) keeps the accuracy measured when it was shipped: 0.40 PCK@0.1 on all 398
    held-out photos against Thunder's 0.72 (docs/benchmarks.md) — a regression guard, not the issue's target."""
    cfg = _cfg("pose.model=hrnet-fallwatch-s")
    student = PoseEstimator(cfg, build_heatmap_model(cfg, resolve(cfg.model).path, "cpu"))
    assert student.model.input_size == (144, 192)
    ours, teacher = _heldout_pck(student, 100), _heldout_pck(thunder, 100)
    assert ours["all"] >= STUDENT_FLOOR, (ours, teacher)
    assert teacher["all"] > ours["all"]


def test_bundled_thunder_equals_the_original(thunder, weights_dir):
    """models/ ships Thunder with its weights stored as float16 (restored to float32 at load): on 40 real person
    crops its keypoints equal those of the original float32 file in ../shared/weights to 0.1 px."""
    from fallwatch.weights import models_dir

    cfg = _cfg()
    bundled_path = models_dir() / "movenet_singlepose_thunder.onnx"
    original_path = weights_dir / "movenet-singlepose" / "movenet_singlepose_thunder.onnx"
    assert bundled_path.stat().st_size < 0.55 * original_path.stat().st_size  # float16 storage halves the file
    bundled = PoseEstimator(cfg, build_heatmap_model(cfg, bundled_path, "cpu"))
    original = PoseEstimator(cfg, build_heatmap_model(cfg, original_path, "cpu"))
    crops = 0
    for image, visible, _ in _upright_samples(40):
        box = np.r_[visible.min(0), visible.max(0)][None]
        a, b = bundled.estimate(image, box), original.estimate(image, box)
        assert np.abs(a[..., :2] - b[..., :2]).max() <= 0.1
        assert np.abs(a[..., 2] - b[..., 2]).max() <= 1e-4
        crops += 1
    assert crops == 40


def test_small_people_go_to_the_small_model(thunder):
    """With pose.small_model, a person whose crop is at most small_max_px tall gets the small model's keypoints,
    a larger one the main model's — in one call, rows kept in order."""
    cfg = _cfg("pose.small_model=movenet-lightning", "pose.small_max_px=192")
    lightning = build_heatmap_model(cfg, resolve("movenet-lightning").path, "cpu")
    mixed = PoseEstimator(cfg, thunder.model, lightning)
    only_small = PoseEstimator(cfg, lightning)
    cap = cv2.VideoCapture(str(DATA / "mot" / "TUD-Stadtmitte" / "TUD-Stadtmitte.mp4"))
    ok, image = cap.read()
    assert ok
    # a person 120 px tall (crop 150 px: small) and one 240 px tall (crop 300 px: large), then small again
    boxes = np.array([[360, 100, 410, 220], [300, 80, 400, 320], [100, 150, 140, 250]], np.float64)
    got = mixed.estimate(image, boxes)
    np.testing.assert_array_equal(got[[0, 2]], only_small.estimate(image, boxes[[0, 2]]))
    np.testing.assert_array_equal(got[1], thunder.estimate(image, boxes[1:2])[0])
    assert not np.array_equal(got[0], thunder.estimate(image, boxes[:1])[0])


def test_flip_test_is_unbiased_for_movenet(thunder):
    """MoveNet's heatmap cell i covers input pixels [4i, 4i + 4), so a mirrored crop's map is exactly the mirror of
    the map: flip-test averaging must not shift it (mmpose's one-cell shift is for HRNet's cell-at-4i layout and moves
    MoveNet's joints ~1.3 input px right on these photos). On 40 real LSPET photos: the mean horizontal offset of the
    flip-averaged joints from the plain ones stays under 0.8 input px, and PCK does not drop."""
    from dataclasses import replace

    from fallwatch.train.pose_data import lspet_items

    flipped = PoseEstimator(replace(thunder.cfg, flip_test=True), thunder.model)
    items = list(lspet_items(LSP, 5))[:40]
    dx, hits_plain, hits_flip = [], [], []
    for path, _, _, box, labels in items:
        image = cv2.imread(str(path))
        plain, both = thunder.estimate(image, box[None])[0], flipped.estimate(image, box[None])[0]
        size = max(box[2] - box[0], box[3] - box[1])
        confident = plain[:, 2] > 0.3
        to_input_px = thunder.model.input_size[0] / (size * thunder.cfg.padding)
        dx.extend(((both[confident, 0] - plain[confident, 0]) * to_input_px).tolist())
        visible = labels[:, 2] > 0
        for kp, hits in ((plain, hits_plain), (both, hits_flip)):
            hits.extend((np.hypot(*(kp[visible, :2] - labels[visible, :2]).T) <= 0.1 * size).tolist())
    assert abs(np.mean(dx)) < 0.8, np.mean(dx)
    assert np.mean(hits_flip) >= np.mean(hits_plain) - 0.01
