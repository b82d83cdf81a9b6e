"""Batch export: segment many videos and images into overlay videos or images, class-id PNGs and class-area CSVs.

usage: python -m realtime_seg batch INPUTS... --out DIR [--model accurate|fast|M.onnx]
       python -m realtime_seg batch videos/ 'clips/*.mp4' --out seg/ --png-masks --stats
       python -m realtime_seg batch CameraRGB/ 'kitti/*.png' --out seg/ --png-masks   (images: one output each)
       python -m realtime_seg batch CameraRGB/ --out seg/ --as-video --fps 10   (a folder of frames as one video)
       python -m realtime_seg batch drive.mp4 --out seg/ --view side --hud   (views as in the viewer)
       python -m realtime_seg batch drive.mp4 --out seg/ --ext webm    (VP8 WebM instead of H.264 MP4)

INPUTS are video and image files, folders (their videos and images; --recursive for subfolders)
and globs (quote them; they are expanded here). For each video, DIR/<name>_seg.mp4 is written (H.264:
plays in browsers and common players; see docs/BATCH.md), plus DIR/<name>_masks/ and
DIR/<name>_stats.csv (and its picture, <name>_stats.png) when asked. For each image, DIR/<name>_seg.png
(.jpg for a JPEG) and with --png-masks DIR/<name>_mask.png; a folder's --stats CSV has a row per image.
Unreadable images are reported by name and skipped. Outputs are written under temporary names, checked, and renamed
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
