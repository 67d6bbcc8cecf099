"""Decoding into reused buffers: never overwrite a frame anyone still holds, and stop allocating in a steady run."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
from conftest import DATA

from fallwatch.config import load_config
from fallwatch.io.framepool import FramePool, copy_into
from fallwatch.io.sources import ReaderSettings, _video_frames, open_source

CLIP = DATA / "videos" / "gmdcsa24" / "videos" / "S3_Fall_19.mp4"


def test_a_buffer_comes_back_only_when_nothing_holds_it():
    pool = FramePool(4)
    first = pool.take((8, 8, 3))
    second = pool.take((8, 8, 3))
    assert first is not second
    view = second[2:4]
    del second
    third = pool.take((8, 8, 3))  # `first` is held by name, `second` by a view: neither may come back
    assert third is not first and not np.shares_memory(third, view)
    del view, third
    again = pool.take((8, 8, 3))
    assert again is not first and pool.reused == 1


def test_the_pool_stays_bounded_and_follows_a_resolution_change():
    pool = FramePool(2)
    held = [pool.take((4, 4, 3)) for _ in range(5)]  # all in flight: three beyond the pool's room
    assert len(pool) == 2 and pool.allocated == 5
    del held
    wide = pool.take((4, 8, 3))
    assert wide.shape == (4, 8, 3) and len(pool) == 2
    assert pool.take((4, 8, 3)) is not wide  # still held by `wide`


def test_copy_into_reuses_a_canvas_of_the_same_size():
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    canvas = copy_into(None, image)
    assert canvas is not image and np.array_equal(canvas, image)
    assert copy_into(canvas, image + 1) is canvas and np.array_equal(canvas, image + 1)
    assert copy_into(canvas, np.zeros((2, 2, 3), np.uint8)).shape == (2, 2, 3)


def _digests(path) -> list[str]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            return out
        out.append(hashlib.sha1(image.tobytes()).hexdigest())


def test_a_real_clip_decodes_into_a_few_buffers_and_held_frames_stay_intact():
    """A consumer that keeps the last 6 frames (as the video writer's and evidence recorder's queues may): every
    frame still equals an independent decode when it leaves the window, and the reader allocated no more than the
    pool holds."""
    expected = _digests(CLIP)
    cap = cv2.VideoCapture(str(CLIP))
    ok, first = cap.read()
    pool = FramePool(8)
    window, seen = [], 0
    for frame in _video_frames(cap, first, 30.0, pool):
        window.append(frame)
        if len(window) > 6:
            old = window.pop(0)
            assert hashlib.sha1(old.image.tobytes()).hexdigest() == expected[old.index]
        seen += 1
    assert all(hashlib.sha1(f.image.tobytes()).hexdigest() == expected[f.index] for f in window)
    assert seen == len(expected) > 80
    assert pool.allocated <= 8 and pool.reused >= seen - 10


def test_the_reader_thread_delivers_every_frame_unchanged():
    """Through the background reader and its 32-frame queue, consumed slowly enough that the queue stays full."""
    expected = _digests(CLIP)
    with open_source(str(CLIP), ReaderSettings.from_config(load_config().run)) as source:
        got = [hashlib.sha1(f.image.tobytes()).hexdigest() for f in source]
    assert got == expected
