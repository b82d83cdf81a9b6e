"""Learning-rate schedules stepped per batch: linear warm-up, then cosine or poly decay (Keras 3)."""
from __future__ import annotations

import math

import keras
from keras import ops

from .train import OPTIMIZERS, SCHEDULES



@keras.saving.register_keras_serializable(package="realtime_seg")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`lr` after a linear warm-up from lr/10 over `warmup_steps`, decaying to `floor` x lr at `total_steps`.

    Saved with the optimizer in every checkpoint, so `--resume` continues the same curve.
    """

    def __init__(self, lr: float, total_steps: int, warmup_steps: int = 0, kind: str = "cosine",
                 floor: float = 0.02, power: float = 0.9):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")
        self.lr, self.total_steps, self.warmup_steps = float(lr), int(total_steps), int(warmup_steps)
        self.kind, self.floor, self.power = kind, float(floor), float(power)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.lr * (0.1 + 0.9 * step / max(self.warmup_steps, 1))
        t = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        if self.kind == "cosine":
            decay = 0.5 * (1.0 + ops.cos(math.pi * t))
        elif self.kind == "poly":
            decay = ops.power(1.0 - t, self.power)
        else:
            decay = ops.ones_like(t)
        after = self.lr * (self.floor + (1.0 - self.floor) * decay)
        return ops.where(step < self.warmup_steps, warm, after)

    def get_config(self) -> dict:
        return {"lr": self.lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "kind": self.kind, "floor": self.floor, "power": self.power}


def make_optimizer(name: str, lr: float, weight_decay: float, kind: str, total_steps: int,
                   warmup_steps: int):
    """Adam or AdamW on a WarmupDecay schedule; AdamW leaves batch-norm scales and biases undecayed."""
    rate = WarmupDecay(lr, total_steps, warmup_steps, kind)
    if name == "adam":
        return keras.optimizers.Adam(rate)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    optimizer = keras.optimizers.AdamW(rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer
