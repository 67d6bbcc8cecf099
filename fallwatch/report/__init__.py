"""The run report: one self-contained HTML page per run (`fallwatch.report.build`)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from fallwatch.report.build import ReportError, report_names, write_report
from fallwatch.types import Frame, FrameResult

__all__ = ["LiveReportSink", "ReportError", "report_names", "write_report"]


class LiveReportSink:
    """For live sources: rebuilds the report on a background thread whenever a fall event closes, so the page is
    current without stalling the frame loop (a rebuild still running when the next event closes is not doubled)."""

    def __init__(self, outdir: Path, name: str):
        self.outdir, self.name = outdir, name
        self._thread: threading.Thread | None = None

    def write(self, frame: Frame, result: FrameResult) -> None:
        if any(e.end_frame is not None for e in result.events) and not (self._thread and self._thread.is_alive()):
            self._thread = threading.Thread(target=self._build, name="fallwatch-report", daemon=True)
            self._thread.start()

    def _build(self) -> None:
        with contextlib.suppress(Exception):  # a report is a convenience: it never takes a live run down
            write_report(self.outdir, self.name)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
