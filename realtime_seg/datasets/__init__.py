"""Datasets: class tables, CARLA and CamVid readers, augmentation, metrics (NumPy and OpenCV only)."""
