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

