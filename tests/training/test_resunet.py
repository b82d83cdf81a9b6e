"""The residual U-Net and the one builder: shapes, named layers, FLOPs, one training step."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from realtime_seg.training import model as model_module  # noqa: E402
from realtime_seg.training.model import count_flops, get_model  # noqa: E402
from realtime_seg.training.options import ARCHS  # noqa: E402  (the one table, read before Keras loads)


@pytest.fixture(scope="module")
def resunet():
    return get_model("resunet", (64, 96), 11, 8)


def test_get_model_seed_is_the_seed_unet():
    model = get_model("seed", (96, 128), 23)  # the seed's default width (32)
    assert model.count_params() == 8_640_471 and model.name == "unet"


def test_unknown_arch_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: resunet, seed, lite0, lite1, lite2"):
        get_model("segnet", (64, 96), 11, 8)
    assert tuple(ARCHS) == ("resunet", "seed", "lite0", "lite1", "lite2")
    assert model_module._BUILDERS.keys() == ARCHS.keys()  # a builder for every architecture, no other


def test_resunet_shapes_and_named_layers(resunet):
    assert tuple(resunet.inputs[0].shape) == (None, 64, 96, 3)
    assert tuple(resunet.outputs[0].shape) == (None, 64, 96, 11)
    names = {layer.name for layer in resunet.layers}
    for name in ("image", "stem1_conv", "stem1_bn", "enc2_res1_add", "enc3_res1_add",
                 "enc4_down_dw", "enc4_res3_a_dw", "context_d8_dw", "context_pool", "context_fuse_conv",
                 "dec3_up", "dec1_concat", "head", "logits"):
        assert name in names, name
    assert resunet.layers[-1].name == "logits"
    # the deepest stage is dilated and depthwise-separable; skips reach the decoder
    assert resunet.get_layer("enc4_res3_a_dw").dilation_rate == (4, 4)
    assert resunet.get_layer("context_d8_dw").dilation_rate == (8, 8)
    assert resunet.get_layer("dec1_concat").output.shape[-1] == 2 * 8 + 8  # upsampled + skip1
    out = np.asarray(resunet(np.random.default_rng(0).random((2, 64, 96, 3), np.float32), training=False))
    assert out.shape == (2, 64, 96, 11) and np.isfinite(out).all()


def test_resunet_is_cheaper_per_pixel_than_the_seed_at_equal_width():
    seed, res = get_model("seed", (96, 128), 11, 16), get_model("resunet", (96, 128), 11, 16)
    assert count_flops(res) < count_flops(seed) / 3
    assert res.count_params() < seed.count_params() / 3


def test_flops_count_depthwise_and_scale_with_area():
    small, large = get_model("resunet", (32, 48), 11, 4), get_model("resunet", (64, 96), 11, 4)
    depthwise = [layer for layer in small.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert depthwise  # counted: 2 * H * W * 9 * C each
    kh, kw, c_in, c_out = small.get_layer("context_pool_conv").kernel.shape
    pooled = 2 * kh * kw * c_in * c_out  # the global-pool branch runs on one pixel at any size
    assert count_flops(large) - pooled == 4 * (count_flops(small) - pooled)


def test_default_width_per_arch():
    assert get_model("resunet", (32, 48), 11).get_layer("stem1_conv").filters == 16
    assert get_model("seed", (32, 48), 11).get_layer("down1_conv1").filters == 32


@pytest.mark.parametrize("size", [(30, 40), (0, 16)])
def test_resunet_rejects_sizes_not_multiple_of_16(size):
    with pytest.raises(ValueError, match="multiples of 16"):
        get_model("resunet", size, 11, 4)


def test_resunet_trains_one_step(resunet):
    """One AdamW step on a real CamVid-shaped batch: the loss is finite and the weights move."""
    from realtime_seg.training.schedule import make_optimizer
    model = keras.models.clone_model(resunet)
    model.compile(optimizer=make_optimizer("adamw", 1e-2, 1e-4, "poly", 10, 2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((2, 64, 96, 3), np.float32)
    y = rng.integers(0, 11, (2, 64, 96)).astype(np.int32)
    before = [np.array(w) for w in model.trainable_weights]
    loss = float(model.train_on_batch(x, y))
    assert np.isfinite(loss) and 1.0 < loss < 10.0  # ~ln(11) at the start
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, model.trainable_weights))
