"""DARK decoding against mmpose's reference numerics, and against plain argmax on known sub-pixel centres."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED

from fallwatch.pose.dark import decode_heatmaps, get_heatmap_maximum

REF = SHARED / "design" / "reference" / "dark_reference.npz"


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(REF))


def test_argmax_and_scores_are_exact(ref):
    xy, vals = get_heatmap_maximum(ref["heatmaps"])
    assert np.array_equal(xy, ref["argmax_xy"])
    assert np.array_equal(vals, ref["max_vals"])


@pytest.mark.parametrize("kernel", [11, 3])
def test_dark_matches_mmpose_reference(ref, kernel):
    coords, _ = decode_heatmaps(ref["heatmaps"], kernel=kernel)
    expected = ref[f"dark_k{kernel}"]
    stable = ref[f"stable_k{kernel}"]
    err = np.abs(coords - expected).max(axis=-1)
    assert err[stable].max() <= 1e-3, f"max error {err[stable].max():.2e} px"
    unrefined = np.all(expected == ref["argmax_xy"], axis=-1)  # outside the zone, invalid or singular
    assert np.array_equal(coords[unrefined], expected[unrefined])
    assert stable.sum() >= 0.99 * stable.size


def test_dark_beats_argmax_on_known_centres():
    rng = np.random.default_rng(0)
    n, h, w, sigma = 400, 64, 48, 2.0
    centres = rng.uniform([4, 4], [w - 5, h - 5], (n, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    maps = np.exp(-((xx[None] - centres[:, 0, None, None]) ** 2 + (yy[None] - centres[:, 1, None, None]) ** 2)
                  / (2 * sigma**2)).astype(np.float32)[:, None]  # (n, 1, H, W)
    argmax_xy, _ = decode_heatmaps(maps, dark=False)
    dark_xy, _ = decode_heatmaps(maps, kernel=11)
    err_argmax = np.linalg.norm(argmax_xy[:, 0] - centres, axis=1).mean()
    err_dark = np.linalg.norm(dark_xy[:, 0] - centres, axis=1).mean()
    assert err_dark * 3 <= err_argmax, (err_dark, err_argmax)


def test_bad_kernel():
    with pytest.raises(ValueError, match="odd"):
        decode_heatmaps(np.ones((1, 1, 8, 8), np.float32), kernel=4)
