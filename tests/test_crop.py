from __future__ import annotations

import numpy as np

from fallwatch.pose.crop import apply, center_size, crop_matrices, invert, warp_crops

OUT = (192, 256)


def test_fixed_aspect_and_padding():
    centre, size = center_size(np.array([[10, 20, 110, 60], [0, 0, 30, 200]]), 192 / 256, 1.25)
    assert np.allclose(centre, [[60, 40], [15, 100]])
    assert np.allclose(size[:, 0] / size[:, 1], 0.75)
    assert np.allclose(size, [[125, 125 / 0.75], [200 * 0.75 * 1.25, 250]])  # wide box grows in height


def test_round_trip_and_content():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[50, 40, 130, 200], [200, 150, 300, 200]], np.float64)
    centre, size = center_size(boxes, OUT[0] / OUT[1], 1.25)
    for angles in (None, np.array([30.0, -90.0])):
        m = crop_matrices(centre, size, OUT, angles)
        pts = rng.uniform([60, 60], [120, 180], (2, 5, 2))
        assert np.allclose(apply(invert(m), apply(m, pts)), pts, atol=1e-9)
        assert np.allclose(apply(m, centre[:, None]), [OUT[0] / 2, OUT[1] / 2])
    crops = warp_crops(image, crop_matrices(centre, size, OUT), OUT)
    assert crops.shape == (2, 256, 192, 3)
    # The crop pixel at the box centre shows the frame pixel at the box centre.
    cx, cy = centre[0].round().astype(int)
    assert np.abs(crops[0, 128, 96].astype(int) - image[cy, cx].astype(int)).max() <= 40


def test_boxes_outside_tiny_and_none():
    image = np.full((100, 100, 3), 200, np.uint8)
    boxes = np.array([[-50, -50, 20, 60], [500, 500, 600, 700], [40, 40, 41, 42]], np.float64)
    centre, size = center_size(boxes, 0.75, 1.25)
    m = crop_matrices(centre, size, OUT)
    crops = warp_crops(image, m, OUT)
    assert np.isfinite(m).all() and crops.shape[0] == 3
    assert crops[1].max() == 0  # wholly outside: all padding
    assert crops[0].max() == 200 and crops[0].min() == 0  # partly outside
    empty = warp_crops(image, crop_matrices(*center_size(np.zeros((0, 4)), 0.75, 1.25), OUT), OUT)
    assert empty.shape == (0, 256, 192, 3)
