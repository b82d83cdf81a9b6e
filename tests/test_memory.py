"""glibc keeps freed frame-sized buffers when asked: the next frame stops page-faulting them back."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# the arrays one frame has alive at once (probabilities, their average, decoded and drawn frames),
# freed together: more than glibc's trim threshold, so by default it hands them back every frame
_FRAMES = '''
import sys, resource, numpy as np
if sys.argv[1] == "keep":
    from realtime_seg.system import keep_freed_memory
    assert keep_freed_memory()
def frame():
    arrays = [np.ones((192, 256, 11), np.float32), np.ones((192, 256, 11), np.float32),
              np.ones((540, 960, 3), np.uint8), np.ones((540, 960, 3), np.uint8)]
    del arrays
for _ in range(5):
    frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    frame()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
'''


def _faults_per_frame(mode: str) -> float:
    proc = subprocess.run([sys.executable, "-c", _FRAMES, mode], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return float(proc.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_freed_memory_cuts_page_faults_per_frame():
    default, kept = _faults_per_frame("default"), _faults_per_frame("keep")
    assert default > 500  # glibc gave ~5 MB back to the kernel and faulted it in again
    assert kept < default / 10
