"""The run report: one self-contained HTML page per run (`fallwatch.report.build`)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

from fallwatch.report.build import ReportError, report_names, write_report
from fallwatch.types import Frame, FrameResult

__all__ = ["LiveReportSink", "ReportError", "report_names", "write_report"]

log = logging.getLogger(__name__)


class LiveReportSink:
    """For live sources: rebuilds the report on a background thread when a fall event closes, so the page is current
    without stalling the frame loop. A rebuild reads the whole run, so it is spaced: at most once per
    `min_interval_s`, and never more often than every 20 times its own last duration (a week-long run's rebuild
    takes longer); an event that closes in between is in the next rebuild, and the run's end always writes one.
    Each rebuild runs in a child process (`python -m fallwatch.report`), so its transients never fragment the live
    run's heap; the child has a session of its own, so a Ctrl-C meant for the run does not interrupt it midway."""

    def __init__(self, outdir: Path, name: str, min_interval_s: float = 60.0):
        self.outdir, self.name = outdir, name
        self.min_interval_s = min_interval_s
        self._thread: threading.Thread | None = None
        self._due = False
        self._last_start = -float("inf")
        self._last_took = 0.0

    def write(self, frame: Frame, result: FrameResult) -> None:
        if any(e.end_frame is not None for e in result.events):
            self._due = True
        now = time.monotonic()
        wait = max(self.min_interval_s, 20 * self._last_took)
        if self._due and now - self._last_start >= wait and not (self._thread and self._thread.is_alive()):
            self._due = False
            self._thread = threading.Thread(target=self._build, name="fallwatch-report", daemon=True)
            self._thread.start()

    def _build(self) -> None:
        # The spacing counts from when a rebuild really starts, not from when its thread was asked for: on a loaded
        # machine a thread can start late, and timing from the request would let the next rebuild follow it closely.
        t0 = self._last_start = time.monotonic()
        self._rebuild()
        self._last_took = time.monotonic() - t0

    def _rebuild(self) -> None:
        """A report is a convenience: a failed rebuild is logged, never raised into a live run."""
        try:
            done = subprocess.run([sys.executable, "-m", "fallwatch.report", str(self.outdir), self.name],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  start_new_session=True, check=False)
        except OSError as exc:
            log.warning("live report not rebuilt: %s", exc)
            return
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit {done.returncode}"]
            log.warning("live report not rebuilt: %s", lines[-1])

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
