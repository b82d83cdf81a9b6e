"""Benchmark: each stage alone, the product pipeline, a naive ONNX loop and the seed's Keras loop.

usage: python -m realtime_seg bench --video drive.mp4 [--model accurate|fast|M.onnx] [--frames 200]
       python -m realtime_seg bench --models fast accurate --json bench.json --plot stages.png
       python -m realtime_seg bench --threads 1 --spin   (onnxruntime threads, 0: all cores; busy-waiting on)

On the first N frames of the video, in one run:
  stages alone     decode, preprocess, inference (batch 1), draw, encode: ms/frame, one after another
                   on frames decoded into memory first; bound = 1000 / the slowest stage
  pipeline         the viewer's own loop, as `--no-show --output x.mp4` runs it (threads overlap)
  naive ORT        read -> preprocess -> run -> draw -> write, one after another in one thread
  seed Keras       the same weights as a Keras model (M.keras beside M.onnx, or --keras), with
                   model.predict(x) once per frame; start-up and the first call are excluded
  model alone      latency at batch 1 (median) and images/s at larger batches
See docs/BENCHMARKS.md for what each number means.
"""
from __future__ import annotations

from .command import BenchConfig, main, run
from .report import onnx_conv_flops

__all__ = ["BenchConfig", "main", "onnx_conv_flops", "run"]
