"""`python -m realtime_seg [train|export|eval|batch|bench|inspect|import] ...`; no subcommand runs the live viewer.

The viewer path imports only NumPy, OpenCV and onnxruntime; training and export load Keras.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

COMMANDS = {"train": "realtime_seg.training.train", "eval": "realtime_seg.commands.evaluate",
            "batch": "realtime_seg.commands.batch", "bench": "realtime_seg.commands.bench",
            "export": "realtime_seg.export.onnx_export", "inspect": "realtime_seg.commands.inspect",
            "import": "realtime_seg.commands.import_model"}
STREAMING = (None, "batch", "bench")  # the commands that run video through the pipeline (None: the viewer)
# packages of requirements-train.txt each Keras command imports (BACKEND: the module KERAS_BACKEND names)
TRAINING = {"train": ("keras", "BACKEND"), "export": ("keras", "tensorflow", "tf2onnx", "onnx")}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that fails, or a module without a spec
        return False


def check_training_packages(name: str | None, argv: list[str]) -> None:
    """train and export without requirements-train.txt: one line now, not a traceback once the data
    is read. Looks the packages up without importing them (TensorFlow takes seconds to load)."""
    if name not in TRAINING or {"-h", "--help"} & set(argv):
        return
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    needed = [backend if module == "BACKEND" else module for module in TRAINING[name]]
    missing = [module for module in needed if not _installed(module)]
    if missing:
        from .errors import MissingPackages
        raise MissingPackages(name, missing)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=os.environ.get("REALTIME_SEG_LOG", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # FFmpeg probing warnings; we report errors
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own log (e.g. a refused stream)
    from .errors import Interrupted, UserError
    name = argv[0] if argv and argv[0] in COMMANDS else None
    if name in STREAMING:
        from .system import keep_freed_memory
        keep_freed_memory()  # frame-sized arrays reused, not page-faulted back every frame
    module = COMMANDS[name] if name else "realtime_seg.commands.view"
    try:
        check_training_packages(name, argv)
        return importlib.import_module(module).main(argv[1:] if name else argv)
    except Interrupted as e:  # cleaned up and saved what could be: not an error of the user's
        print(e, file=sys.stderr)
        return e.exit_code
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
