"""Batch export: segment many videos into overlay videos, class-id PNGs and class-area CSVs.

usage: python -m realtime_seg batch INPUTS... --out DIR [--model accurate|fast|M.onnx]
       python -m realtime_seg batch videos/ 'clips/*.mp4' --out seg/ --png-masks --stats
       python -m realtime_seg batch drive.mp4 --out seg/ --view side --hud   (views as in the viewer)
       python -m realtime_seg batch drive.mp4 --out seg/ --ext webm    (VP8 WebM instead of H.264 MP4)

INPUTS are video files, folders (their videos; --recursive for subfolders) and globs (quote
them; they are expanded here). For each input, DIR/<name>_seg.mp4 is written (H.264: plays
in browsers and common players; see docs/BATCH.md), plus DIR/<name>_masks/ and
DIR/<name>_stats.csv (and its picture, <name>_stats.png) when asked. Outputs are written under temporary names, checked, and renamed
together when all are complete; existing complete outputs are skipped unless --overwrite, so
re-running resumes a batch. An output that cannot be written (a full disk) fails its input.
Exit code: 0 all ok, 1 some input failed, 2 usage error, 130/143 interrupted.
"""
from __future__ import annotations

from .command import main
from .config import BatchConfig
from .plan import expand_inputs
from .run import run_batch

__all__ = ["BatchConfig", "expand_inputs", "main", "run_batch"]
