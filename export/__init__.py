"""Export a trained Keras U-Net to a self-describing ONNX model (tf2onnx, opset 18)."""
from .onnx_export import ExportConfig, export_model

__all__ = ["ExportConfig", "export_model"]
