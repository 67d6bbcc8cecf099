"""A real RTSP server for the live-source tests: GStreamer's RTSP server (Debian: gstreamer1.0-rtsp,
gir1.2-gst-rtsp-server-1.0, python3-gi, the base/good/ugly plugins) serving a video file in a loop, re-encoded to
H.264 at its own frame rate. Run with the system Python that has `gi`:

    /usr/bin/python3 tests/rtsp_server.py VIDEO PORT [MOUNT]

VIDEO may also be an image (png, jpg): it is then served as a still scene at 10 fps.

It prints `ready rtsp://127.0.0.1:PORT/MOUNT` once it listens, and serves until killed.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    video, port = sys.argv[1], sys.argv[2]
    mount = "/" + (sys.argv[3] if len(sys.argv) > 3 else "live")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # One pipeline shared by every client; the file loops (EOS -> seek to 0) so the stream never ends by itself.
    if video.lower().endswith((".png", ".jpg", ".jpeg")):  # a real frame held still: a camera on a still scene
        source = (f'filesrc location="{video}" ! decodebin ! imagefreeze ! '
                  "video/x-raw,framerate=10/1 ! videoconvert")
    else:
        source = f'filesrc location="{video}" ! decodebin ! videoconvert ! videorate'
    factory.set_launch(f"( {source} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! "
                       "rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    factory.connect("media-configure", _loop_on_eos)
    server.get_mount_points().add_factory(mount, factory)
    server.attach(None)
    print(f"ready rtsp://127.0.0.1:{port}{mount}", flush=True)
    GLib.MainLoop().run()


def _loop_on_eos(factory, media) -> None:
    pipeline = media.get_element()
    bus = pipeline.get_bus() if hasattr(pipeline, "get_bus") else None
    if bus is None:
        return
    bus.add_signal_watch()

    def on_message(_bus, message):
        if message.type == Gst.MessageType.EOS:
            pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)

    bus.connect("message", on_message)


if __name__ == "__main__":
    main()
