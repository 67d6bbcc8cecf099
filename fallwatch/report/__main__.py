"""`python -m fallwatch.report OUTDIR NAME`: build the report of a live run, still running, in a process of its own.

A live run's report sink starts this rather than building in its own process: a rebuild parses the whole run and
assembles a page that grows with it, and those transients, freed between frames of a days-long run, fragmented the
run's heap (docs/benchmarks.md, "Live runs for days"). In a child process they are returned whole when it exits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fallwatch.report.build import write_report

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m fallwatch.report OUTDIR NAME")
    write_report(Path(sys.argv[1]), sys.argv[2], live=True)
