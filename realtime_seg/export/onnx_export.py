"""Keras checkpoint -> ONNX with metadata, checked against Keras on real frames.

usage: python -m realtime_seg export runs/x/best.keras -o models/x.onnx [--fp16 | --int8 [--calib DATA]] [--head argmax|logits]
                                    [--aspect keep|squash] [--full-size-outputs]

Graph: input `image` uint8 (N, H, W, 3) RGB, scaled to [0, 1] inside the graph; outputs `class_map`
uint8 (N, h, w) and `probs` float32 (N, h, w, C) softmax (head argmax, the default: see
docs/EXPORT.md), or `logits` float32 (N, h, w, C). H and W: any multiples of 32 (checked against
Keras at the trained size and at the parity frames' own aspect); the trained size is `input_size`,
and --aspect records what the runtime does with a frame of another aspect by default. h, w: the
head's resolution, H/2 x W/2 for the lite and residual U-Nets (metadata `output_stride`; the
runtime upsamples with smooth edges), or H x W with --full-size-outputs and for the seed U-Net.
--int8: static QDQ quantization calibrated on the training split of DATA (default: the run's
dataset), written only if it keeps fp32's val mIoU (within 0.3) and class maps (export/quantize.py).
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import numpy as np

from realtime_seg.training.checkpoint import load_keras
from realtime_seg.datasets.classes import TABLES
from realtime_seg.datasets.readers import check_data_folder, split_settings
from realtime_seg.contract import (ASPECT, ASPECTS, CLASS_MAP, INPUT, INT8_CHECK, LOGITS, PRECISION, PRECISIONS,
                                   OUTPUT_STRIDE, PROBS, SPLIT, keep_aspect_size, preprocess)
from realtime_seg.errors import ArgumentParser, UsageError, UserError, check_at_least
from realtime_seg.paths import DEMO_VIDEO
from realtime_seg.system import check_output_file, sha256_file, write_atomic

from .any_size import at_head_resolution, head_stride, size_free
from .graph import free_spatial_dims, softmax_channels_last
from .quantize import Int8Config, set_metadata

log = logging.getLogger(__name__)

OPSET = 18  # tf2onnx 1.17 supports at most 18
HEADS = ("argmax", "logits")
DEFAULT_ASPECT = "keep"  # what the runtime does with another aspect unless told (docs/BENCHMARKS.md, issue 35)


@dataclass
class ExportConfig:
    checkpoint: str
    output: str
    precision: str = "fp32"      # a key of EXPORT_PRECISIONS: fp32, fp16 (GPUs) or int8 (CPUs; needs `int8`)
    head: str = "argmax"
    classes: str = "auto"        # auto: from the run's config.json; else a table name
    frames: str = str(DEMO_VIDEO)  # video or image folder for the parity check
    num_frames: int = 8
    min_agreement: float = 0.0   # with Keras; 0: the precision's own (EXPORT_PRECISIONS; int8: also against fp32)
    int8: Int8Config | None = None  # calibration and checks; data None: the run's dataset (config.json)
    aspect: str = DEFAULT_ASPECT    # metadata `aspect`: keep (width from the frame) or squash (contract.ASPECTS)
    full_size_outputs: bool = False  # outputs at the input size (the graph's own bilinear x2) instead of the head's



def _class_info(checkpoint: Path, classes: str, n_out: int) -> dict:
    """Class names, palette and training facts from the run folder, or from a named table."""
    config_path = checkpoint.parent / "config.json"
    if classes == "auto" and config_path.is_file():
        cfg = json.loads(config_path.read_text())
        info = {"classes": cfg["classes_list"], "palette": cfg["palette"], "dataset": cfg["dataset"],
                "split": split_settings(cfg), "data": cfg.get("data")}
    elif classes in TABLES:
        t = TABLES[classes]
        info = {"classes": list(t.classes), "palette": [list(c) for c in t.palette], "dataset": t.name}
    else:
        raise UserError(f"no config.json beside {checkpoint} to name the classes; pass "
                        f"--classes with one of: {', '.join(TABLES)}")
    if len(info["classes"]) != n_out:
        raise UserError(f"model {checkpoint} outputs {n_out} classes but the class table has "
                        f"{len(info['classes'])}; pass the right --classes")
    info["val_miou"] = _run_val_miou(checkpoint)
    return info


def _run_val_miou(checkpoint: Path) -> float | None:
    """The training run's val mIoU of this checkpoint: the last epoch's for last.keras, else the best."""
    run = checkpoint.parent
    if checkpoint.name == "last.keras" and (run / "metrics.csv").is_file():
        import csv
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        if rows and rows[-1].get("val_miou"):
            return float(rows[-1]["val_miou"])
    summary = run / "summary.json"
    return json.loads(summary.read_text()).get("best_val_miou") if summary.is_file() else None


def convert(model, head: str, stride: int = 1):
    """tf2onnx from a function traced at the model's size, its height and width then left free
    (any_size.py), the outputs `stride` smaller; returns an onnx ModelProto."""
    import tensorflow as tf
    import tf2onnx
    if head not in HEADS:
        raise UserError(f"unknown --head {head!r}; allowed: {', '.join(HEADS)}")
    _, h, w, _ = model.inputs[0].shape
    spec = [tf.TensorSpec((None, h, w, 3), tf.uint8, name=INPUT)]
    net = size_free(model)

    @tf.function(input_signature=spec)
    def forward(image):
        # uint8 in, scaled here: the host hands over the resized frame as is (4x fewer bytes, no float pass)
        x = tf.cast(image, tf.float32) * (1.0 / 255.0)
        logits = net(x, training=False)                               # (N, H, W, C)
        if head == "logits":
            return {LOGITS: logits}
        # probs beside the class map: smooth edges and --smooth read them (only when asked)
        return {CLASS_MAP: tf.cast(tf.argmax(logits, axis=-1), tf.uint8),
                PROBS: tf.nn.softmax(logits, axis=-1), LOGITS: logits}

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET)
    return free_spatial_dims(proto, stride)


def drop_output(proto, name: str):
    """Remove a graph output kept only for the parity check (onnxruntime prunes its nodes)."""
    keep = [o for o in proto.graph.output if o.name != name]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    return proto


def to_fp16(proto):
    """fp16 weights and compute, input and outputs unchanged (for GPUs)."""
    import warnings
    # onnxruntime's converter, not onnxconverter_common's, whose cast insertion around blocked
    # Resize nodes is slow on the residual U-Net (docs/EXPORT.md)
    from onnxruntime.transformers import float16
    with warnings.catch_warnings():  # it warns for every tiny weight it rounds to fp16's range
        warnings.simplefilter("ignore")
        # Cast stays as it is: the converter retypes the uint8 -> float Cast's output but not its `to`
        return float16.convert_float_to_float16(proto, keep_io_types=True,
                                                op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, "Cast"])


@dataclass(frozen=True)
class ExportPrecision:
    """How one precision is written: the graph it converts to, the agreement with Keras it must
    keep, its command-line flag's help, and whether it is quantized (int8: calibrated, checked
    against fp32 and rewritten after the parity check, export/quantize.py)."""

    help: str                                  # its flag's (--fp16, --int8; fp32 is the default)
    min_agreement: float                       # argmax agreement with Keras on the parity frames
    convert: Callable | None = None            # ModelProto -> ModelProto before the parity check
    graph: str = "fp32"                        # the precision of the graph checked against Keras
    quantized: bool = False                    # int8: calibrated and quantized after the check


# Every precision contract.PRECISIONS names: the one place export reads how to write it.
EXPORT_PRECISIONS = {
    "fp32": ExportPrecision("fp32 weights and compute (the default)", 0.999),
    "fp16": ExportPrecision("fp16 weights and compute (GPUs)", 0.99, to_fp16, graph="fp16"),
    "int8": ExportPrecision("int8 weights and activations (CPUs), calibrated and checked on --calib", 0.999,
                            quantized=True),
}


def parity_frames(source: str, count: int) -> list[np.ndarray]:
    """`count` BGR frames spread over a video, or the images of a folder."""
    import cv2
    from realtime_seg.runtime.sources import open_video_file
    path = Path(source)
    if not path.exists():
        raise UserError(f"--frames {path} not found; pass a video or a folder of images")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        frames = [cv2.imread(str(p)) for p in files[:count]]
    else:
        try:
            cap, _ = open_video_file(path)  # the viewer's checks: empty, image, undecodable
        except UserError as e:
            raise UserError(f"--frames: {e}") from None
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        for idx in np.linspace(0, max(total - 1, 0), count).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
        cap.release()
    frames = [f for f in frames if f is not None]
    if not frames:
        raise UserError(f"no frames to check the export with in {source}; pass --frames VIDEO_OR_DIR")
    return frames


def parity(model, proto, batch: np.ndarray) -> dict[str, float]:
    """Keras (float32 in [0, 1]) against onnxruntime (CPU, the uint8 batch): max |logit diff|, argmax agreement."""
    import onnxruntime as ort
    keras_logits = np.asarray(model(batch.astype(np.float32) / 255.0, training=False))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {INPUT: batch})))
    onnx_map = outs[CLASS_MAP] if CLASS_MAP in outs else np.argmax(outs[LOGITS], -1)
    return {"max_abs_logit_diff": float(np.abs(outs[LOGITS] - keras_logits).max()),
            "agreement": float(np.mean(onnx_map == np.argmax(keras_logits, -1)))}


def second_size(frames: list[np.ndarray], size: tuple[int, int]) -> tuple[int, int]:
    """The other size export checks the graph at: the parity frames' own aspect at the trained height
    (the 16:9 demo at 352x480: 352x640), or 64 wider when they have the trained aspect."""
    other = keep_aspect_size(frames[0].shape, size)
    return other if other != tuple(size) else (size[0], size[1] + 64)


def checked_parity(model, proto, frames: list[np.ndarray], size: tuple[int, int], need: float,
                   checkpoint: Path) -> dict:
    """Parity with Keras at the trained `size` and at `second_size` (Keras there: the model's
    progressive.small_view, its own weights); a UserError, nothing written, below `need`."""
    from realtime_seg.training.progressive import small_view
    other = second_size(frames, size)
    checks = parity(model, proto, preprocess(frames, size, np.uint8))
    checks["second_size"] = {"size": list(other),
                             **parity(small_view(model, other), proto, preprocess(frames, other, np.uint8))}
    for at, c in ((size, checks), (other, checks["second_size"])):
        print(f"parity at {at[0]}x{at[1]} on {len(frames)} real frames: max |logit diff| "
              f"{c['max_abs_logit_diff']:.2e}, argmax agreement {c['agreement'] * 100:.3f}% (need >= {need * 100:.1f}%)")
        if c["agreement"] < need:
            raise UserError(f"export of {checkpoint} agrees with Keras at {at[0]}x{at[1]} on only "
                            f"{c['agreement'] * 100:.2f}% of pixels (< {need * 100:.1f}%); nothing written")
    return checks


def _metadata(cfg: ExportConfig, info: dict, size, stride: int, checks: dict, checkpoint: Path) -> dict[str, str]:
    import keras
    return {
        "classes": json.dumps(info["classes"]), "palette": json.dumps(info["palette"]),
        "input_size": json.dumps(list(size)), "input_layout": "NHWC",
        "preprocessing": json.dumps({"color": "RGB", "dtype": "uint8", "scale": "1/255 in the graph",
                                     "resize": "area"}),
        "output": CLASS_MAP if cfg.head == "argmax" else LOGITS,
        "dataset": info.get("dataset", ""), "val_miou": json.dumps(info.get("val_miou")),
        **({SPLIT: json.dumps(info["split"])} if "split" in info else {}),
        PRECISION: EXPORT_PRECISIONS[cfg.precision].graph,  # int8: set once quantized
        ASPECT: cfg.aspect, OUTPUT_STRIDE: json.dumps(stride),
        "source_checkpoint": checkpoint.name, "source_sha256": sha256_file(checkpoint),
        "parity": json.dumps(checks), "keras_version": keras.__version__,
    }


def export_model(cfg: ExportConfig) -> dict:
    """Convert, check and write; returns the parity numbers. No file is left if a check fails."""
    checkpoint, out = Path(cfg.checkpoint), Path(cfg.output)
    if out.suffix != ".onnx":
        raise UsageError(f"-o {out} must end in .onnx; e.g. -o models/NAME.onnx")
    if cfg.precision not in EXPORT_PRECISIONS:
        raise UsageError(f"unknown precision {cfg.precision!r}; allowed: {', '.join(PRECISIONS)}")
    written = EXPORT_PRECISIONS[cfg.precision]
    if cfg.aspect not in ASPECTS:
        raise UsageError(f"unknown aspect {cfg.aspect!r}; allowed: {', '.join(ASPECTS)}")
    check_output_file(out, "-o", {"checkpoint": checkpoint, "--frames video": Path(cfg.frames)})
    frames = parity_frames(cfg.frames, cfg.num_frames)  # before Keras (seconds to load): bad input fails at once
    model = load_keras(checkpoint)
    _, h, w, _ = model.inputs[0].shape
    stride = 1 if cfg.full_size_outputs else head_stride(model)
    if stride > 1:  # outputs at the head's resolution: the graph, and Keras in the parity check, end before the x2
        model = at_head_resolution(model)
    info = _class_info(checkpoint, cfg.classes, model.outputs[0].shape[-1])
    int8 = _int8_config(cfg, info, checkpoint) if written.quantized else None
    batch = preprocess(frames, (h, w), np.uint8)
    print(f"converting {checkpoint} ({h}x{w}, {len(info['classes'])} classes, head {cfg.head}, "
          f"{cfg.precision}, outputs at {h // stride}x{w // stride}) ...", flush=True)
    proto = softmax_channels_last(convert(model, cfg.head, stride))
    if written.convert is not None:
        proto = written.convert(proto)
    checks = checked_parity(model, proto, frames, (h, w), cfg.min_agreement or written.min_agreement, checkpoint)
    if cfg.head == "argmax":
        proto = drop_output(proto, LOGITS)
    set_metadata(proto, _metadata(cfg, info, (h, w), stride, checks, checkpoint))
    if int8 is not None:
        from .quantize import int8_variant
        proto = int8_variant(proto, int8, batch, (h, w))
        checks = {**checks, "int8": json.loads(_get_metadata(proto)[INT8_CHECK])}
    write_atomic(out, lambda tmp: tmp.write_bytes(proto.SerializeToString()),
                 hint="choose a writable -o path")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {_get_metadata(proto)[PRECISION]})")
    return checks


def _get_metadata(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def _int8_config(cfg: ExportConfig, info: dict, checkpoint: Path) -> Int8Config:
    """The calibration set: --calib, else the dataset of the checkpoint's run (config.json), split as it was."""
    base = cfg.int8 or Int8Config(data=None)
    run_data = info.get("data")
    run_data = run_data[0] if isinstance(run_data, list) and run_data else run_data  # several --data: the first
    data = base.data or run_data
    if not data:
        raise UserError(f"no dataset to calibrate int8 with: no config.json naming one beside {checkpoint}; "
                        f"pass --calib DATA (a CamVid or CARLA folder with train and val images)")
    check_data_folder(Path(data))  # before converting: a bad --calib fails at once
    split = info.get("split", {}) if data == run_data else {}  # --calib another dataset: its own layout
    return Int8Config(data=str(data), images=base.images, max_miou_drop=base.max_miou_drop,
                      min_agreement=base.min_agreement, fmt=split.get("format", base.fmt),
                      val_fraction=split.get("val_fraction", base.val_fraction), seed=split.get("seed", base.seed))


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg export", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .keras file written by `python -m realtime_seg train`")
    p.add_argument("-o", "--output", required=True, help="where to write the .onnx file")
    precision = p.add_mutually_exclusive_group()
    for name, written in list(EXPORT_PRECISIONS.items())[1:]:  # fp32, the first, is the default
        precision.add_argument(f"--{name}", action="store_true", help=written.help)
    p.add_argument("--calib", metavar="DATA",
                   help="--int8: dataset folder whose train images calibrate and val images check "
                        "(default: the run's dataset from config.json)")
    p.add_argument("--calib-images", type=int, default=32, help="--int8: calibration images (default 32)")
    p.add_argument("--head", default="argmax", choices=HEADS,
                   help="argmax: uint8 class map (default); logits: float32 scores")
    p.add_argument("--classes", default="auto", choices=("auto", *TABLES))
    p.add_argument("--aspect", default=DEFAULT_ASPECT, choices=ASPECTS,
                   help="what the runtime does by default with a frame of another aspect than the trained "
                        "size's: keep (the trained height, the width from the frame) or squash (resized whole); "
                        f"the file takes any size either way, and --aspect at run time overrides (default {DEFAULT_ASPECT})")
    p.add_argument("--full-size-outputs", action="store_true",
                   help="outputs at the input size, upsampled in the graph (as older exports), for tools "
                        "that expect that; default: at the head's resolution (half the input for the lite and "
                        "residual U-Nets), which the runtime brings to the frame with smooth edges")
    p.add_argument("--frames", default=str(DEMO_VIDEO), help="video or image folder for the parity check")
    p.add_argument("--num-frames", type=int, default=8)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    check_at_least("--num-frames", args.num_frames, 1)
    check_at_least("--calib-images", args.calib_images, 1)
    precision = next((name for name in EXPORT_PRECISIONS if getattr(args, name, False)), "fp32")
    quantized = EXPORT_PRECISIONS[precision].quantized
    if (args.calib or args.calib_images != 32) and not quantized:
        raise UsageError("--calib and --calib-images go with --int8")
    export_model(ExportConfig(checkpoint=args.checkpoint, output=args.output, precision=precision,
                              head=args.head, classes=args.classes, frames=args.frames,
                              num_frames=args.num_frames, aspect=args.aspect,
                              full_size_outputs=args.full_size_outputs,
                              int8=Int8Config(args.calib, args.calib_images) if quantized else None))
    return 0
