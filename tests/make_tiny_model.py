"""Regenerate tests/fixtures/tiny_camvid.{keras,onnx} (a width-4 U-Net at 48x64, float32 input as
exported before uint8 inputs: the old-model fixture), tests/fixtures/tiny_family/ (the same
weights exported before issue 35: tiny.onnx fp32, tiny.int8.onnx, tiny.fp16.onnx, uint8 input, a
graph of one size), tests/fixtures/tiny_any_size.onnx (the same weights exported with any size,
aspect keep, outputs at the input size). tests/fixtures/tiny_head_res.onnx is today's residual U-Net
(width 4, 48x64, its logits upsampled x2 at the end), trained like tiny_camvid and exported now: any
size, aspect keep, outputs at the head's resolution (24x32 for 48x64).
tests/fixtures/tiny_camvid_probs.onnx is the same weights with a `probs` output, exported (float32
input) before uint8 inputs came in; tiny_camvid.onnx is that graph without `probs`.

usage: python tests/make_tiny_model.py            (needs ../shared/data/camvid and TensorFlow)
       python tests/make_tiny_model.py --family   (only tiny_family/, from the committed .keras)
       python tests/make_tiny_model.py --any-size (only tiny_any_size.onnx, from the committed .keras)
       python tests/make_tiny_model.py --head-res (only tiny_head_res.onnx: trains one, needs the data)
"""
import shutil
import sys
import tempfile
from pathlib import Path


from realtime_seg.export import ExportConfig, export_model
from realtime_seg.export.quantize import Int8Config
from realtime_seg.training.train import TrainConfig, train

HERE = Path(__file__).resolve().parent / "fixtures"


def make_family(keras: Path, folder: Path) -> None:
    """fp32, int8 and fp16 exports of `keras`; int8 calibrated on the CamVid fixture's 8 train images.

    A 2-epoch width-4 model keeps only ~88% of its fp32 class maps in int8 (real presets: 93-97%),
    so the fixture is written with a lower agreement floor than export's default.
    """
    folder.mkdir(exist_ok=True)
    common = dict(classes="camvid", frames=str(HERE / "frames"))
    export_model(ExportConfig(str(keras), str(folder / "tiny.onnx"), **common))
    export_model(ExportConfig(str(keras), str(folder / "tiny.fp16.onnx"), precision="fp16", **common))
    export_model(ExportConfig(str(keras), str(folder / "tiny.int8.onnx"), precision="int8",
                              int8=Int8Config(str(HERE / "camvid"), min_agreement=0.8, max_miou_drop=0.02),
                              **common))


def make_any_size(keras: Path, out: Path, full_size_outputs: bool = True) -> None:
    """The fp32 export of `keras`: a graph of any size, aspect keep, outputs at the input size or
    (as `export` writes it now) at the head's."""
    export_model(ExportConfig(str(keras), str(out), classes="camvid", frames=str(HERE / "frames"),
                              full_size_outputs=full_size_outputs))


def trained_tiny(run: Path) -> Path:
    """A width-4 residual U-Net trained 6 epochs at 48x64 on 64 CamVid images; its last.keras."""
    train(TrainConfig(data=str(HERE.parent.parent.parent / "shared/data/camvid"), out=str(run),
                      arch="resunet", augmentations="all", width=4, input_size=(48, 64), epochs=6, limit=64,
                      lr=3e-3, compute_dtype="float32"))
    return run / "last.keras"


if __name__ == "__main__":
    if "--any-size" in sys.argv:
        make_any_size(HERE / "tiny_camvid.keras", HERE / "tiny_any_size.onnx")
        sys.exit(0)
    if "--head-res" in sys.argv:
        keras = trained_tiny(Path(tempfile.mkdtemp()) / "tiny")
        make_any_size(keras, HERE / "tiny_head_res.onnx", full_size_outputs=False)
        sys.exit(0)
    if "--family" not in sys.argv:
        run = Path(tempfile.mkdtemp()) / "tiny"
        train(TrainConfig(data=str(HERE.parent.parent.parent / "shared/data/camvid"), out=str(run),
                          arch="resunet", augmentations="all", width=4, input_size=(48, 64), epochs=6, limit=64,
                          lr=3e-3))
        export_model(ExportConfig(str(run / "best.keras"), str(HERE / "tiny_camvid.onnx"), full_size_outputs=True))
        shutil.copy(run / "best.keras", HERE / "tiny_camvid.keras")
    make_family(HERE / "tiny_camvid.keras", HERE / "tiny_family")
