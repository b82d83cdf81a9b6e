"""A segmentation ONNX from another framework (PyTorch, PaddleSeg, ...): what its interface is.

`read_interface` looks at the graph and runs it once on a probe image: which layout the input
takes (NCHW or NHWC) and of which type, whether its size is fixed, and which output is the
segmentation (logits or probabilities, NCHW or NHWC, at some fraction of the input's size; a
label map; one sigmoid channel for two classes). `ForeignSpec` is what the user adds with flags
(class names, mean and std, channel order, input size, output); runtime/adapter.py wraps the graph
into one that keeps this project's contract (contract.py). The `onnx` package is imported lazily.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets.classes import ClassTable
from ..errors import UsageError, UserError, first_line

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
PROBE_SIZE = (256, 256)        # inspect's probe of a dynamic-size model (a multiple of 32)
LAYOUTS = ("NCHW", "NHWC")
KINDS = ("logits", "probs", "labels")
_TYPES = {1: "float32", 10: "float16", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 11: "float64"}
_NUMPY = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "float64": np.float64}


@dataclass(frozen=True)
class ForeignSpec:
    """What the flags say about a foreign model: classes, (pixel - mean) / std in 0-255 units, BGR,
    the input size of a dynamic model and which output is the segmentation."""

    classes: ClassTable
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    bgr: bool = False
    input_size: tuple[int, int] | None = None
    output: str | None = None
    normalised: bool = False  # --mean or --std was given (a uint8-input model cannot take them)


@dataclass(frozen=True)
class Tensor:
    name: str
    type: str
    shape: tuple   # ints, or names of dynamic dims

    def __str__(self) -> str:
        return f"{self.name}  {self.type}  [{', '.join(map(str, self.shape))}]"


@dataclass
class Interface:
    """What a foreign graph takes and gives, as read from it and one probe run."""

    input: Tensor
    outputs: list[Tensor]
    layout: str                          # NCHW or NHWC
    size: tuple[int, int] | None         # fixed (H, W), or None: dynamic
    probed: tuple[int, int]              # the size it was run at
    batch: int | None                    # a fixed batch (PyTorch's default export: 1), or None
    output: str | None = None            # the segmentation output
    kind: str | None = None              # logits, probs or labels
    out_layout: str | None = None        # NCHW, NHWC, or None (a label map or one channel without its axis)
    channels: int | None = None          # classes in the output (1: one sigmoid channel); None for labels
    out_size: tuple[int, int] | None = None
    candidates: list[str] = field(default_factory=list)
    opset: int = 0

    @property
    def classes(self) -> int | None:
        """How many classes the output scores (2 for one sigmoid channel), None for a label map."""
        return None if self.channels is None else max(self.channels, 2)

    @property
    def input_dtype(self):
        return _NUMPY.get(self.input.type, np.float32)


def parse_triple(option: str, text: str, positive: bool = False) -> tuple[float, float, float]:
    """--mean/--std R,G,B: three numbers (and for std none of them 0)."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise UsageError(f"{option} {text}: expected three numbers R,G,B in 0-255 units, e.g. "
                         f"{','.join(f'{v:g}' for v in (IMAGENET_STD if positive else IMAGENET_MEAN))}")
    if positive and any(v == 0 for v in values):
        raise UsageError(f"{option} {text}: a std of 0 divides by zero; pass three non-zero numbers")
    return values


def parse_size(text: str) -> tuple[int, int]:
    """--input-size HxW, e.g. 512x1024."""
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 8 for p in parts):
        raise UsageError(f"--input-size {text}: expected HEIGHTxWIDTH, each 8 or more, e.g. 512x1024")
    return int(parts[0]), int(parts[1])


def load_proto(path: Path):
    """The ONNX graph of `path` with its weights (a UserError when it is not one)."""
    import onnx
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf and onnx raise their own types for a bad file
        raise UserError(f"cannot read model {path}: not a valid ONNX file ({first_line(e)})") from None


def _tensor(value) -> Tensor:
    t = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)
    return Tensor(value.name, _TYPES.get(t.elem_type, f"type {t.elem_type}"), dims)


def graph_tensors(proto) -> tuple[list[Tensor], list[Tensor]]:
    """The graph's real inputs (not its weights) and its outputs."""
    weights = {t.name for t in proto.graph.initializer}
    return ([_tensor(v) for v in proto.graph.input if v.name not in weights],
            [_tensor(v) for v in proto.graph.output])


def _input_layout(path: Path, inp: Tensor) -> str:
    if len(inp.shape) == 4 and inp.shape[1] == 3 and inp.shape[3] != 3:
        return "NCHW"
    if len(inp.shape) == 4 and inp.shape[3] == 3:
        return "NHWC"
    if len(inp.shape) == 4 and inp.shape[1] == 3:
        return "NCHW"
    raise UsageError(f"model {path}: input {inp} is not a batch of 3-channel images (N,3,H,W or N,H,W,3); "
                     f"only image segmentation models can be imported")


def _fixed(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _spatial(h: int, w: int, size: tuple[int, int]) -> bool:
    """(h, w) is the input's (H, W) over one factor from 1 to 32 (an encoder's output stride)."""
    if h < 2 or w < 2 or h > size[0] or w > size[1]:
        return False
    rh, rw = size[0] / h, size[1] / w
    return rh <= 32 and rw <= 32 and abs(rh - rw) <= 0.15 * max(rh, rw)


def _read_output(out: np.ndarray, size: tuple[int, int], layout: str) -> tuple[str | None, int | None] | None:
    """(out_layout, channels) of a segmentation output of the probe, or None when it is not one."""
    integer = np.issubdtype(out.dtype, np.integer)
    if out.ndim == 3 and _spatial(out.shape[1], out.shape[2], size):
        return None, (None if integer else 1)
    if out.ndim != 4:
        return None
    found = [lay for lay, hw in (("NCHW", out.shape[2:4]), ("NHWC", out.shape[1:3])) if _spatial(*hw, size)]
    if not found:
        return None
    lay = layout if layout in found else found[0]
    channels = out.shape[1] if lay == "NCHW" else out.shape[3]
    if integer:
        return (lay, None) if channels == 1 else None
    return lay, channels


def _producer(proto, name: str) -> str | None:
    return next((n.op_type for n in proto.graph.node if name in n.output), None)


def _kind(proto, name: str, out: np.ndarray, lay: str | None, channels: int | None) -> str:
    """labels, probs (a softmax or sigmoid ends the graph, or the probe's scores sum to 1) or logits."""
    if channels is None:
        return "labels"
    if _producer(proto, name) in ("Softmax", "Sigmoid"):
        return "probs"
    if channels > 1:
        axis = 1 if lay == "NCHW" else -1
        sums = out.astype(np.float64).sum(axis)
        if out.min() >= 0 and out.max() <= 1 and np.abs(sums - 1).max() < 1e-3:
            return "probs"
    return "logits"


def probe_input(iface_layout: str, dtype, size: tuple[int, int], batch: int = 1) -> np.ndarray:
    """A fixed pseudo-random image batch in the model's layout (values as a [0, 1]-normalised model sees)."""
    x = np.random.default_rng(0).random((batch, *size, 3), dtype=np.float32)
    x = x.transpose(0, 3, 1, 2) if iface_layout == "NCHW" else x
    return (x * 255).astype(dtype) if dtype == np.uint8 else np.ascontiguousarray(x.astype(dtype))


def open_session(model: Path | bytes, threads: int = 1):
    """A CPU onnxruntime session of `model` (a file or serialised bytes) for probes and checks."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


def read_interface(path: Path, proto, session, input_size: tuple[int, int] | None = None,
                   output: str | None = None, strict: bool = True) -> Interface:
    """The foreign model's interface, from its graph and one probe run at its size (or `input_size`,
    or PROBE_SIZE when dynamic and not `strict`). `strict` (import, one-off runs): every problem is
    a UsageError; else (inspect) they are left for the caller to report."""
    inputs, outputs = graph_tensors(proto)
    if len(inputs) != 1:
        raise UsageError(f"model {path} takes {len(inputs)} inputs ({', '.join(t.name for t in inputs)}); "
                         f"only models with one image input can be imported")
    inp = inputs[0]
    layout = _input_layout(path, inp)
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    h, w = (_fixed(inp.shape[a]) for a in axes)
    size = (h, w) if h and w else None
    if size and input_size and input_size != size:
        raise UsageError(f"model {path} takes a fixed {size[0]}x{size[1]} input; drop --input-size or pass "
                         f"--input-size {size[0]}x{size[1]}")
    if size is None and input_size is None and strict:
        raise UsageError(f"model {path} takes any input size ({inp}); pass --input-size HxW, e.g. "
                         f"the size it was trained at")
    probed = size or input_size or PROBE_SIZE
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    iface = Interface(inp, outputs, layout, size, probed, _fixed(inp.shape[0]), opset=opset)
    dtype = iface.input_dtype
    try:
        results = session.run(None, {inp.name: probe_input(layout, dtype, probed)})
    except Exception as e:  # onnxruntime's own error types
        raise UserError(f"model {path} does not run at {probed[0]}x{probed[1]} ({first_line(e)}); "
                        f"pass another --input-size") from None
    found = {}
    for tensor, out in zip(outputs, results):
        read = _read_output(np.asarray(out), probed, layout)
        if read is not None:
            found[tensor.name] = (np.asarray(out), *read)
    iface.candidates = list(found)
    names = [t.name for t in outputs]
    if output is not None and output not in names:
        raise UsageError(f"model {path} has no output {output!r}; its outputs: {', '.join(names)}")
    if output is not None and output not in found:
        raise UsageError(f"model {path}: output {output!r} is not a segmentation (an image of classes at "
                         f"a fraction of the input size); candidates: {', '.join(found) or 'none'}")
    if not found:
        if strict:
            shapes = "; ".join(f"{t.name} {list(np.shape(r))}" for t, r in zip(outputs, results))
            raise UsageError(f"model {path} has no spatial output ({shapes}): a classifier or a detector, "
                             f"not a segmentation model; it cannot be imported")
        return iface
    if output is None and len(found) > 1 and strict:
        raise UsageError(f"model {path} has several segmentation-like outputs ({', '.join(found)}); "
                         f"pick one with --output NAME")
    name = output or next(iter(found))
    out, lay, channels = found[name]
    iface.output, iface.out_layout, iface.channels = name, lay, channels
    iface.kind = _kind(proto, name, out, lay, channels)
    iface.out_size = tuple(int(d) for d in (out.shape[2:4] if lay == "NCHW" else out.shape[1:3]))
    return iface


def check_classes(path: Path, iface: Interface, classes: ClassTable) -> None:
    """--classes names as many classes as the output scores (a UsageError when not)."""
    if iface.classes is not None and iface.classes != classes.num_classes:
        raise UsageError(f"--classes {classes.name} names {classes.num_classes} classes but output "
                         f"{iface.output!r} of {path} has {iface.classes}; pass a class set or file with "
                         f"{iface.classes} names")


def describe_output(iface: Interface) -> str:
    """The segmentation output in words, e.g. `out: logits, NCHW, 19 classes, at 1/4 of the input size`."""
    if iface.output is None:
        return "none found"
    if iface.kind == "labels":
        what = "a label map (class ids" + (f", {iface.out_layout} with one channel)" if iface.out_layout else ")")
    elif iface.channels == 1:
        what = f"one {'sigmoid probability' if iface.kind == 'probs' else 'logit'} channel (2 classes)"
    else:
        what = f"{iface.kind}, {iface.out_layout}, {iface.channels} classes"
    factor = iface.probed[0] / iface.out_size[0]
    scale = "at the input size" if factor == 1 else f"at 1/{factor:g} of the input size"
    return f"{iface.output}: {what}, {scale}"
