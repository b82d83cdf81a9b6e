"""What happens around each training epoch: scoring val and held-out drives, checkpoints, interrupts.

The Keras callback writes best.keras, last.keras and state.json atomically after every epoch, so a
run cut off anywhere continues with --resume; SIGTERM and Ctrl-C save last.keras before exiting.
"""
from __future__ import annotations

import contextlib
import csv
import json
import signal
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..contract import input_size_for
from ..datasets.augment import resize_image
from ..datasets.metrics import iou_per_class, score, summarize
from ..errors import Interrupted
from ..system import on_stop_signals, signals_deferred, write_atomic, write_json
from . import curves
from .backend import import_keras  # Keras loads when called

HINT = "free space or choose another --out"


def keras_predictor(model, size: tuple[int, int], aspect: str = "keep"):
    """RGB images of any size -> class maps, preprocessed as the runtime does: resized whole to `size`
    (squash), or (keep) at `size`'s height and the frame's own aspect, through a view of the model
    that shares its weights (progressive.small_view)."""
    from .progressive import small_view
    views = {tuple(size): model}

    def run(x: np.ndarray) -> np.ndarray:
        at = x.shape[1:3]
        if at not in views:
            views[at] = small_view(model, at)
        # predict_on_batch runs a traced function: twice as fast as an eager call on a CPU
        return np.argmax(views[at].predict_on_batch(x), axis=-1)   # (N, H, W) class ids

    def predict(images: list[np.ndarray]) -> list[np.ndarray]:
        sizes = [input_size_for(i.shape, size, aspect) for i in images]
        if len(set(sizes)) == 1:
            x = np.stack([resize_image(i, sizes[0]) for i in images]).astype(np.float32) / 255.0
            return list(run(x))
        return [run(resize_image(i, s)[None].astype(np.float32) / 255.0)[0] for i, s in zip(images, sizes)]
    return predict


def save_atomic(model, path: Path) -> None:
    """An interrupt mid-save must not leave a half-written checkpoint that breaks --resume."""
    write_atomic(path, model.save, hint=HINT)


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[list[int]]:
    """SIGTERM ends training the way Ctrl-C does (KeyboardInterrupt); the signals received are listed."""
    received: list[int] = []

    def handler(signum: int) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    with on_stop_signals(handler):
        yield received


def save_after_interrupt(model, run: Path, received: list[int]) -> Interrupted:
    """Save last.keras (further signals wait until it is written), remove temporaries; the error to raise."""
    with signals_deferred():
        for tmp in run.glob(".*.partial.*"):  # a checkpoint or state.json cut off mid-write
            tmp.unlink(missing_ok=True)
        save_atomic(model, run / "last.keras")
    state = run / "state.json"  # what --resume will read: the epochs completed and recorded
    epoch = json.loads(state.read_text()).get("epoch", 0) + 1 if state.exists() else 1
    signum = received[0] if received else signal.SIGINT
    return Interrupted(f"interrupted ({signal.Signals(signum).name}) in epoch {epoch}; "
                       f"{run / 'last.keras'} saved: continue with --resume", signum)


def _score(model, size, pairs, num_classes: int, prefix: str, logs: dict, state: dict) -> None:
    """mIoU and pixel accuracy of `pairs` into the epoch's logs; the last epoch's per-class IoU into state."""
    cm = score(keras_predictor(model, size), pairs, num_classes)
    scores, per_class = summarize(cm), iou_per_class(cm)
    logs[f"{prefix}_miou"], logs[f"{prefix}_pixel_accuracy"] = scores["miou"], scores["pixel_accuracy"]
    key = "last" if prefix == "val" else f"last_{prefix}"  # state.json's names from before drives
    state[f"{key}_miou"], state[f"{key}_per_class"] = float(scores["miou"]), [float(v) for v in per_class]
    if prefix == "val":
        logs["val_per_class_iou"] = per_class


SCORED = {"val": "val", "holdout": "held-out drive", "camera": "held-out camera"}  # log prefix -> words


def epoch_callbacks(cfg, run: Path, scored: dict[str, list], table, state: dict, model=None,
                    append: bool | None = None):
    """Keras callbacks: the `scored` sets (SCORED's prefixes: val, held-out drives, held-out cameras)
    scored after each epoch, checkpoints, metrics.csv.

    `model` is the one scored and saved (default: the one being fitted; progressive resizing fits a
    smaller view of it). metrics.csv is appended to when `append` (default: with --resume); each
    epoch's row has its training seconds (before scoring) and the input size it trained at, unless
    a resumed run's file was started without those columns.
    """
    keras = import_keras()
    append = cfg.resume if append is None else append
    metrics = run / "metrics.csv"
    timed = not append or not metrics.is_file() or "seconds" in _header(metrics)

    class Checkpoints(keras.callbacks.Callback):
        """Validation mIoU after each epoch; keeps best.keras and last.keras (atomically)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            if timed:  # numbers: Keras's progress line averages every value in logs
                logs["seconds"] = round(time.perf_counter() - self.started, 2)
                logs["input_height"], logs["input_width"] = (int(s) for s in self.model.inputs[0].shape[1:3])
            target = model if model is not None else self.model
            for prefix, pairs in scored.items():
                if pairs:
                    _score(target, cfg.input_size, pairs, table.num_classes, prefix, logs, state)
            state["epoch"] = epoch + 1
            miou = next((logs[f"{p}_miou"] for p in SCORED if f"{p}_miou" in logs), -logs.get("loss", 0.0))
            if miou > state.get("best_miou", -np.inf):
                state.update(best_miou=float(miou), best_epoch=epoch + 1,
                             best_per_class=[float(v) for v in logs.get("val_per_class_iou", [])])
                save_atomic(target, run / "best.keras")
            save_atomic(target, run / "last.keras")
            logs.pop("val_per_class_iou", None)
            write_json(run / "state.json", state, hint=HINT)
            _print_scores(logs, state)
            curves.update(run, target.optimizer, epoch, logs, state.get("best_epoch"))  # curves.png

    return [Checkpoints(), keras.callbacks.CSVLogger(str(metrics), append=append)]


def _header(path: Path) -> list[str]:
    """The column names on a CSV file's first line."""
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def _print_scores(logs: dict, state: dict) -> None:
    parts = []
    if "val_miou" in logs:
        parts.append(f"val mIoU {logs['val_miou']:.4f}  pixel acc {logs['val_pixel_accuracy']:.4f}")
    parts += [f"{words} mIoU {logs[f'{p}_miou']:.4f}" for p, words in SCORED.items()
              if p != "val" and f"{p}_miou" in logs]
    if parts:
        print("  " + "  ".join(parts) + f"  (best {state['best_miou']:.4f} @ epoch {state['best_epoch']})",
              flush=True)
