"""realtime_seg: live semantic segmentation of driving video with ONNX U-Nets.

Public API (imported lazily: the runtime never loads Keras, training never needs onnxruntime):

    from realtime_seg import Overlay, choose_model, open_model, open_video, segment_stream
    model = open_model(choose_model("accurate"))   # a preset or an .onnx path; precision="int8", RunOptions(...)
    overlay = Overlay(model.classes, model.palette_bgr)
    for packet in segment_stream(open_video("drive.mp4"), model):   # or a folder of frames, a glob, an image
        image = overlay.paint(packet.frame, packet.class_map)

    from realtime_seg import segment_image        # one image: a path or an RGB array
    result = segment_image("frame.png", model="fast")
    result.class_map, result.annotated            # class ids and the picture (RGB), at the image's size
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "choose_model": "runtime.models", "open_model": "runtime.models", "RunOptions": "runtime.models",
    "SegModel": "runtime.engine", "preprocess": "contract",
    "open_video": "runtime.sources", "open_camera": "runtime.sources",
    "segment_image": "runtime.segment", "Segmented": "runtime.segment", "read_image": "runtime.media",
    "segment_stream": "runtime.pipeline", "VideoOutput": "runtime.video",
    "compose": "runtime.render", "colorize": "runtime.render", "Overlay": "runtime.render",
    "unet_model": "training.model", "conv_block": "training.model", "upsampling_block": "training.model",
    "TrainConfig": "training.train", "train": "training.train",
    "load_dataset": "datasets.readers", "load_split": "datasets.readers", "UserError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'realtime_seg' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
