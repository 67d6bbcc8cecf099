"""The allocator setting that keeps a live run's memory flat (fallwatch/allocator.py), on this machine's glibc."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, sys
import numpy as np
from fallwatch.allocator import _libc, set_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = _libc()
libc.mallinfo2.restype = MallInfo2
taken = set_mmap_threshold(256) if sys.argv[1] == "fixed" else None
big = np.ones(8 * 2**20 // 8)  # 8 MiB: mapped; freeing it raises glibc's dynamic threshold to 8 MiB
del big
before = libc.mallinfo2().hblks
frame = np.ones((480, 640, 3), np.uint8)  # a frame-sized buffer (900 KiB)
print(json.dumps({"taken": taken, "mapped": libc.mallinfo2().hblks - before}))
"""


def _probe(mode: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_frame_buffers_get_their_own_mapping_after_the_fixed_threshold():
    """Without the setting, a frame buffer allocated after an 8 MiB buffer was freed comes from the heap arenas
    (glibc raised its threshold): the mechanism behind the measured +6 kB per frame. With it, every frame-sized
    buffer is mapped on its own, so freeing it gives the memory back."""
    from fallwatch.allocator import _libc

    if _libc() is None:
        pytest.skip("not glibc")
    assert _probe("default") == {"taken": None, "mapped": 0}
    assert _probe("fixed") == {"taken": True, "mapped": 1}



TRIM_PROBE = """
import json, sys, time
from pathlib import Path
import numpy as np
from fallwatch.allocator import HeapTrimmer, set_mmap_threshold

def rss_mb():
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))

big = np.ones(8 * 2**20 // 8)  # freeing a mapped 8 MiB buffer raises glibc's threshold: frames now use the heap
del big
frames, pins = [], []
for _ in range(200):  # frame buffers, each followed by a smaller long-lived one (a pin above its hole)
    frames.append(np.ones(900 * 1024, np.uint8))
    pins.append(np.ones(70 * 1024, np.uint8))
del frames  # 175 MiB of holes below the pins: free for malloc, still resident
freed = rss_mb()
trimmer = HeapTrimmer(float(sys.argv[1]))
time.sleep(0.01)
trimmer.next_at = 0.0  # due now
trimmer()
print(json.dumps({"freed_mb": freed, "after_trim_mb": rss_mb(), "trims": trimmer.trims}))
"""


def test_heap_trimming_gives_back_holes_left_by_frame_buffers():
    """200 frame-sized buffers freed below smaller long-lived allocations stay resident (malloc only returns the
    heap's top by itself); a due trim gives those pages back. With trimming off (0), nothing is given back."""
    from fallwatch.allocator import _libc

    if _libc() is None:
        pytest.skip("not glibc")
    runs = {}
    for every in ("30", "0"):
        proc = subprocess.run([sys.executable, "-c", TRIM_PROBE, every], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        runs[every] = json.loads(proc.stdout)
    on, off = runs["30"], runs["0"]
    assert on["trims"] == 1 and on["freed_mb"] - on["after_trim_mb"] > 150, on
    assert off["trims"] == 0 and off["freed_mb"] - off["after_trim_mb"] < 5, off
