"""The training choices users pick from, known before Keras loads (so usage errors come first).

`ARCHS` is the one table of architectures: add one here (its row says how it trains best) and its
Keras builder in model.py's `_BUILDERS`. `COMPUTE_DTYPES` are training's number formats
(`--compute-dtype`), unrelated to a model file's run-time precision (contract.PRECISIONS).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchInfo:
    """How an architecture trains: default width, whether bf16 pays on a CPU, pretrained encoder."""
    width: int
    cpu_bf16: bool           # mixed bfloat16 faster than float32 on AVX512_BF16/AMX CPUs (docs/TRAINING.md)
    pretrained: bool = False  # an ImageNet encoder: its own learning rate and frozen batch norm by default


ARCHS = {
    "resunet": ArchInfo(width=16, cpu_bf16=True),
    "seed": ArchInfo(width=32, cpu_bf16=True),       # the seed notebook's exact U-Net
    "lite0": ArchInfo(width=32, cpu_bf16=False, pretrained=True),  # depthwise convs: bf16 is slower
    "lite1": ArchInfo(width=32, cpu_bf16=False, pretrained=True),
    "lite2": ArchInfo(width=32, cpu_bf16=False, pretrained=True),
}
SCHEDULES = ("poly", "cosine", "constant")
OPTIMIZERS = ("adamw", "adam")
TRAIN_SPLITS = ("train", "trainval")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")  # training's number format (backend.choose_precision)
ENCODER_BN = ("frozen", "train")
