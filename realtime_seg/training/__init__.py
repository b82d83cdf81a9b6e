"""The Keras side: the U-Net and its trainer (with realtime_seg/export, the only TensorFlow/Keras importers)."""
