"""glibc keeps freed frame-sized buffers when asked: frames handed between threads stop page-faulting."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a decode/inference thread hands frame-sized arrays to the consumer, which frees them (as the viewer does)
_FRAMES = '''
import sys, resource, queue, threading, numpy as np
if sys.argv[1] == "keep":
    from realtime_seg.system import keep_freed_memory
    assert keep_freed_memory()
q = queue.Queue(2)
def produce(n):
    for _ in range(n):
        q.put((np.ones((192, 256, 11), np.float32), np.ones((540, 960, 3), np.uint8)))
    q.put(None)
def run(n):
    t = threading.Thread(target=produce, args=(n,)); t.start()
    while (item := q.get()) is not None:
        drawn = item[1] + 1
        del item, drawn
    t.join()
run(10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
run(100)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
'''


def _faults_per_frame(mode: str) -> float:
    proc = subprocess.run([sys.executable, "-c", _FRAMES, mode], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return float(proc.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_freed_memory_cuts_page_faults_per_frame():
    default, kept = _faults_per_frame("default"), _faults_per_frame("keep")
    assert default > 10  # glibc gave the buffers back and faulted them in again
    assert kept < default / 2
