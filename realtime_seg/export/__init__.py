"""Export a trained Keras U-Net to a self-describing ONNX model (tf2onnx, opset 18).

`python -m realtime_seg export` (`realtime-seg export`; in a checkout also `python -m export`).
Imported lazily: `python -m realtime_seg.export` imports this package before its __main__ quiets OpenCV's log.
"""
from __future__ import annotations

__all__ = ["ExportConfig", "export_model"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'realtime_seg.export' has no attribute {name!r}")
    from . import onnx_export
    return getattr(onnx_export, name)
