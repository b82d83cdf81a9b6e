"""What training reads: the run's samples of each --data (held-out drives and cameras apart), decoded
pairs, per-pixel class weights and the shuffled, augmented batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets.augment import DEFAULT_AUGMENT, VOID, augment, resize_pair
from ..datasets.readers import READERS, Dataset, drives, hold_out, load_pair, load_split, parse_drives
from ..errors import DataError, UsageError
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


def data_roots(cfg) -> list[str]:
    """The --data folders, in order (one folder given as a string is a list of one)."""
    return [cfg.data] if isinstance(cfg.data, (str, Path)) else [str(d) for d in cfg.data]


def data_weights(cfg) -> list[int]:
    """How many times an epoch each --data folder's frames are drawn: --data-weights, else 1 each."""
    n = len(data_roots(cfg))
    if not cfg.data_weights:
        return [1] * n
    try:
        weights = [int(w) for w in cfg.data_weights.split(",")]
    except ValueError:
        weights = []
    if len(weights) != n or min(weights) < 1:
        raise UsageError(f"--data-weights {cfg.data_weights}: give {n} whole number(s) >= 1, one per --data "
                         f"(how many times an epoch its frames are drawn)")
    return weights


def run_samples(cfg, dataset, names: tuple[str, ...] | None = None) -> tuple[list, list, list]:
    """The (train, val, held-out drive) samples a run uses of one dataset.

    --holdout-drive (or `names`, the drives of this dataset among them) takes every frame of those
    drives out of train and val (scored apart: a drive the model never saw), then --limit applies,
    then val joins train for trainval.
    """
    where = f"{cfg.data} (train + val)"
    names = parse_drives(cfg.holdout_drive) if names is None else names
    kept, held = hold_out(dataset.train + dataset.val, dataset.format, names, where)
    kept = set(kept)
    train_s, val_s = [s for s in dataset.train if s in kept], [s for s in dataset.val if s in kept]
    if not train_s:
        raise UsageError(f"--holdout-drive {cfg.holdout_drive} leaves no training frames in {cfg.data}; "
                         f"hold out fewer drives")
    if cfg.limit:
        train_s, val_s, held = (train_s[:cfg.limit], val_s[:max(1, cfg.limit // 4)],
                                held[:max(1, cfg.limit // 4)])
    if cfg.train_split == "trainval":  # the shipping recipe: val still scored, but no longer held out
        train_s = train_s + val_s
    return train_s, val_s, held


def _holdout_names(cfg, datasets: list[Dataset]) -> list[tuple[str, ...]]:
    """--holdout-drive's names split by the dataset whose drive each is; an unknown name is a usage error."""
    names = parse_drives(cfg.holdout_drive)
    if len(datasets) == 1:
        return [names]
    known = [drives(ds.train + ds.val, ds.format) for ds in datasets]
    unknown = [n for n in names if not any(n in k for k in known)]
    if unknown:
        listed = ", ".join(f"{root}: {', '.join(k) if len(k) <= 6 else f'{len(k)} drives'}"
                           for root, k in zip(data_roots(cfg), known))
        raise UsageError(f"unknown --holdout-drive {unknown[0]!r}; the drives are {listed}")
    return [tuple(n for n in names if n in k) for k in known]


def decode_run(cfg, datasets: list[Dataset]) -> tuple[tuple, tuple]:
    """((train, val, drive, camera) sample counts, the same four as decoded pairs) of every dataset:
    trained, scored as val, held out by drive, held out whole (--holdout-data); train repeated per
    --data-weights."""
    counts, pairs = [0, 0, 0, 0], ([], [], [], [])
    roots = data_roots(cfg)
    for root, ds, names, repeat in zip(roots, datasets, _holdout_names(cfg, datasets), data_weights(cfg)):
        where = f" ({Path(root).name})" if len(roots) > 1 else ""
        for i, (samples, name) in enumerate(zip(run_samples(cfg, ds, names), ("train", "val", "held-out drive"))):
            counts[i] += len(samples)
            pairs[i].extend(decode_pairs(ds, samples, f"decode {name}{where}") * (repeat if i == 0 else 1))
    for root in cfg.holdout_data:
        camera = _held_out_camera(root, datasets[0].table)
        counts[3] += len(camera.train)
        pairs[3].extend(decode_pairs(camera, camera.train, f"decode held-out camera ({Path(root).name})"))
    return tuple(counts), pairs


def _held_out_camera(root: str, table) -> Dataset:
    """Every labelled frame of `root` in the run's class set (a dataset the run never trains on)."""
    fmt, samples = load_split(root, "all")
    if not samples:
        raise DataError(f"--holdout-data {root} has no image/label pairs; point it at a labelled dataset")
    try:
        theirs = READERS[fmt].table(samples, table.name)
    except UsageError:  # labels that cannot map onto the run's class set: name their own
        theirs = READERS[fmt].table(samples, "auto")
    if theirs != table:
        raise DataError(f"--holdout-data {root} has {theirs.name}'s classes, not the run's {table.name}; "
                        f"hold out a dataset whose labels map onto {table.name}")
    return Dataset(fmt, table, samples, [])
