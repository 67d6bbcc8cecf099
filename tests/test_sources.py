from __future__ import annotations

import time

import numpy as np
from conftest import TUD_CAMPUS

from fallwatch.config import load_config
from fallwatch.io.sources import FrameSource, ReaderSettings, SourceInfo, open_source
from fallwatch.types import Frame

SETTINGS = ReaderSettings.from_config(load_config().run)


def _burst(n: int):
    image = np.zeros((8, 8, 3), np.uint8)
    for i in range(n):
        yield Frame(i, i / 100.0, image)


def _info(live: bool) -> SourceInfo:
    return SourceInfo("fake", "fake", "stream" if live else "file", 100.0, 8, 8, None if live else 200, live)


def test_live_source_drops_stale_frames_instead_of_lagging():
    with FrameSource(_info(True), _burst(200), SETTINGS) as src:
        seen = []
        for frame in src:
            seen.append(frame.index)
            time.sleep(0.005)  # a consumer slower than the camera
    assert src.dropped > 0
    assert seen[-1] == 199  # the newest frame always arrives
    assert seen == sorted(seen) and len(seen) < 200


def test_file_source_never_drops():
    with FrameSource(_info(False), _burst(200), SETTINGS) as src:
        seen = [f.index for f in src]
    assert seen == list(range(200)) and src.dropped == 0


def test_video_file_timestamps_and_counts():
    with open_source(str(TUD_CAMPUS / "TUD-Campus.mp4"), SETTINGS) as src:
        assert src.info.fps == 25.0 and src.info.frame_count == 71
        frames = list(src)
    assert len(frames) == 71
    times = np.array([f.time for f in frames])
    assert np.allclose(times, np.arange(71) / 25.0, atol=1e-3)


def test_close_mid_stream_stops_the_reader():
    src = open_source(str(TUD_CAMPUS / "TUD-Campus.mp4"), SETTINGS)
    it = iter(src)
    next(it)
    src.close()
    assert not src._thread.is_alive()


def test_credentials_are_masked_wherever_a_url_is_shown():
    from fallwatch.io.sources import _stream_name, redact

    assert redact("rtsp://admin:hunter2@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert redact("https://hooks.example/x?token=abc&room=3") == "https://hooks.example/x?token=***&room=3"
    assert redact("http://h/p?sig=1&a=b&apikey=zz") == "http://h/p?sig=***&a=b&apikey=***"
    assert redact("rtsp://cam.local/live") == "rtsp://cam.local/live" and redact("/videos/a.mp4") == "/videos/a.mp4"
    assert "hunter2" not in _stream_name("rtsp://admin:hunter2@10.0.0.5:554/stream1")
