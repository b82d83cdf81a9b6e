"""The int8 variant of an export: static QDQ quantization, calibrated on training images, checked on val.

Weights int8 per output channel, activations uint8 from MinMax ranges over `images` training frames,
and 7-bit weights (`reduce_range`): without VNNI (AVX2, plain AVX-512) onnxruntime multiplies u8 x s8
with VPMADDUBSW, whose 16-bit pair sums saturate; with full 8-bit weights the accurate preset lost
11 val mIoU on such a CPU, with 7-bit ones none (docs/EXPORT.md). The coarser weights shift each
channel's mean output; bias correction (bias_correction.py) takes that shift back.
"""
from __future__ import annotations

import copy
import json
import logging
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime_seg.contract import CALIBRATION, INPUT, INT8_CHECK, PRECISION, preprocess
from realtime_seg.datasets.readers import load_split, read_image
from realtime_seg.errors import UserError
from realtime_seg.runtime.models import RunOptions, choose_model, open_model
from realtime_seg.system import cpu_int8_dot

from .bias_correction import REDUCED_RANGE, correct_biases
from .graph import subpixel_conv_transpose

log = logging.getLogger(__name__)


@dataclass
class Int8Config:
    data: str | None              # dataset folder: its train split calibrates, its val split checks
    images: int = 32              # calibration frames, spread evenly over the train split
    max_miou_drop: float = 0.003  # fail when int8 loses more val mIoU than this against fp32
    min_agreement: float = 0.90   # fail when fewer pixels than this keep fp32's class
    fmt: str = "auto"
    val_fraction: float = 0.1     # CARLA's split, as the training run made it
    seed: int = 0


def calibration_samples(cfg: Int8Config) -> list:
    """The `cfg.images` training samples that calibrate, spread evenly over the train split."""
    _, samples = load_split(cfg.data, "train", cfg.fmt, cfg.val_fraction, cfg.seed)
    if not samples:
        raise UserError(f"no training images in {cfg.data} to calibrate int8 with; pass --calib DATASET")
    picks = np.linspace(0, len(samples) - 1, min(cfg.images, len(samples))).astype(int)
    return [samples[i] for i in picks]


def calibration_frames(cfg: Int8Config, size: tuple[int, int]) -> list[np.ndarray]:
    """The calibration samples as (1, H, W, 3) uint8 RGB, preprocessed like the runtime's frames."""
    return [preprocess([cv2.cvtColor(read_image(s.image), cv2.COLOR_RGB2BGR)], size, np.uint8)
            for s in calibration_samples(cfg)]


# kept in float: onnxruntime's QLinearSoftmax is slower than the float one (docs/EXPORT.md), and
# the probabilities leave the graph as floats anyway
_FLOAT_OPS = ("Softmax",)
_DECODER = re.compile(r"/(dec\d+|context)_")  # the lite and resunet decoders' layer names (model.py)


def _float_nodes(graph) -> list[str]:
    """Nodes kept in float: `_FLOAT_OPS`, the stem (the first convolution and all before it), the
    decoder and context module (`_DECODER`) and the head (the last convolution and all after it).

    First and last layers in float is the usual partial quantization: the stem sees the image's
    full range through 3 channels, and the head's logits (upsampled, logit-adjusted) hold the
    small differences that decide between neighbouring classes. The decoder was the part whose
    quantization cost the logit-adjusted presets most, after the stem (docs/EXPORT.md); the
    encoder's body, most of the compute, stays int8.
    """
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep = _walk([o.name for o in graph.output], lambda t: [producer[t]] if t in producer else [],
                 lambda node: node.input)
    keep |= _walk([i.name for i in graph.input], lambda t: consumers.get(t, []), lambda node: node.output)
    keep |= {n.name for n in graph.node if _DECODER.search(n.name)}
    keep |= {n.name for n in graph.node if n.op_type == "Conv" and n.input[0] in producer
             and producer[n.input[0]].name in keep and n.name.startswith("Conv__")}  # tf2onnx's fused convs
    return [n.name for n in graph.node if n.name in keep or n.op_type in _FLOAT_OPS]


def _walk(tensors: list[str], nodes_of, next_tensors) -> set[str]:
    """Names of the nodes reached from `tensors` (backwards or forwards), stopping at each Conv."""
    seen: set[str] = set()
    while tensors:
        for node in nodes_of(tensors.pop()):
            if node.name not in seen:
                seen.add(node.name)
                if node.op_type != "Conv":
                    tensors.extend(next_tensors(node))
    return seen


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of batches."""

    def __init__(self, batches: list[np.ndarray]):
        self._it = iter(batches)

    def get_next(self):
        batch = next(self._it, None)
        return None if batch is None else {INPUT: batch}


def prepared(proto, folder: Path) -> Path:
    """The fp32 graph as quantization sees it (transposed convolutions as sub-pixel ones, shapes
    inferred by onnxruntime's pre-processing), saved in `folder`; returns its path."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process
    src, pre = folder / "fp32.onnx", folder / "pre.onnx"
    onnx.save(subpixel_conv_transpose(copy.deepcopy(proto)), src)  # its convs quantize; ConvTranspose did not
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    return pre


def quantized_convs(graph) -> list[str]:
    """Names of the convolutions int8 quantizes: every Conv but the float ones (`_float_nodes`)."""
    floats = set(_float_nodes(graph))
    return [n.name for n in graph.node if n.op_type == "Conv" and n.name not in floats]


def quantize(proto, frames: list[np.ndarray], bias_correction: bool = True):
    """fp32 ModelProto (uint8 input) -> (int8 QDQ ModelProto, convs bias-corrected); metadata is the caller's.

    Bias correction (bias_correction.py) moves the mean shift of each quantized convolution's
    rounded weights into its float bias first; the weights themselves quantize as before."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    with tempfile.TemporaryDirectory(prefix="realtime_seg_int8_") as tmp:
        pre, out = prepared(proto, Path(tmp)), Path(tmp) / "int8.onnx"
        model = onnx.load(str(pre))
        exclude = _float_nodes(model.graph)
        corrected = 0
        if bias_correction:
            model, corrected = correct_biases(model, quantized_convs(model.graph), frames, REDUCED_RANGE)
            onnx.save(model, pre)
        quantize_static(str(pre), str(out), _Reader(frames), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=exclude)
        return onnx.load(str(out)), corrected


def speed_ratio(fp32, int8, batches: list[np.ndarray], rounds: int = 3) -> float:
    """fp32 ms / int8 ms at batch 1 on real frames: medians of interleaved runs (a busy machine biases neither).

    The models are opened with one thread each (int8_variant), so this is the ratio of CPU work per frame."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for model in (fp32, int8):
        model.infer(batches[0])  # warm-up
    for _ in range(rounds):
        for x in batches:
            for i, model in enumerate((fp32, int8)):
                t = time.perf_counter()
                model.infer(x)
                times[i].append(time.perf_counter() - t)
    return statistics.median(times[0]) / statistics.median(times[1])


def check(fp32, int8, parity_batch: np.ndarray, cfg: Int8Config) -> dict:
    """Argmax agreement with fp32 on real frames, val mIoU of both, speed; raises UserError on a loss."""
    from realtime_seg.datasets.metrics import summarize
    from realtime_seg.runtime.scoring import evaluate
    agreement = float(np.mean(int8.infer(parity_batch) == fp32.infer(parity_batch)))
    fmt, val = load_split(cfg.data, "val", cfg.fmt, cfg.val_fraction, cfg.seed)
    if not val:
        raise UserError(f"no val images in {cfg.data} to check int8 with; pass --calib DATASET with a val split")
    miou = {name: summarize(evaluate(m, val, fmt))["miou"] for name, m in (("fp32", fp32), ("int8", int8))}
    checks = {"agreement": agreement, "val_miou_fp32": miou["fp32"], "val_miou_int8": miou["int8"],
              "val_images": len(val),
              "speed_vs_fp32": round(speed_ratio(fp32, int8, list(parity_batch[:, None])), 3),
              "cpu_int8_dot": cpu_int8_dot()}
    drop = miou["fp32"] - miou["int8"]
    print(f"int8 check: argmax agreement with fp32 {agreement * 100:.2f}% (need >= "
          f"{cfg.min_agreement * 100:.0f}%), val mIoU {miou['fp32'] * 100:.2f} -> {miou['int8'] * 100:.2f} "
          f"(may drop <= {cfg.max_miou_drop * 100:.1f}), {checks['speed_vs_fp32']:.2f}x fp32's speed")
    if drop > cfg.max_miou_drop or agreement < cfg.min_agreement:
        raise UserError(f"int8 model loses too much (val mIoU {drop * 100:+.2f} points lost, agreement "
                        f"{agreement * 100:.1f}%); nothing written. Try more --calib-images or keep fp32")
    return checks


def int8_variant(proto, cfg: Int8Config, parity_batch: np.ndarray, size: tuple[int, int]):
    """The checked int8 ModelProto of an fp32 export (metadata included), or UserError: nothing to write."""
    import onnx
    frames = calibration_frames(cfg, size)
    print(f"quantizing to int8: {len(frames)} calibration images from the train split of {cfg.data} ...",
          flush=True)
    int8, corrected = quantize(proto, frames)
    meta = {p.key: p.value for p in proto.metadata_props}
    meta.update({PRECISION: "int8", CALIBRATION: json.dumps(
        {"data": Path(cfg.data).name, "split": "train", "images": len(frames), "method": "minmax",
         "format": "QDQ", "weights": "int8 per channel, 7-bit range", "activations": "uint8",
         "bias_correction": corrected})})
    with tempfile.TemporaryDirectory(prefix="realtime_seg_int8_") as tmp:
        paths = {"fp32": Path(tmp) / "fp32.onnx", "int8": Path(tmp) / "int8.onnx"}
        onnx.save(proto, paths["fp32"])
        set_metadata(int8, meta)
        onnx.save(int8, paths["int8"])
        # one thread each: the CPU work per frame, what a pipeline that keeps every core busy pays
        # (two-thread latency misjudged the fast preset's int8: docs/BENCHMARKS.md)
        fp32, int8_model = (open_model(choose_model(str(paths[p])), RunOptions("cpu", 1)) for p in ("fp32", "int8"))
        checks = check(fp32, int8_model, parity_batch, cfg)
    # this file's own val mIoU, measured on the run's val split just now
    set_metadata(int8, {**meta, "val_miou": json.dumps(checks["val_miou_int8"]), INT8_CHECK: json.dumps(checks)})
    return int8


def set_metadata(proto, meta: dict[str, str]) -> None:
    """Replace the ModelProto's metadata_props with `meta`."""
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
