"""ImageNet-pretrained encoders for the U-Nets: EfficientNet-Lite0/1/2 in Keras 3 (named layers).

EfficientNet-Lite (Tan & Le 2019; the "Lite" variant for mobile accelerators) is EfficientNet
without squeeze-excite, with ReLU6 and a fixed stem and head: it exports and quantizes cleanly.

    image in [0, 1] -> (x*255 - 127) / 128        (the TF checkpoint's normalisation, in the graph)
    stem: conv 3x3 /2, BN, ReLU6                                      (H/2)
    MBConv blocks (expand 1x1, depthwise kxk, project 1x1; identity when shape is kept)
      stage 1 x1 -> 16 ch          skip "s2"   (H/2)
      stage 2    -> 24 ch  /2      skip "s4"   (H/4)
      stage 3    -> 40 ch  /2      skip "s8"   (H/8)
      stage 4,5  -> 80, 112 ch /2  skip "s16"  (H/16)
      stage 6,7  -> 192, 320 ch /2 skip "s32"  (H/32)
    head (classifier only): conv 1x1 1280, BN, ReLU6, global pool, dense 1000

The network's shape is read from the packaged state dict (block count, widths, kernels), so the
three sizes share one builder. Layer names start with `enc_`: training gives them their own
learning rate.
"""
from __future__ import annotations

import numpy as np

import keras
from keras import layers

from .pretrained import load_state_dict

ENCODERS = ("lite0", "lite1", "lite2")
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)  # EfficientNet's seven stages
PREFIX = "enc_"
_BN_EPS = 1e-3


def _blocks(state: dict) -> list[dict]:
    """Each MBConv block's kernel, stride, in/out channels and expansion, from the weights' shapes."""
    count = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    blocks, stage, prev_out = [], -1, None
    for i in range(count):
        dw = state[f"_blocks.{i}._depthwise_conv.weight"]      # (C, 1, k, k)
        out = state[f"_blocks.{i}._project_conv.weight"].shape[0]
        expand = f"_blocks.{i}._expand_conv.weight" in state
        c_in = state[f"_blocks.{i}._expand_conv.weight"].shape[1] if expand else dw.shape[0]
        first = out != prev_out
        stage += first
        blocks.append(dict(index=i, kernel=dw.shape[2], stride=STAGE_STRIDES[stage] if first else 1,
                           c_in=c_in, c_mid=dw.shape[0], c_out=out, expand=expand))
        prev_out = out
    return blocks


def _conv_bn(x, filters: int, kernel: int, name: str, strides: int = 1, act: bool = True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPS, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if act else x


def _mbconv(x, b: dict, name: str):
    """Inverted residual: expand 1x1, depthwise kxk (stride), project 1x1 (linear), identity."""
    y = _conv_bn(x, b["c_mid"], 1, f"{name}_expand") if b["expand"] else x
    y = layers.DepthwiseConv2D(b["kernel"], strides=b["stride"], padding="same", use_bias=False,
                               name=f"{name}_dw_conv")(y)
    y = layers.BatchNormalization(epsilon=_BN_EPS, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu6")(y)
    y = _conv_bn(y, b["c_out"], 1, f"{name}_project", act=False)
    if b["stride"] == 1 and b["c_in"] == b["c_out"]:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def efficientnet_lite(name: str, inputs) -> tuple[dict, list]:
    """The encoder on `inputs` (float [0, 1] RGB): ({"s2".."s32": tensor}, [(layer, weights)] to load)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; allowed: {', '.join(ENCODERS)}")
    state = load_state_dict(name)
    blocks = _blocks(state)
    x = layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name=f"{PREFIX}normalize")(inputs)
    x = _conv_bn(x, state["_conv_stem.weight"].shape[0], 3, f"{PREFIX}stem", strides=2)
    taps, stride = {}, 2
    for b, nxt in zip(blocks, blocks[1:] + [None]):
        x = _mbconv(x, b, f"{PREFIX}b{b['index']}")
        stride *= b["stride"]
        if nxt is None or nxt["stride"] == 2:  # the last block at this resolution
            taps[f"s{stride}"] = x
    return taps, _assignments(state, blocks)


def _bn(state: dict, key: str) -> list[np.ndarray]:
    return [state[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]


def _conv(state: dict, key: str) -> list[np.ndarray]:
    return [state[f"{key}.weight"].transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)


def _assignments(state: dict, blocks: list[dict]) -> list[tuple[str, list[np.ndarray]]]:
    """(Keras layer name, its weights) for every encoder layer."""
    out = [(f"{PREFIX}stem_conv", _conv(state, "_conv_stem")), (f"{PREFIX}stem_bn", _bn(state, "_bn0"))]
    for b in blocks:
        src, dst = f"_blocks.{b['index']}", f"{PREFIX}b{b['index']}"
        if b["expand"]:
            out += [(f"{dst}_expand_conv", _conv(state, f"{src}._expand_conv")),
                    (f"{dst}_expand_bn", _bn(state, f"{src}._bn0"))]
        dw = state[f"{src}._depthwise_conv.weight"].transpose(2, 3, 0, 1)  # (C,1,k,k) -> (k,k,C,1)
        out += [(f"{dst}_dw_conv", [dw]), (f"{dst}_dw_bn", _bn(state, f"{src}._bn1")),
                (f"{dst}_project_conv", _conv(state, f"{src}._project_conv")),
                (f"{dst}_project_bn", _bn(state, f"{src}._bn2"))]
    out += [(f"{PREFIX}head_conv", _conv(state, "_conv_head")), (f"{PREFIX}head_bn", _bn(state, "_bn1")),
            (f"{PREFIX}fc", [state["_fc.weight"].T, state["_fc.bias"]])]
    return out


def load_weights(model: keras.Model, assignments: list) -> int:
    """Set the ImageNet weights on the layers of `model` that exist; returns how many were set."""
    names = {layer.name for layer in model.layers}
    done = 0
    for name, weights in assignments:
        if name in names:
            model.get_layer(name).set_weights(weights)
            done += 1
    return done


def classifier(name: str = "lite0", size: int = 224) -> keras.Model:
    """The full ImageNet classifier (encoder, head, 1000 logits): proves the weights are ImageNet's."""
    inputs = keras.Input((size, size, 3), name="image")
    taps, assignments = efficientnet_lite(name, inputs)
    state_head = dict(assignments)
    x = _conv_bn(taps["s32"], state_head[f"{PREFIX}head_conv"][0].shape[-1], 1, f"{PREFIX}head")
    x = layers.GlobalAveragePooling2D(name=f"{PREFIX}pool")(x)
    logits = layers.Dense(1000, name=f"{PREFIX}fc")(x)
    model = keras.Model(inputs, logits, name=f"efficientnet_{name}")
    load_weights(model, assignments)
    return model
