"""Export a trained Keras U-Net to a self-describing ONNX model (tf2onnx, opset 18).

Imported lazily: `python -m export` imports this package before its __main__ quiets OpenCV's log.
"""
from __future__ import annotations

__all__ = ["ExportConfig", "export_model"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'export' has no attribute {name!r}")
    from . import onnx_export
    return getattr(onnx_export, name)
