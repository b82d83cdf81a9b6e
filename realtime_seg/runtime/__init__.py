"""The ONNX runtime: engine, sources, pipeline, video output and drawing (never imports Keras)."""
