"""The seed's U-Net (Ronneberger et al. 2015) in Keras 3: backend-agnostic, named layers.

    inputs (H, W, 3)
      conv_block n  ─────────────────────────────┐ skip1 (H,    W)
      conv_block 2n ──────────────────────┐      │ skip2 (H/2,  W/2)
      conv_block 4n ───────────────┐      │      │ skip3 (H/4,  W/4)
      conv_block 8n, dropout ─┐    │      │      │ skip4 (H/8,  W/8)
      bottleneck 16n, dropout │    │      │      │       (H/16, W/16)
      upsampling_block 8n ◄───┘    │      │      │
      upsampling_block 4n ◄────────┘      │      │
      upsampling_block 2n ◄───────────────┘      │
      upsampling_block n  ◄──────────────────────┘
      conv 3x3 n, conv 1x1 n_classes -> logits (H, W, n_classes)
"""
from __future__ import annotations

import keras
from keras import layers


def _conv(n_filters: int, name: str) -> layers.Conv2D:
    return layers.Conv2D(n_filters, 3, activation="relu", padding="same",
                         kernel_initializer="he_normal", name=name)


def conv_block(inputs, n_filters: int = 32, dropout_prob: float = 0.0,
               max_pooling: bool = True, name: str = "down"):
    """Two 3x3 convs, optional dropout and 2x2 max-pool; returns (next_layer, skip)."""
    x = _conv(n_filters, f"{name}_conv1")(inputs)
    x = _conv(n_filters, f"{name}_conv2")(x)
    if dropout_prob > 0:
        x = layers.Dropout(dropout_prob, name=f"{name}_dropout")(x)
    skip = x
    if max_pooling:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x, skip


def upsampling_block(expansive_input, contractive_input, n_filters: int = 32, name: str = "up"):
    """Transposed 3x3 conv (stride 2), concatenate the skip, two 3x3 convs."""
    up = layers.Conv2DTranspose(n_filters, 3, strides=2, padding="same", name=f"{name}_upconv")(
        expansive_input)
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")([up, contractive_input])
    x = _conv(n_filters, f"{name}_conv1")(x)
    return _conv(n_filters, f"{name}_conv2")(x)


def unet_model(input_size: tuple[int, int, int] = (96, 128, 3), n_filters: int = 32,
               n_classes: int = 23) -> keras.Model:
    """The seed's U-Net: 4 down blocks, a 16n bottleneck, 4 up blocks, 1x1 conv to logits."""
    height, width, channels = input_size
    if height % 16 or width % 16 or height <= 0 or width <= 0:
        raise ValueError(f"input size must be positive multiples of 16, got {height}x{width}")
    if channels != 3:
        raise ValueError(f"input must have 3 channels (RGB), got {channels}")
    if n_filters < 1 or n_classes < 2:
        raise ValueError(f"need n_filters >= 1 and n_classes >= 2, got {n_filters}, {n_classes}")
    inputs = keras.Input(input_size, name="image")                          # (H, W, 3)
    x, skip1 = conv_block(inputs, n_filters, name="down1")                  # (H/2, W/2, n)
    x, skip2 = conv_block(x, 2 * n_filters, name="down2")                   # (H/4, W/4, 2n)
    x, skip3 = conv_block(x, 4 * n_filters, name="down3")                   # (H/8, W/8, 4n)
    x, skip4 = conv_block(x, 8 * n_filters, dropout_prob=0.3, name="down4")  # (H/16, W/16, 8n)
    x, _ = conv_block(x, 16 * n_filters, dropout_prob=0.3, max_pooling=False,
                      name="bottleneck")                                    # (H/16, W/16, 16n)
    x = upsampling_block(x, skip4, 8 * n_filters, name="up4")               # (H/8, W/8, 8n)
    x = upsampling_block(x, skip3, 4 * n_filters, name="up3")               # (H/4, W/4, 4n)
    x = upsampling_block(x, skip2, 2 * n_filters, name="up2")               # (H/2, W/2, 2n)
    x = upsampling_block(x, skip1, n_filters, name="up1")                   # (H, W, n)
    x = _conv(n_filters, "head_conv")(x)
    logits = layers.Conv2D(n_classes, 1, padding="same", name="logits")(x)  # (H, W, classes)
    return keras.Model(inputs, logits, name="unet")


def count_flops(model: keras.Model) -> int:
    """Multiply-adds x2 of the convolutions for one image (the cost that bounds inference)."""
    flops = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
            kh, kw, c_in, c_out = layer.kernel.shape
            if isinstance(layer, layers.Conv2DTranspose):  # each input pixel scatters a kernel
                _, h, w, _ = layer.input.shape
            else:
                _, h, w, _ = layer.output.shape
            flops += 2 * h * w * kh * kw * c_in * c_out
    return int(flops)
