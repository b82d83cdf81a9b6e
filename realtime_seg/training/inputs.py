"""What training reads: decoded pairs, per-pixel class weights and the shuffled, augmented batches."""
from __future__ import annotations

import numpy as np

from ..datasets.augment import DEFAULT_AUGMENT, VOID, augment, resize_pair
from ..datasets.readers import Dataset, load_pair
from ..errors import UsageError
from ..system import progress
from .backend import import_keras  # loads Keras only when called

CLASS_WEIGHTS = ("none", "median", "sqrt")


def sequence_class():
    """The training batches' PyDataset class (made here: Keras loads only when training starts)."""
    keras = import_keras()

    class SegSequence(keras.utils.PyDataset):
        """Shuffled training batches of (image [0,1] float32, ids int32, pixel weights); deterministic per seed."""

        def __init__(self, pairs, size, batch_size, weights, num_classes, seed, workers,
                     ops=DEFAULT_AUGMENT, scale_range=(0.5, 2.0), void=VOID):
            super().__init__(workers=workers, use_multiprocessing=False)  # threads: JAX-safe
            self.pairs, self.size, self.batch_size = pairs, size, batch_size
            self.num_classes, self.scale_range, self.void = num_classes, scale_range, void
            self.weights, self.ops, self.seed, self.epoch = weights, tuple(ops), seed, 0
            self.order = self._order()

        def _order(self) -> np.ndarray:
            return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.pairs))

        def __len__(self) -> int:
            # full batches only (the order changes every epoch): one shape, so one compiled step
            return max(1, len(self.pairs) // self.batch_size)

        def __getitem__(self, idx: int):
            ids = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
            images, masks = zip(*(self._example(i) for i in ids))
            x = np.stack(images).astype(np.float32) / 255.0           # (B, H, W, 3)
            y = np.stack(masks)                                       # (B, H, W) ids
            w = self.weights[y]                                       # (B, H, W), void -> 0
            y = np.where(y < self.num_classes, y, 0).astype(np.int32)  # void: any valid id (weight 0)
            return x, y, w

        def _example(self, i: int):
            image, mask = self.pairs[i]
            if not self.ops:
                return resize_pair(image, mask, self.size)
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return augment(image, mask, self.size, rng, self.scale_range, self.void, self.ops)

        def on_epoch_end(self):
            self.epoch += 1
            self.order = self._order()

    return SegSequence


def pixel_weights(dataset: Dataset, pairs, mode: str) -> np.ndarray:
    """Weight per raw label id (256 entries, ids past the table -> 0).

    median: median frequency balancing (Eigen & Fergus 2015), weight = median(freq) / freq;
    sqrt: its square root, which lifts rare classes without drowning the large ones.
    """
    n = dataset.table.num_classes
    weights = np.ones(n, np.float32)
    if mode in ("median", "sqrt"):
        counts = sum(np.bincount(m.ravel(), minlength=256)[:n] for _, m in pairs).astype(float)
        freq = counts / max(counts.sum(), 1)
        present = freq > 0
        weights[present] = np.median(freq[present]) / freq[present]
        if mode == "sqrt":
            weights = np.sqrt(weights)
    elif mode != "none":
        raise UsageError(f"unknown --class-weights {mode!r}; allowed: {', '.join(CLASS_WEIGHTS)}")
    table = np.zeros(256, np.float32)  # lookup by raw id: void and anything past the table -> 0
    table[:n] = weights
    return table


def decode_pairs(dataset: Dataset, samples, desc: str) -> list:
    """Decode and check every pair up front, so bad files fail before training starts."""
    if not samples:
        return []
    with progress(samples, desc=desc) as bar:  # closed (its line ended) before an error is shown
        return [load_pair(s, dataset.format, dataset.table) for s in bar]
