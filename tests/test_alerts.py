"""Alerts reach someone: each fall event's new / update / end messages, under one event id, to a real webhook, a
command and a real MQTT broker (Debian's mosquitto); dead and slow receivers never stall the run and their fate is
recorded in events.json."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
from conftest import DATA, free_port, needs, read_jsonl, run_cli, webhook_receiver

MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)


def test_webhook_and_command_get_the_event_lifecycle(fall_run):
    (event,) = [e for e in fall_run["events"] if e["long_lie_time"] is not None]
    for received in (fall_run["webhook"], fall_run["command"]):
        mine = [m for m in received if m["event_id"] == event["event_id"]]
        assert [m["type"] for m in mine] == ["new", "update", "end"]  # opened, long lie, end of input
        assert mine[0]["id"] == event["id"] and mine[0]["alarm_time"] == event["alarm_time"]
        assert mine[1]["long_lie_time"] == event["long_lie_time"] and mine[2]["end_reason"] == "end_of_input"
        assert mine[0]["snapshot"] and os.path.getsize(mine[0]["snapshot"]) > 1000  # the alarm frame, saved
    statuses = {(a["receiver"].split()[0], a["type"]): a["status"] for a in event["alerts"]}
    assert set(statuses.values()) == {"delivered"} and len(statuses) == 6


@pytest.fixture()
def broker():
    needs(MOSQUITTO is not None, "mosquitto (the MQTT broker)")
    port = free_port()
    proc = subprocess.Popen([MOSQUITTO, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


def test_mqtt_dead_slow_and_late_receivers(broker, tmp_path):
    """Four receivers on one run: MQTT (a real broker), a dead webhook, a slow one (answers after the timeout) and
    one that is down when the fall is detected and comes up a second later - it gets every message once."""
    import paho.mqtt.client as paho

    received, subscribed = [], threading.Event()
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda client, data, msg: received.append(json.loads(msg.payload))
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect("127.0.0.1", broker)
    sub.subscribe("fallwatch/#", qos=1)
    sub.loop_start()
    assert subscribed.wait(10)
    clip = DATA / "videos" / "gmdcsa24" / "videos" / "S3_Fall_19.mp4"
    late_port, late = free_port(), {}

    def come_up_after_the_alarm():
        snapshot = tmp_path / "S3_Fall_19.event1.jpg"
        while not snapshot.exists():
            time.sleep(0.05)
        time.sleep(1.0)
        with webhook_receiver(port=late_port) as (_, received):
            late["received"] = received
            while not late.get("stop"):
                time.sleep(0.1)

    waiter = threading.Thread(target=come_up_after_the_alarm, daemon=True)
    waiter.start()
    with webhook_receiver(delay=3.0) as (slow, _):
        t0 = time.perf_counter()
        proc = run_cli("run", str(clip), "-o", str(tmp_path), "--no-progress", "--no-video", "--max-frames", "60",
                       "--alert-mqtt", f"mqtt://127.0.0.1:{broker}/fallwatch/events",
                       "--alert-webhook", "http://127.0.0.1:9/dead",  # discard port: connection refused
                       "--alert-webhook", slow, "--alert-webhook", f"http://127.0.0.1:{late_port}/late",
                       "--set", "alerts.timeout_s=1", "--set", "alerts.retries=3", "--set", "alerts.backoff_s=0.5",
                       "--set", "output.clip_pre_s=1", "--set", "output.clip_post_s=1")
        took = time.perf_counter() - t0
    late["stop"] = True
    waiter.join(10)
    sub.loop_stop()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "S3_Fall_19.summary.json").read_text())
    assert summary["timing_ms"]["write"] < 50  # the frame loop never waited for a receiver
    assert took < summary["wall_s"] + 30  # closing waits one bounded retry cycle at most
    (event,) = json.loads((tmp_path / "S3_Fall_19.events.json").read_text())["events"]
    mqtt = [a for a in event["alerts"] if a["receiver"].startswith("mqtt")]
    dead = [a for a in event["alerts"] if a["receiver"].endswith("/dead")]
    slow_ = [a for a in event["alerts"] if a["receiver"].endswith("/fall")]
    assert [a["type"] for a in mqtt] == ["new", "end"] and {a["status"] for a in mqtt} == {"delivered"}
    assert {a["status"] for a in dead} == {"failed"} and {a["attempts"] for a in dead} == {4}
    came_back = [a for a in event["alerts"] if a["receiver"].endswith("/late")]
    assert [(a["type"], a["status"]) for a in came_back] == [("new", "delivered"), ("end", "delivered")]
    assert came_back[0]["attempts"] >= 2  # it was down when the alarm was raised
    assert [m["type"] for m in late["received"]] == ["new", "end"]  # each message once
    assert {a["status"] for a in slow_} <= {"failed", "pending"} and all("timed out" in (a["error"] or "") or
                                                                        a["status"] == "pending" for a in slow_)
    assert [m["type"] for m in received if m["event_id"] == event["event_id"]] == ["new", "end"]
    # the event's clip: 1 s (15 frames at 14.985 fps) before the alarm to the first frame 1 s after it
    lines = read_jsonl(tmp_path / "S3_Fall_19.frames.jsonl")
    end = next(d["frame"] for d in lines if d["time"] >= event["alarm_time"] + 1.0)
    assert (event["clip_start_frame"], event["clip_end_frame"]) == (event["alarm_frame"] - 14, end)
    assert received[0]["clip"] == event["clip"] and received[0]["snapshot"] == event["snapshot"]
