"""U-Nets in Keras 3 (backend-agnostic, named layers): the seed's and a residual one.

`get_model(arch, input_size, num_classes, width)` builds either:

seed: the seed's U-Net (Ronneberger et al. 2015), unchanged.

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

resunet: the same encoder-decoder with skips, built for quality per FLOP. Every conv is
followed by batch normalization; the encoder's stages are residual; the deepest stage uses
depthwise-separable, dilated convs (cheap, wide receptive field); a context module (parallel
dilated branches and global pooling, as in ASPP) sits at the bottleneck; the decoder upsamples
bilinearly, concatenates the skip and convolves (no transposed convs, no checkerboard).

    inputs (H, W, 3)
      stem: conv 3x3 /2 n, conv 3x3 n ──────────────────────┐ skip1 (H/2,  W/2,  n)
      enc2: conv 3x3 /2 2n, residual block ──────────┐      │ skip2 (H/4,  W/4,  2n)
      enc3: conv 3x3 /2 4n, residual block ───┐      │      │ skip3 (H/8,  W/8,  4n)
      enc4: separable /2 8n, 3 separable      │      │      │       (H/16, W/16, 8n)
            residual blocks, dilation 1, 2, 4 │      │      │
      context: 1x1 | sep d2 | sep d4 | sep d8 | global pool -> 1x1 4n
      dec3: bilinear x2, concat ◄─────────────┘      │      │       (H/8,  W/8,  4n)
      dec2: bilinear x2, concat ◄────────────────────┘      │       (H/4,  W/4,  2n)
      dec1: bilinear x2, concat ◄───────────────────────────┘       (H/2,  W/2,  2n)
      head: conv 1x1 n_classes, bilinear x2 -> logits (H, W, n_classes)

`train` appends `LogitAdjustment` to any of them trained with class weights: the weighted loss's
prior, log(weight), is subtracted from the logits at inference (not in training).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .options import ARCHS  # the architectures: names, default widths, how each trains


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


def _check_args(input_size: tuple[int, int, int], n_filters: int, n_classes: int) -> None:
    """Both U-Nets halve the size 4 times: (H, W) must be positive multiples of 16."""
    height, width, channels = input_size
    if height % 16 or width % 16 or height <= 0 or width <= 0:
        raise ValueError(f"input size must be positive multiples of 16, got {height}x{width}")
    if channels != 3:
        raise ValueError(f"input must have 3 channels (RGB), got {channels}")
    if n_filters < 1 or n_classes < 2:
        raise ValueError(f"need n_filters >= 1 and n_classes >= 2, got {n_filters}, {n_classes}")


def unet_model(input_size: tuple[int, int, int] = (96, 128, 3), n_filters: int = 32,
               n_classes: int = 23) -> keras.Model:
    """The seed's U-Net: 4 down blocks, a 16n bottleneck, 4 up blocks, 1x1 conv to logits."""
    _check_args(input_size, n_filters, n_classes)
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



# --- resunet ----------------------------------------------------------------------------------

def _conv_bn(x, filters: int, name: str, kernel: int = 3, strides: int = 1, dilation: int = 1,
             relu: bool = True):
    """Conv (no bias: batch norm has one), batch norm, optional ReLU."""
    x = layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same",
                      use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _separable_bn(x, filters: int, name: str, strides: int = 1, dilation: int = 1,
                  relu: bool = True):
    """Depthwise 3x3 (dilated), BN, ReLU, pointwise 1x1, BN, optional ReLU: ~9x cheaper than a 3x3."""
    x = layers.DepthwiseConv2D(3, strides=strides, dilation_rate=dilation, padding="same",
                               use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    return _conv_bn(x, filters, f"{name}_pw", kernel=1, relu=relu)


def residual_block(x, filters: int, name: str, separable: bool = False, dilation: int = 1):
    """Two (separable) 3x3 conv-BNs plus the identity, then ReLU (He et al. 2016)."""
    block = _separable_bn if separable else _conv_bn
    y = block(x, filters, f"{name}_a", dilation=dilation)
    y = block(y, filters, f"{name}_b", dilation=dilation, relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


POOL_UP = "_pool_up"  # the pooled branch's broadcast by the feature map's size (progressive.small_view remakes it)


def context_module(x, filters: int, name: str = "context"):
    """Parallel 1x1, dilated separable (rates 2, 4, 8) and global-pool branches, fused by a 1x1."""
    _, h, w, _ = x.shape
    branches = [_conv_bn(x, filters, f"{name}_b1", kernel=1)]
    branches += [_separable_bn(x, filters, f"{name}_d{r}", dilation=r) for r in (2, 4, 8)]
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = layers.Conv2D(filters, 1, activation="relu", name=f"{name}_pool_conv")(pooled)
    branches.append(layers.UpSampling2D((h, w), name=f"{name}{POOL_UP}")(pooled))  # broadcast back
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    x = _conv_bn(x, filters, f"{name}_fuse", kernel=1)
    return layers.SpatialDropout2D(0.1, name=f"{name}_dropout")(x)


def decoder_block(x, skip, filters: int, name: str):
    """Bilinear x2, concatenate the encoder's skip, conv 3x3-BN-ReLU."""
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    return _conv_bn(x, filters, name)


def resunet_model(input_size: tuple[int, int, int] = (192, 256, 3), n_filters: int = 16,
                  n_classes: int = 11) -> keras.Model:
    """The residual U-Net of the module docstring; logits at the input's size."""
    _check_args(input_size, n_filters, n_classes)
    n = n_filters
    inputs = keras.Input(input_size, name="image")                                  # (H, W, 3)
    x = _conv_bn(inputs, n, "stem1", strides=2)
    skip1 = _conv_bn(x, n, "stem2")                                                 # (H/2, n)
    x = _conv_bn(skip1, 2 * n, "enc2_down", strides=2)
    skip2 = residual_block(x, 2 * n, "enc2_res1")                                   # (H/4, 2n)
    x = _conv_bn(skip2, 4 * n, "enc3_down", strides=2)
    skip3 = residual_block(x, 4 * n, "enc3_res1")                                   # (H/8, 4n)
    x = _separable_bn(skip3, 8 * n, "enc4_down", strides=2)                         # (H/16, 8n)
    for i, rate in enumerate((1, 2, 4), start=1):
        x = residual_block(x, 8 * n, f"enc4_res{i}", separable=True, dilation=rate)
    x = context_module(x, 4 * n)                                                    # (H/16, 4n)
    x = decoder_block(x, skip3, 4 * n, "dec3")                                      # (H/8, 4n)
    x = decoder_block(x, skip2, 2 * n, "dec2")                                      # (H/4, 2n)
    x = decoder_block(x, skip1, 2 * n, "dec1")                                      # (H/2, 2n)
    x = layers.Conv2D(n_classes, 1, name="head")(x)                                 # (H/2, classes)
    logits = layers.UpSampling2D(2, interpolation="bilinear", name="logits")(x)    # (H, W, classes)
    return keras.Model(inputs, logits, name="resunet")


# --- lite: an ImageNet-pretrained EfficientNet-Lite encoder ------------------------------------

def lite_unet_model(encoder: str, input_size: tuple[int, int, int] = (352, 480, 3), n_filters: int = 32,
                    n_classes: int = 11) -> keras.Model:
    """EfficientNet-Lite encoder (ImageNet weights, encoders.py) and a light U-Net decoder.

        inputs (H, W, 3) in [0, 1]
          encoder: s2 (H/2, 16) s4 (H/4, 24) s8 (H/8, 40) s16 (H/16, 112) s32 (H/32, 320)
          context: 1x1 | sep d2 | sep d4 | sep d8 | global pool -> 1x1 4n     (H/32, 4n)
          dec16: bilinear x2, concat s16, separable 3x3-BN-ReLU 4n           (H/16, 4n)
          dec8:  bilinear x2, concat s8,  separable 2n                        (H/8,  2n)
          dec4:  bilinear x2, concat s4,  separable 2n                        (H/4,  2n)
          dec2:  bilinear x2, concat s2,  separable n                         (H/2,  n)
          head: conv 1x1 n_classes, bilinear x2 -> logits                     (H, W, classes)
    """
    from .encoders import efficientnet_lite, load_weights
    height, width, _ = input_size
    if height % 32 or width % 32:
        raise ValueError(f"input size must be multiples of 32 for a lite encoder, got {height}x{width}")
    _check_args(input_size, n_filters, n_classes)
    n = n_filters
    inputs = keras.Input(input_size, name="image")
    taps, assignments = efficientnet_lite(encoder, inputs)
    x = context_module(taps["s32"], 4 * n)
    for name, filters in (("s16", 4 * n), ("s8", 2 * n), ("s4", 2 * n), ("s2", n)):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{name[1:]}_up")(x)
        x = layers.Concatenate(name=f"dec{name[1:]}_concat")([x, taps[name]])
        x = _separable_bn(x, filters, f"dec{name[1:]}")
    x = layers.Conv2D(n_classes, 1, name="head")(x)                                 # (H/2, classes)
    logits = layers.UpSampling2D(2, interpolation="bilinear", name="logits")(x)    # (H, W, classes)
    model = keras.Model(inputs, logits, name=f"{encoder}_unet")
    load_weights(model, assignments)
    return model


def _lite(encoder: str):
    def build(input_size, n_filters, n_classes):
        return lite_unet_model(encoder, input_size, n_filters, n_classes)
    build.__doc__ = f"lite_unet_model with the EfficientNet-{encoder.capitalize()} encoder."
    return build


# --- logit adjustment: undo the class weights' prior at inference --------------------------------

ADJUSTMENT = "logit_adjustment"  # the layer's name in a trained model


@keras.saving.register_keras_serializable(package="realtime_seg")
class LogitAdjustment(layers.Layer):
    """Logits minus log(class weight) at inference; unchanged in training (Menon et al. 2021).

    A loss weighted by w_c is minimised by logits whose softmax is proportional to w_c p(c | x), so a
    model trained with median-frequency weights over-predicts rare classes (Pole, SignSymbol ...)
    and under-predicts large ones. Subtracting log w_c gives back p(c | x): training keeps the
    weighted loss's larger gradients for rare classes, inference keeps the unbiased decision.
    """

    def __init__(self, log_weights, **kwargs):
        super().__init__(**kwargs)
        self.log_weights = [float(v) for v in log_weights]

    def call(self, logits, training=None):                               # (N, H, W, C)
        if training:
            return logits
        return logits - ops.cast(ops.convert_to_tensor(self.log_weights), logits.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "log_weights": self.log_weights}


def with_logit_adjustment(model: keras.Model, class_weights) -> keras.Model:
    """`model` ending in LogitAdjustment(log class_weights), same layers; as is if all weights are 1.

    The weights are the loss's per-class weights (zero or missing: 1). A model that already ends in
    an adjustment gets its offsets replaced, not a second one.
    """
    weights = np.asarray(class_weights, np.float64)
    weights = np.where(weights > 0, weights, 1.0)
    if model.layers[-1].name == ADJUSTMENT:
        model = keras.Model(model.input, model.layers[-1].input, name=model.name)
    if np.allclose(weights, 1.0):
        return model
    adjusted = LogitAdjustment(np.log(weights), name=ADJUSTMENT)(model.outputs[0])
    return keras.Model(model.input, adjusted, name=model.name)


# --- one builder ------------------------------------------------------------------------------

# the Keras builder of each architecture in options.ARCHS (the one table; it loads before Keras)
_BUILDERS = {"resunet": resunet_model, "seed": unet_model,
             "lite0": _lite("lite0"), "lite1": _lite("lite1"), "lite2": _lite("lite2")}


def get_model(arch: str = "resunet", input_size: tuple[int, ...] = (96, 128), num_classes: int = 11,
              width: int | None = None) -> keras.Model:
    """Build `arch` for (height, width) RGB input; width None is the arch's default."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; allowed: {', '.join(ARCHS)}")
    size = tuple(input_size) if len(input_size) == 3 else (*input_size, 3)
    return _BUILDERS[arch](size, width or ARCHS[arch].width, num_classes)


def count_flops(model: keras.Model) -> int:
    """Multiply-adds x2 of the convolutions for one image (the cost that bounds inference)."""
    flops = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):  # one kh x kw filter per input channel
            kh, kw, c_in, multiplier = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            flops += 2 * h * w * kh * kw * c_in * multiplier
        elif isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
            kh, kw, c_in, c_out = layer.kernel.shape
            if isinstance(layer, layers.Conv2DTranspose):  # each input pixel scatters a kernel
                _, h, w, _ = layer.input.shape
            else:
                _, h, w, _ = layer.output.shape
            flops += 2 * h * w * kh * kw * c_in * c_out
    return int(flops)
