"""Import Keras for the training and export commands without TensorFlow's start-up chatter.

TensorFlow 2.21 logs through absl before absl::InitializeLog() is called, which
TF_CPP_MIN_LOG_LEVEL no longer silences: every `train` or `export` would print
lines like "oneDNN custom operations are on" and "Could not find cuda drivers"
to stderr, in front of the one-line `error:` a user should see. Python errors
raised by the import are not hidden: stderr is restored before they propagate.
"""
from __future__ import annotations

import logging
import os
import sys

from ..errors import TRAIN_HINT, UserError, first_line
from ..system import quiet_stderr


def import_keras():
    """`import keras` with file descriptor 2 pointed at /dev/null while it loads its backend."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet_stderr():
            import keras
    except ImportError as e:  # installed but broken (a missing one is caught at command start: __main__)
        raise UserError(f"cannot import keras ({first_line(e)}); {TRAIN_HINT}") from None
    # scoring frames of several sizes (each at its own aspect) traces one predict step per size, by
    # design: TensorFlow's "triggered tf.function retracing" warning would say so after every epoch
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return keras


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that make bfloat16 matmuls fast


def accelerator(backend: str) -> str:
    """'gpu' when the Keras backend computes on a GPU, else 'cpu' (only JAX is asked: no tf.*)."""
    if backend != "jax":
        return "cpu"
    import jax
    return "gpu" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"


def bf16_supported(device: str, flags: set[str]) -> bool:
    """bfloat16 pays off on GPUs and on CPUs with AVX512_BF16 or AMX; elsewhere it is emulated (slow)."""
    return device == "gpu" or bool(flags & set(BF16_CPU_FLAGS))


def choose_precision(precision: str, device: str, flags: set[str], cpu_bf16: bool = True) -> str:
    """The Keras dtype policy for --compute-dtype auto|float32|bfloat16|float16.

    auto picks mixed bfloat16 where the hardware has it, except on a CPU for architectures that
    run slower in bf16 there (`cpu_bf16` False: depthwise convolutions).
    """
    if precision == "auto":
        pays = bf16_supported(device, flags) and (device == "gpu" or cpu_bf16)
        return "mixed_bfloat16" if pays else "float32"
    policies = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
    if precision not in policies:
        raise ValueError(f"unknown precision {precision!r}; allowed: auto, {', '.join(policies)}")
    return policies[precision]
