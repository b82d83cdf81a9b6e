"""The Keras side: the U-Net and its trainer (with export/, the only TensorFlow/Keras importers)."""
