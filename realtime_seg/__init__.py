"""realtime_seg: live semantic segmentation of driving video with ONNX U-Nets."""
__version__ = "0.1.0"
