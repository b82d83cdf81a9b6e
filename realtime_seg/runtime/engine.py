"""Run an exported U-Net with onnxruntime: metadata, provider choice, pre- and post-processing.

The `.onnx` file describes itself (`metadata_props`); its inputs, outputs and metadata keys
are the contract in realtime_seg/contract.py.

A model whose graph takes any size (exports since issue 35) sizes its input from each batch's first
frame: the trained height and the frame's aspect (`aspect` keep), or the trained size (squash, and
always for a graph of one size). Nothing is allocated at a fixed size, so frames of another size
later (an image folder) are simply resized to theirs.

Current exports answer at the head's resolution, half the input (metadata `output_stride`): the
viewer's smooth edges bring the class map to the frame from there, and `predict` (eval's scores,
export's int8 check) brings it to the input size the same way.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract import (ASPECT, ASPECTS, CLASS_MAP, INPUT_DTYPES, LOGITS, OUTPUT_STRIDE, PRECISION, PRECISIONS,
                        PROBS, REQUIRED_METADATA, input_size_for, preprocess)
from ..errors import UserError, first_line
from ..system import check_readable
from .edges import smooth_upsample

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "cpu")
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class RunOptions:
    """Where and how a model's sessions run: --device, --threads, --spin (one object, passed whole)."""

    device: str = "auto"    # auto (CUDA when usable), cuda or cpu
    threads: int = 0        # onnxruntime intra-op threads (0: its own choice; models.open_streams: the plan's)
    spinning: bool = False  # idle pool threads busy-wait (onnxruntime's default; the product turns it off)


@dataclass
class SegModel:
    """An onnxruntime session plus what its metadata says about classes and input."""

    path: Path
    session: "object"
    classes: list[str]
    palette_bgr: np.ndarray          # (C, 3) uint8, OpenCV order
    input_size: tuple[int, int]      # (height, width) it was trained at
    input_name: str
    output_name: str
    provider: str                    # the provider the session really runs on
    metadata: dict[str, str]
    precision: str = "fp32"          # fp32, fp16 or int8 (metadata `precision`)
    input_dtype: type = np.uint8     # uint8 for current exports, float32 in [0, 1] for older ones
    scores_name: str | None = None   # `probs` (or an old export's `logits`); None: class_map only
    one_at_a_time: bool = False      # the graph's batch is fixed at 1 (imported models): frames run singly
    any_size: bool = False           # the graph takes any height and width (multiples of 32)
    aspect: str = "squash"           # what a frame of another aspect gets (contract.ASPECTS; use_aspect sets it)
    output_stride: int = 1           # input size / output size (metadata `output_stride`; 2: the head's resolution)

    @property
    def runs_on(self) -> str:
        """Provider and precision for the HUD and summaries, e.g. `CPU int8`."""
        return f"{self.provider.replace('ExecutionProvider', '')} {self.precision}"

    def use_aspect(self, aspect: str | None) -> None:
        """Run with `aspect` (keep or squash; None: the file's own). A graph of one size can only
        squash: asked to keep, it says so once and squashes."""
        if aspect is None:
            return
        if aspect not in ASPECTS:
            raise UserError(f"unknown aspect {aspect!r}; allowed: {', '.join(ASPECTS)}")
        if aspect == "keep" and not self.any_size:
            log.warning("model %s takes %dx%d only: frames of another aspect are squashed (re-export it "
                        "with `python -m realtime_seg export` to keep their aspect)", self.path.name, *self.input_size)
            return
        self.aspect = aspect

    def size_for(self, frame_shape: tuple[int, ...]) -> tuple[int, int]:
        """The input size (H, W) a frame of `frame_shape` (H, W, ...) runs at (contract.input_size_for)."""
        return input_size_for(frame_shape, self.input_size, self.aspect)

    def prepare(self, frames_bgr: list[np.ndarray]) -> np.ndarray:
        """BGR frames of any size -> the batch this model takes (uint8, or float32 for old exports), at
        the size the first frame's shape gives (`size_for`; the others are resized to it)."""
        return preprocess(frames_bgr, self.size_for(frames_bgr[0].shape), self.input_dtype)

    def _run(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """The outputs `names` for a batch (on CUDA with I/O binding)."""
        if self.one_at_a_time and len(batch) > 1:
            runs = [self._run(names, batch[i:i + 1]) for i in range(len(batch))]
            return [np.concatenate(outs) for outs in zip(*runs)]
        if self.provider == CUDA:
            return self._run_bound(names, batch)
        return self.session.run(names, {self.input_name: batch})

    def _run_bound(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """One run with I/O binding: the batch goes to the GPU once, each output comes back once."""
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(batch))
        for name in names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """A batch from `prepare` (N, H, W, 3) -> (N, H, W) uint8 class ids."""
        out = self._run([self.output_name], batch)[0]
        return out if out.ndim == 3 else np.argmax(out, axis=-1).astype(np.uint8)

    def infer_probs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids (N, H, W) and class probabilities (N, H, W, C) float32; None if the model has none."""
        if self.scores_name is None:
            return self.infer(batch), None
        names = [self.scores_name] + ([self.output_name] if self.output_name != self.scores_name else [])
        outs = self._run(names, batch)
        scores = outs[0]
        if self.scores_name == LOGITS:  # an export with `--head logits`: softmax here
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
        maps = outs[1] if len(outs) > 1 else np.argmax(scores, axis=-1).astype(np.uint8)
        return maps, scores

    def predict(self, frames_bgr: list[np.ndarray]) -> np.ndarray:
        """BGR frames of any size -> class maps (N, H, W) at the input size `prepare` chose; outputs at
        the head's resolution are brought there with smooth edges, from their probabilities."""
        x = self.prepare(frames_bgr)
        if self.output_stride == 1:
            return self.infer(x)
        maps, probs = self.infer_probs(x)
        size = (x.shape[2], x.shape[1])
        return np.stack([smooth_upsample(m, size, None if probs is None else probs[i]) for i, m in enumerate(maps)])


def read_metadata(path: Path, session) -> dict[str, str]:
    """The model's metadata_props, checked for the keys the runtime needs."""
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if len(missing) == len(REQUIRED_METADATA):  # not one of ours: a model from another framework
        raise UserError(f"model {path} has no metadata (not exported by this tool); see what it needs with "
                        f"`python -m realtime_seg inspect {path}`, then pass --classes (and --mean, --std, "
                        f"--bgr, --input-size as it was trained) or import it with `python -m realtime_seg import`")
    if missing:
        raise UserError(f"model {path} lacks metadata {', '.join(missing)}; "
                        f"export it with `python -m realtime_seg export CHECKPOINT.keras -o {path.name}`")
    return meta


def providers(device: str) -> list[str]:
    """onnxruntime providers to ask for, in order, for `device`."""
    import onnxruntime as ort
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and CUDA not in available:
        raise UserError("--device cuda: this onnxruntime has no CUDA provider; install "
                        "onnxruntime-gpu (CUDA 13, cuDNN 9) or use --device cpu")
    return [CUDA, "CPUExecutionProvider"] if CUDA in available else ["CPUExecutionProvider"]


def _session(path: Path, wanted: list[str], threads: int, spinning: bool = False, graph: bytes | None = None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if not spinning:  # idle pool threads sleep instead of spinning: they leave the cores to decode and draw
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # a missing CUDA library is reported by us, from get_providers()
    try:
        return ort.InferenceSession(graph if graph is not None else str(path), opts, providers=wanted)
    except Exception as e:  # onnxruntime raises its own types for a bad or non-ONNX file
        raise UserError(f"cannot load model {path}: not a valid ONNX file ({first_line(e)}); "
                        f"pass a model exported by `python -m realtime_seg export`") from None


def load_model(path: str | Path, options: RunOptions = RunOptions(), graph: bytes | None = None) -> SegModel:
    """Open one exported file as `options` say (device 'auto' prefers CUDA; threads 0 = onnxruntime's
    choice): the session under runtime/models.py's `open_model`, which picks the file.
    `graph`: the model itself, serialised (a foreign model imported in memory, runtime/adapter.py);
    `path` then names the file it came from.

    Idle intra-op threads sleep rather than busy-wait (onnxruntime's default, `spinning=True`): the
    pipeline's decode, draw and encode stages need those cores (measured: docs/BENCHMARKS.md).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"model {path} not found; pass --model PATH to an exported .onnx file")
    if path.is_dir():
        raise UserError(f"model {path} is a folder; pass --model PATH to an exported .onnx file")
    check_readable(path, "model")
    session = _session(path, providers(options.device), options.threads, options.spinning, graph)
    provider = session.get_providers()[0]  # onnxruntime falls back to CPU silently: trust this
    if options.device == "cuda" and provider != CUDA:
        raise UserError("--device cuda: CUDA libraries could not be loaded (CUDA 13 and cuDNN 9 "
                        "are needed); fix the install or use --device cpu")
    meta = read_metadata(path, session)
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    names = [o.name for o in session.get_outputs()]
    scores = PROBS if PROBS in names else LOGITS if LOGITS in names else None
    size = tuple(json.loads(meta["input_size"]))
    any_size = len(inp.shape) == 4 and not any(isinstance(d, int) for d in inp.shape[1:3])
    if (len(inp.shape) != 4 or inp.shape[3] != 3 or (tuple(inp.shape[1:3]) != size and not any_size)
            or inp.type not in INPUT_DTYPES):
        raise UserError(f"model {path} takes input {inp.shape} {inp.type}, expected (N, {size[0]}, {size[1]}, 3) "
                        f"uint8 or float32 RGB; re-export it with `python -m realtime_seg export`")
    aspect = file_aspect(path, meta, any_size)
    stride = output_stride(path, meta)
    precision = meta.get(PRECISION, "fp32")
    if precision not in PRECISIONS:
        raise UserError(f"model {path} has precision {precision!r} in its metadata; allowed: "
                        f"{', '.join(PRECISIONS)}; re-export it with `python -m realtime_seg export`")
    classes = json.loads(meta["classes"])
    palette = np.array(json.loads(meta["palette"]), np.uint8).reshape(-1, 3)
    if len(palette) != len(classes):
        raise UserError(f"model {path} has {len(classes)} classes but {len(palette)} colours; re-export it")
    log.info("model %s (%s) on %s, input %s %s (%s), %d classes", path.name, precision, provider, inp.type,
             size, aspect, len(classes))
    return SegModel(path, session, classes, np.ascontiguousarray(palette[:, ::-1]), size,
                    inp.name, CLASS_MAP if CLASS_MAP in names else out.name, provider, meta, precision,
                    INPUT_DTYPES[inp.type], scores, inp.shape[0] == 1, any_size, aspect, stride)


def file_aspect(path: Path, meta: dict[str, str], any_size: bool) -> str:
    """What the file does with another aspect: its metadata `aspect` when its graph takes any size,
    else squash (a graph of one size, as every export before issue 35)."""
    aspect = meta.get(ASPECT, "squash")
    if aspect not in ASPECTS:
        raise UserError(f"model {path} has aspect {aspect!r} in its metadata; allowed: {', '.join(ASPECTS)}; "
                        f"re-export it with `python -m realtime_seg export`")
    return aspect if any_size else "squash"


def output_stride(path: Path, meta: dict[str, str]) -> int:
    """How much smaller than its input the file's outputs are: metadata `output_stride` (1 if missing)."""
    value = meta.get(OUTPUT_STRIDE, "1")
    if value not in ("1", "2", "4"):
        raise UserError(f"model {path} has output_stride {value!r} in its metadata; allowed: 1, 2, 4; "
                        f"re-export it with `python -m realtime_seg export`")
    return int(value)
