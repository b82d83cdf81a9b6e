"""Import Keras for the training and export commands without TensorFlow's start-up chatter.

TensorFlow 2.21 logs through absl before absl::InitializeLog() is called, which
TF_CPP_MIN_LOG_LEVEL no longer silences: every `train` or `export` would print
lines like "oneDNN custom operations are on" and "Could not find cuda drivers"
to stderr, in front of the one-line `error:` a user should see. Python errors
raised by the import are not hidden: stderr is restored before they propagate.
"""
from __future__ import annotations

import os
import sys


def import_keras():
    """`import keras` with file descriptor 2 pointed at /dev/null while it loads its backend."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreter): import as is
        import keras
        return keras
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras
