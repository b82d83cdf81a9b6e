"""Regenerate tests/fixtures/tiny_camvid.{keras,onnx}: a width-4 U-Net at 48x64 (runtime tests).

usage: python tests/make_tiny_model.py   (needs ../shared/data/camvid and TensorFlow)
"""
import shutil
import tempfile
from pathlib import Path

from export import ExportConfig, export_model
from realtime_seg.training.train import TrainConfig, train

HERE = Path(__file__).resolve().parent / "fixtures"

if __name__ == "__main__":
    run = Path(tempfile.mkdtemp()) / "tiny"
    train(TrainConfig(data=str(HERE.parent.parent.parent / "shared/data/camvid"), out=str(run),
                      width=4, input_size=(48, 64), epochs=6, limit=64, lr=3e-3))
    export_model(ExportConfig(str(run / "best.keras"), str(HERE / "tiny_camvid.onnx")))
    shutil.copy(run / "best.keras", HERE / "tiny_camvid.keras")
