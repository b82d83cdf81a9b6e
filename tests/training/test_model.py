"""The seed's U-Net: size, shapes, validation of its arguments, named layers."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from realtime_seg.training.model import count_flops, unet_model  # noqa: E402


@pytest.fixture(scope="module")
def seed_model():
    return unet_model()


def test_default_is_the_seed_unet(seed_model):
    assert seed_model.count_params() == 8_640_471  # the seed notebook's U-Net, 96x128, 23 classes
    assert tuple(seed_model.inputs[0].shape) == (None, 96, 128, 3)
    assert tuple(seed_model.outputs[0].shape) == (None, 96, 128, 23)


def test_layer_names(seed_model):
    names = {layer.name for layer in seed_model.layers}
    for name in ("image", "down1_conv1", "down1_conv2", "down1_pool", "down4_dropout",
                 "bottleneck_conv2", "up4_upconv", "up1_concat", "up1_conv2", "head_conv", "logits"):
        assert name in names, name
    assert seed_model.layers[-1].name == "logits"
    assert seed_model.get_layer("logits").filters == 23


@pytest.mark.parametrize("size,width,classes", [((32, 48, 3), 4, 11), ((64, 32, 3), 8, 13)])
def test_custom_size_width_classes(size, width, classes):
    model = unet_model(size, width, classes)
    assert tuple(model.outputs[0].shape) == (None, size[0], size[1], classes)
    assert model.get_layer("down1_conv1").filters == width
    assert model.get_layer("bottleneck_conv1").filters == 16 * width
    out = np.asarray(model(np.zeros((2, *size), np.float32), training=False))
    assert out.shape == (2, size[0], size[1], classes)
    assert np.isfinite(out).all()


def test_params_scale_with_width():
    # every conv's weights grow with width^2 (bar the first conv and the 1x1 head, ~width)
    small, double = unet_model((32, 32, 3), 4, 11), unet_model((32, 32, 3), 8, 11)
    assert 3.5 < double.count_params() / small.count_params() < 4.0


@pytest.mark.parametrize("size", [(30, 40, 3), (96, 120, 3), (0, 16, 3), (-16, 32, 3)])
def test_size_not_multiple_of_16_is_rejected(size):
    with pytest.raises(ValueError, match="multiples of 16"):
        unet_model(size)


def test_bad_channels_width_classes_rejected():
    with pytest.raises(ValueError, match="3 channels"):
        unet_model((32, 32, 1))
    with pytest.raises(ValueError):
        unet_model((32, 32, 3), n_filters=0)
    with pytest.raises(ValueError):
        unet_model((32, 32, 3), n_classes=1)


def test_flops_scale_with_area():
    small, large = unet_model((32, 48, 3), 4, 11), unet_model((64, 96, 3), 4, 11)
    assert count_flops(small) > 0
    assert count_flops(large) == 4 * count_flops(small)
