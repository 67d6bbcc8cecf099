"""Alerts: each fall event's lifecycle — `new` when it opens, `update` when it changes (the person re-found under a
new id, the long-lie alert), `end` when it closes — sent as one JSON message per change to webhooks (POST),
commands (JSON on stdin) and MQTT topics, under one event id, the way Frigate NVR publishes its events.

Every receiver has its own background sender with a bounded queue, a timeout per attempt and retries with
doubling back-off, so a slow or dead receiver never stalls the frame loop; what became of every message
(`delivered`, `failed`, `dropped` when the queue was full, `pending` when the run ended first) is recorded per event
in `events.json`. The paths of the event's snapshot and clip (`fallwatch.io.evidence`) travel in the message.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass

from fallwatch.config import AlertConfig, ConfigError
from fallwatch.io.sinks import event_dict
from fallwatch.io.sources import redact
from fallwatch.types import FallEvent, Frame, FrameResult


@dataclass
class Delivery:
    receiver: str
    type: str  # new | update | end
    status: str = "pending"  # pending | delivered | failed | dropped
    attempts: int = 0
    error: str | None = None


class Receiver:
    """One receiver: a daemon thread that sends what is queued, each message with retries and back-off."""

    def __init__(self, name: str, send: Callable[[bytes], None], cfg: AlertConfig):
        self.name, self._send, self.cfg = name, send, cfg
        self._queue: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self._thread = threading.Thread(target=self._run, name=f"fallwatch-alert-{name[:20]}", daemon=True)
        self._thread.start()

    def offer(self, body: bytes, delivery: Delivery) -> None:
        try:
            self._queue.put_nowait((body, delivery))
        except queue.Full:
            delivery.status, delivery.error = "dropped", "queue full: the receiver is too slow"

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            body, delivery = item
            wait = self.cfg.backoff_s
            for attempt in range(self.cfg.retries + 1):
                delivery.attempts = attempt + 1
                try:
                    self._send(body)
                    delivery.status, delivery.error = "delivered", None
                    break
                except Exception as exc:  # any failure of a receiver is its own, recorded, never the run's
                    delivery.status, delivery.error = "failed", f"{type(exc).__name__}: {exc}"[:200]
                if attempt < self.cfg.retries:
                    time.sleep(wait)
                    wait *= 2

    def close(self, deadline: float) -> None:
        """Let the queue drain until `deadline` (monotonic seconds); what is left stays `pending`."""
        try:
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))


def webhook(url: str, timeout: float) -> Callable[[bytes], None]:
    def send(body: bytes) -> None:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's URL
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status}")

    return send


def command(cmd: str, timeout: float) -> Callable[[bytes], None]:
    def send(body: bytes) -> None:
        done = subprocess.run(cmd, shell=True, input=body, capture_output=True, timeout=timeout)  # noqa: S602
        if done.returncode != 0:
            raise OSError(f"exit status {done.returncode}: {done.stderr.decode(errors='replace').strip()[:120]}")

    return send


def mqtt(url: str, timeout: float) -> Callable[[bytes], None]:
    """mqtt://host[:port]/topic; one client per receiver, connected on first use and reconnected by paho."""
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise ConfigError('--alert-mqtt needs paho-mqtt: pip install "fallwatch[mqtt]"') from None
    parsed = urllib.parse.urlparse(url)
    topic = parsed.path.lstrip("/")
    if parsed.scheme != "mqtt" or not parsed.hostname or not topic:
        raise ConfigError(f"--alert-mqtt expects mqtt://host:port/topic, got {url!r}")
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fallwatch-{time.time_ns()}")
    state = {"connected": False}

    def send(body: bytes) -> None:
        if not state["connected"]:
            client.connect(parsed.hostname, parsed.port or 1883, keepalive=60)
            client.loop_start()
            state["connected"] = True
        info = client.publish(topic, body, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise OSError(f"not acknowledged by {parsed.hostname} within {timeout} s")

    return send


class AlertSink:
    """Turns the events of each frame into messages for every receiver; `status(event_id)` is what the events
    file records."""

    def __init__(self, cfg: AlertConfig, source: str, evidence=None):
        self.cfg, self.source, self.evidence = cfg, source, evidence  # evidence: where the snapshot and clip go
        self.receivers = [Receiver(f"webhook {redact(u)}", webhook(u, cfg.timeout_s), cfg) for u in cfg.webhooks]
        self.receivers += [Receiver(f"command {c}", command(c, cfg.timeout_s), cfg) for c in cfg.commands]
        self.receivers += [Receiver(f"mqtt {redact(u)}", mqtt(u, cfg.timeout_s), cfg) for u in cfg.mqtt]
        self._deliveries: dict[int, list[Delivery]] = {}

    def write(self, frame: Frame, result: FrameResult) -> None:
        self.record(result.events)

    def record(self, events: list[FallEvent] | tuple[FallEvent, ...]) -> None:
        for event in events:
            if event.end_frame is not None:
                kind = "end"
            elif event.event_id in self._deliveries:
                kind = "update"
            else:
                kind = "new"
            body = json.dumps(self.message(kind, event)).encode()
            for receiver in self.receivers:
                delivery = Delivery(receiver.name, kind)
                self._deliveries.setdefault(event.event_id, []).append(delivery)
                receiver.offer(body, delivery)

    def message(self, kind: str, event: FallEvent) -> dict:
        """The event as events.json has it, with the message type, the source and where its snapshot and clip are
        written (the clip within `output.clip_post_s` of the alarm)."""
        evidence = self.evidence
        return {"type": kind, "source": self.source, **event_dict(event),
                "snapshot": str(evidence.snapshot_path(event.event_id)) if evidence else None,
                "clip": str(evidence.clip_path(event.event_id)) if evidence else None}

    def status(self, event_id: int) -> list[dict]:
        return [asdict(d) for d in self._deliveries.get(event_id, [])]

    def close(self) -> None:
        """Give the receivers up to one full retry cycle to finish what is queued; never longer."""
        budget = (self.cfg.timeout_s + self.cfg.backoff_s) * (self.cfg.retries + 1)
        deadline = time.monotonic() + budget
        for receiver in self.receivers:
            receiver.close(deadline)
