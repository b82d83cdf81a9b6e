"""Regenerate tests/fixtures/tiny_camvid.{keras,onnx} and tiny_camvid_probs.onnx: a width-4 U-Net at 48x64.

usage: python tests/make_tiny_model.py   (needs ../shared/data/camvid and TensorFlow)

tiny_camvid_probs.onnx is the export as it is today (class_map and probs); tiny_camvid.onnx is
the same graph without `probs`, like models exported before it: the runtime must keep working
with those (one-hot scores for smooth edges and --smooth).
"""
import shutil
import tempfile
from pathlib import Path

import onnx

from export import ExportConfig, export_model
from export.onnx_export import _drop_output
from realtime_seg.contract import PROBS
from realtime_seg.training.train import TrainConfig, train

HERE = Path(__file__).resolve().parent / "fixtures"

if __name__ == "__main__":
    run = Path(tempfile.mkdtemp()) / "tiny"
    train(TrainConfig(data=str(HERE.parent.parent.parent / "shared/data/camvid"), out=str(run),
                      width=4, input_size=(48, 64), epochs=6, limit=64, lr=3e-3))
    export_model(ExportConfig(str(run / "best.keras"), str(HERE / "tiny_camvid_probs.onnx")))
    onnx.save(_drop_output(onnx.load(HERE / "tiny_camvid_probs.onnx"), PROBS), HERE / "tiny_camvid.onnx")
    shutil.copy(run / "best.keras", HERE / "tiny_camvid.keras")
