"""A checkpoint written by `train`, loaded back for export and for bench's seed-Keras loop.

The cheap checks (a file, readable, a .keras zip) come before Keras loads, which takes seconds.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError, first_line
from ..system import check_readable
from .backend import import_keras


def load_keras(path: Path):
    """Load a .keras file in safe mode, as float32 whatever policy it was trained under."""
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a folder; pass a .keras file written by `train`")
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; pass a .keras file written by `train`")
    check_readable(path, "checkpoint")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a Keras .keras file; pass RUN_DIR/best.keras from `train`")
    keras = import_keras()  # after the cheap checks: loading TensorFlow takes seconds
    from . import model as _registers_layers  # noqa: F401  (LogitAdjustment, before loading)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise UserError(f"cannot load Keras model {path}: {first_line(e)}") from None
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3 or None in shape[1:3]:
        raise UserError(f"model {path} takes input {shape}; export needs a fixed (H, W, 3) image input")
    return _as_float32(model)


def _as_float32(model):
    """Rebuild a mixed-precision model with float32 layers and the same weights."""
    import keras
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    f32 = keras.models.clone_model(model, clone_function=clone)
    f32.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    return f32
