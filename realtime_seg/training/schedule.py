"""Learning-rate schedules stepped per batch: linear warm-up, then cosine or poly decay (Keras 3)."""
from __future__ import annotations

import math

import keras
from keras import ops

from .encoders import PREFIX
from .options import OPTIMIZERS, SCHEDULES


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


class _EncoderRate:
    """Mixed into Adam/AdamW: variables of layers named `encoder_prefix`* step at `encoder_lr_scale` x lr.

    A pretrained encoder wants smaller steps than a decoder that starts from random weights.
    """

    def __init__(self, *args, encoder_lr_scale: float = 1.0, encoder_prefix: str = PREFIX, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder_lr_scale, self.encoder_prefix = float(encoder_lr_scale), encoder_prefix
        self._encoder_vars: set[int] = set()

    def build(self, variables):
        super().build(variables)
        self._encoder_vars = {self._get_variable_index(v) for v in variables
                              if v.path.startswith(self.encoder_prefix)}

    def update_step(self, gradient, variable, learning_rate):
        if self.encoder_lr_scale != 1.0 and self._get_variable_index(variable) in self._encoder_vars:
            learning_rate = learning_rate * self.encoder_lr_scale
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict:
        return {**super().get_config(), "encoder_lr_scale": self.encoder_lr_scale,
                "encoder_prefix": self.encoder_prefix}


@keras.saving.register_keras_serializable(package="realtime_seg")
class EncoderAdam(_EncoderRate, keras.optimizers.Adam):
    """Adam with the encoder's own learning-rate scale."""


@keras.saving.register_keras_serializable(package="realtime_seg")
class EncoderAdamW(_EncoderRate, keras.optimizers.AdamW):
    """AdamW with the encoder's own learning-rate scale."""


def make_optimizer(name: str, lr: float, weight_decay: float, kind: str, total_steps: int,
                   warmup_steps: int, encoder_lr_scale: float = 1.0):
    """Adam or AdamW on a WarmupDecay schedule; AdamW leaves batch-norm scales and biases undecayed.

    `encoder_lr_scale` multiplies the rate of the pretrained encoder's layers (named PREFIX*).
    """
    rate = WarmupDecay(lr, total_steps, warmup_steps, kind)
    if name == "adam":
        return EncoderAdam(rate, encoder_lr_scale=encoder_lr_scale)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    optimizer = EncoderAdamW(rate, weight_decay=weight_decay, encoder_lr_scale=encoder_lr_scale)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer
