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

from ..system import quiet_stderr


def import_keras():
    """`import keras` with file descriptor 2 pointed at /dev/null while it loads its backend."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import keras
    return keras
