"""`OUTDIR/<name>.report.html` from the files a run wrote (summary, events, frames.jsonl, the annotated video): one
self-contained page — styles, charts and snapshots inline, no script, no network — that a carer can open to look
rather than read JSON. Built at the end of a run and by `fallwatch report OUTDIR`; light for long runs (p(fall)
downsampled to bucket maxima, people without an event folded away, at most `MAX_CARDS` snapshots)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from html import escape
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fallwatch.errors import FallwatchError
from fallwatch.io.rotation import base_name, segment_files
from fallwatch.report import svg

BUCKETS = 600  # points per person on the timeline, whatever the run's length
MAX_CARDS = 100  # events with a snapshot; the rest are listed in a table
SNAPSHOT_WIDTH = 360


class ReportError(FallwatchError):
    """A folder without the files a report is built from."""


def report_names(outdir: Path) -> list[str]:
    """The runs in `outdir` that a report can be built for (those with a frames.jsonl)."""
    if not outdir.is_dir():
        raise ReportError(f"not a folder: {outdir}")
    names = sorted({base_name(p.name[: -len(".frames.jsonl")]) for p in outdir.glob("*.frames.jsonl")})
    if not names:
        raise ReportError(f"no <name>.frames.jsonl in {outdir}: nothing to report")
    return names


def write_report(outdir: Path, name: str, live: bool = False) -> Path:
    """Build `<name>.report.html` in `outdir`, atomically; returns its path. `live`: the run is still writing its
    last video segment, which has no index yet and is never read."""
    summary = _read_json(outdir / f"{name}.summary.json") or {}
    events = (_read_json(outdir / f"{name}.events.json") or {}).get("events", [])
    series, duration, people = _series([p for _, p in segment_files(outdir, name, ".frames.jsonl")])
    html = render(name, summary, events, series, duration, people, _snapshots(outdir, name, summary, events, live))
    path = outdir / f"{name}.report.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _series(paths: list[Path]) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], float, int]:
    """Per person id: (times, p(fall)) where known, at most one point per time bucket (its maximum: a fall
    detector's peaks must survive); the run's duration; how many ids were seen — over every segment of the run's
    frames.jsonl, in one pass after a look at the last line, in memory that does not grow with the run's length."""
    if not paths:
        raise ReportError("no frames.jsonl to build a report from")
    duration = max(_last_time(paths), 1e-3)
    best: dict[int, np.ndarray] = {}  # id -> (BUCKETS, 2): time and p(fall) of each bucket's maximum
    seen: set[int] = set()
    end = 0.0
    for frame in _frames(paths):
        t = frame.get("time") or 0.0
        end = max(end, t)
        bucket = min(int(t / duration * BUCKETS), BUCKETS - 1)
        for person in frame["persons"]:
            pid = person.get("id")
            if pid is None:
                continue
            seen.add(pid)
            p = person.get("fall_prob")
            if p is None:
                continue
            rows = best.get(pid)
            if rows is None:
                rows = best[pid] = np.full((BUCKETS, 2), -np.inf)
            if p > rows[bucket, 1]:
                rows[bucket] = (t, p)
    series = {pid: (rows[np.isfinite(rows[:, 1]), 0], rows[np.isfinite(rows[:, 1]), 1]) for pid, rows in best.items()}
    return series, end, len(seen)


def _last_time(paths: list[Path]) -> float:
    """The time of the last complete line of the last segment that has one (read from the file's end)."""
    for path in reversed(paths):
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            tail = fh.read().split(b"\n")
        for line in reversed(tail):
            with contextlib.suppress(ValueError):
                return float(json.loads(line).get("time") or 0.0)
    return 0.0


def _frames(paths: list[Path]):
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except ValueError:  # a run killed mid-line: keep every complete frame
                    continue


def _alarm_image(event: dict, videos: list[tuple[int, Path]], live: bool) -> np.ndarray | None:
    """The event's own snapshot (written at the alarm: also there while a live run's video is still open; a live
    report rebuilt before the evidence worker wrote it shows the card without an image, and the next rebuild has
    it), else, for runs without evidence, the alarm frame from the video segment that holds it — never, in a live
    run, from the last segment, which is still being written (no index yet)."""
    snapshot = event.get("snapshot")
    if snapshot:  # promised: a live run's video segment is still open (no index yet), so never read it instead
        return cv2.imread(snapshot) if Path(snapshot).is_file() else None
    held = [(s, p) for s, p in videos if s <= event["alarm_frame"]]
    if not held or (live and held[-1] == videos[-1]):
        return None
    start, video = held[-1]
    cap = cv2.VideoCapture(str(video))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, event["alarm_frame"] - start)
        ok, image = cap.read()
    finally:
        cap.release()
    return image if ok else None


def _snapshots(outdir: Path, name: str, summary: dict, events: list[dict], live: bool) -> dict[int, str]:
    """event_id -> JPEG data URI of the alarm frame: the event's snapshot, or the annotated video's segment that
    holds it (or the input file)."""
    videos = segment_files(outdir, name, ".mp4")
    source = Path(summary.get("input", {}).get("path", ""))
    if not videos and source.is_file():
        videos = [(0, source)]
    shots = {}
    for event in events[:MAX_CARDS]:
        image = _alarm_image(event, videos, live)
        if image is None:
            continue
        scale = SNAPSHOT_WIDTH / image.shape[1]
        image = cv2.resize(image, (SNAPSHOT_WIDTH, max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            shots[event["event_id"]] = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()
    return shots


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:960px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table.numbers td{padding:2px 14px 2px 0}table.numbers td:first-child{color:#666}
.status-complete{color:#2a7}.status-interrupted,.status-failed{color:#c33}
.cards{display:flex;flex-wrap:wrap;gap:14px}.card{border:1px solid #ddd;border-radius:6px;width:360px;
overflow:hidden}.card img{display:block;width:360px}.card .facts{padding:8px 10px}.card h3{margin:0 0 4px;
font-size:15px;color:#c22}.key{border-left:12px solid;padding-left:4px;margin-right:10px}
.muted{color:#777}table.list td,table.list th{padding:2px 10px 2px 0;text-align:left}
"""


def render(name: str, summary: dict, events: list[dict], series: dict, duration: float, people: int,
           snapshots: dict[int, str]) -> str:
    action = summary.get("config", {}).get("action", {})
    on, off = action.get("on_threshold", 0.7), action.get("off_threshold", 0.4)
    with_event = {t for e in events for t in e.get("track_ids") or [e["id"]]}
    spans = [(e["alarm_time"], e["end_time"] if e["end_time"] is not None else duration,
              f"event {e['event_id']}: person #{e['id']}") for e in events]
    shown = {pid: s for pid, s in series.items() if pid in with_event}
    others = {pid: s for pid, s in series.items() if pid not in with_event}
    body = [f"<h1>fallwatch report: {escape(name)}</h1>", _numbers(summary, events, duration, people),
            "<h2>Fall probability over time</h2>"]
    if shown or not others:
        body.append(svg.timeline(shown, duration, on, off, spans))
        body.append(f"<p>{svg.legend(list(shown))}<span class='muted'>shaded: fall events, from the alarm to "
                    "the end</span></p>")
    if others:
        who = "person" if len(others) == 1 else "people"
        body.append(f"<details><summary>{len(others)} {who} without a fall event</summary>"
                    f"{svg.timeline(others, duration, on, off, spans, grey=True)}</details>")
    body.append(f"<h2>Fall events ({len(events)})</h2>")
    body.append(_cards(events, snapshots) if events else "<p class='muted'>No fall was detected.</p>")
    body.append("<h2>Time per stage (mean per frame)</h2>")
    body.append(svg.bars({k: v for k, v in summary.get("timing_ms", {}).items() if v > 0}) or "<p>n/a</p>")
    body.append(_models(summary))
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>fallwatch: {escape(name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def _numbers(summary: dict, events: list[dict], duration: float, people: int) -> str:
    info = summary.get("input", {})
    status = summary.get("status", "running")
    rows: list[tuple[str, Any]] = [
        ("input", escape(str(info.get("path", "?")))),
        ("status", f"<span class='status-{escape(status)}'>{escape(status)}</span>"),
        ("duration", svg.clock(duration)),
        ("frames", info.get("frames", "?")),
        ("size", f"{info.get('width', '?')} × {info.get('height', '?')} at {info.get('fps', '?')} fps"),
        ("people (track ids)", people),
        ("fall events", len(events)),
        ("long lies", sum(e.get("long_lie_time") is not None for e in events)),
        ("throughput", f"{summary['throughput_fps']:.1f} frames/s" if summary.get("throughput_fps") else "?"),
        ("device", escape(str(summary.get("device", "?")))),
    ]
    cells = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='numbers'>{cells}</table>"


def _cards(events: list[dict], snapshots: dict[int, str]) -> str:
    cards, rest = [], []
    for e in events:
        end = e.get("end_time")
        lasted = f"{end - e['alarm_time']:.1f} s" if end is not None else "open"
        facts = (f"<b>alarm</b> {svg.clock(e['alarm_time'])} (frame {e['alarm_frame']}) · <b>lasted</b> {lasted}"
                 f"<br><b>peak p(fall)</b> {e['peak_prob']:.2f} · <b>ended</b> {escape(str(e.get('end_reason')))}"
                 f"<br><b>down</b> {e['down_s'] if e.get('down_s') is not None else '–'} s"
                 + (f" · <b>long lie</b> at {svg.clock(e['long_lie_time'])}" if e.get("long_lie_time") else "")
                 + f"<br><span class='muted'>track ids {', '.join(f'#{t}' for t in e.get('track_ids', []))}</span>")
        shot = snapshots.get(e["event_id"])
        if shot is None and len(cards) >= MAX_CARDS:
            rest.append(f"<tr><td>{e['event_id']}</td><td>#{e['id']}</td><td>{svg.clock(e['alarm_time'])}</td>"
                        f"<td>{lasted}</td><td>{e['peak_prob']:.2f}</td></tr>")
            continue
        image = f"<img src='{shot}' alt='frame {e['alarm_frame']}'>" if shot else ""
        if e.get("clip"):  # the event's clip beside the report (output.clips)
            facts += f"<br><a class='clip' href='{escape(Path(e['clip']).name)}'>the fall, as a clip</a>"
        cards.append(f"<div class='card event-card' data-event='{e['event_id']}'>{image}<div class='facts'>"
                     f"<h3>Fall of person #{e['id']}</h3>{facts}</div></div>")
    html = f"<div class='cards'>{''.join(cards)}</div>"
    if rest:
        html += ("<table class='list'><tr><th>event</th><th>person</th><th>alarm</th><th>lasted</th><th>peak</th>"
                 f"</tr>{''.join(rest)}</table>")
    return html


def _models(summary: dict) -> str:
    models = summary.get("models", {})
    if not models:
        return ""
    rows = "".join(f"<tr><td>{escape(stage)}</td><td>{escape(m['name'])}</td><td>{escape(m.get('found_in', ''))}"
                   f"</td><td class='muted'>{m['sha256'][:12]}…</td></tr>" for stage, m in models.items())
    return f"<h2>Models</h2><table class='list'><tr><th>stage</th><th>model</th><th>from</th><th>sha256</th></tr>" \
           f"{rows}</table>"
