"""The onnxruntime engine on the committed tiny CamVid model: metadata, providers, preprocessing."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.contract import CLASS_MAP, INPUT, preprocess
from realtime_seg.datasets.classes import CAMVID
from realtime_seg.errors import UserError
from realtime_seg.runtime.engine import RunOptions, load_model

MODEL = FIXTURES / "tiny_camvid.onnx"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, RunOptions("cpu", 1))


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted((FIXTURES / "frames").glob("*.png"))]


def test_metadata_describes_the_model(model):
    assert model.classes == list(CAMVID.classes)
    rgb = np.array(json.loads(model.metadata["palette"]), np.uint8)
    np.testing.assert_array_equal(model.palette_bgr, rgb[:, ::-1])  # OpenCV order
    assert model.input_size == tuple(json.loads(model.metadata["input_size"]))
    assert (model.input_name, model.output_name) == (INPUT, CLASS_MAP)
    assert model.provider == "CPUExecutionProvider"


def test_preprocess_is_rgb_area_resized_and_scaled(frames):
    frame = frames[0]
    small = cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA)  # less than 2x the input: plain area
    x = preprocess([small, small], (32, 48))
    assert x.shape == (2, 32, 48, 3) and x.dtype == np.float32
    expected = cv2.resize(small, (48, 32), interpolation=cv2.INTER_AREA)[..., ::-1] / 255.0
    np.testing.assert_allclose(x[1], expected, atol=1e-6)
    u8 = preprocess([small], (32, 48), np.uint8)
    assert u8.dtype == np.uint8 and np.array_equal(u8[0], cv2.resize(small, (48, 32), interpolation=cv2.INTER_AREA)[..., ::-1])


def test_large_frames_take_the_cheap_area_resize(frames):
    """2x or more: bilinear to twice the size, then exact 2x2 means; close to the area resize."""
    frame = frames[0]
    assert frame.shape[0] >= 2 * 32 and frame.shape[1] >= 2 * 48
    got = preprocess([frame], (32, 48), np.uint8)[0].astype(int)
    twice = cv2.resize(frame, (96, 64), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(got, cv2.resize(twice, (48, 32), interpolation=cv2.INTER_AREA)[..., ::-1])
    area = cv2.resize(frame, (48, 32), interpolation=cv2.INTER_AREA)[..., ::-1].astype(int)
    assert np.abs(got - area).mean() < 2.0 and not np.array_equal(got, area)


def test_predict_matches_the_session_and_batches_agree(model, frames):
    one = np.stack([model.predict([f])[0] for f in frames])
    many = model.predict(frames)
    assert many.shape == (len(frames), *model.input_size) and many.dtype == np.uint8
    np.testing.assert_array_equal(one, many)
    raw = model.session.run(None, {INPUT: preprocess(frames, model.input_size)})[0]
    np.testing.assert_array_equal(many, raw)
    assert many.max() < len(model.classes)
    assert len(np.unique(many)) > 1  # a trained model, not a constant map


def test_outputs_at_the_heads_resolution_predict_at_the_input_size(frames):
    """A file whose outputs are half its input (metadata output_stride 2): infer gives the head's
    class map, predict the input-size one eval scores, which is the definition (probabilities
    resized with INTER_LINEAR, argmax) but where a class wins only between cell corners."""
    from realtime_seg.runtime.edges import dense_upsample
    net = load_model(FIXTURES / "tiny_head_res.onnx", RunOptions("cpu", 1))
    assert net.output_stride == 2 and net.input_size == (48, 64)
    net.use_aspect("squash")
    x = net.prepare(frames)
    maps, probs = net.infer_probs(x)
    assert maps.shape == (len(frames), 24, 32) and probs.shape == (len(frames), 24, 32, 11)
    full = net.predict(frames)
    assert full.shape == (len(frames), 48, 64) and full.dtype == np.uint8
    definition = np.stack([dense_upsample(m, (64, 48), p) for m, p in zip(maps, probs)])
    assert np.mean(full == definition) >= 0.995
    assert len(np.unique(full)) > 1  # a trained model, not a constant map
    old = load_model(FIXTURES / "tiny_any_size.onnx", RunOptions("cpu", 1))  # no output_stride: 1
    assert old.output_stride == 1 and old.predict(frames[:1]).shape[1:] == old.size_for(frames[0].shape)


def test_a_bad_output_stride_is_a_clear_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(FIXTURES / "tiny_head_res.onnx"))
    next(p for p in proto.metadata_props if p.key == "output_stride").value = "3"
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(UserError, match=r"bad.onnx has output_stride '3' in its metadata; allowed: 1, 2, 4; re-export"):
        load_model(bad, RunOptions("cpu"))


def test_model_without_metadata_is_a_clear_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(MODEL))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(UserError, match="has no metadata .* realtime_seg inspect .*bare.onnx`, then pass --classes"):
        load_model(bare, RunOptions("cpu"))
    del proto.metadata_props[:]
    proto.metadata_props.add(key="classes", value="[]")  # partly described: one of ours, damaged
    onnx.save(proto, str(bare))
    # what `pip install .` provides: `python -m export` is only a checkout's shim
    with pytest.raises(UserError, match="lacks metadata palette, input_size; export it with `python -m realtime_seg export "):
        load_model(bare, RunOptions("cpu"))


def test_not_onnx_and_missing_files_are_clear_errors(tmp_path):
    fake = tmp_path / "x.onnx"
    shutil.copy(FIXTURES / "frames" / "frame_0.png", fake)
    with pytest.raises(UserError, match="not a valid ONNX file .*`python -m realtime_seg export`"):
        load_model(fake, RunOptions("cpu"))
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "missing.onnx", RunOptions("cpu"))
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        load_model(MODEL, RunOptions("tpu"))


def test_device_cuda_fails_clearly_without_cuda():
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    with pytest.raises(UserError, match="--device cuda"):
        load_model(MODEL, RunOptions("cuda"))


@pytest.mark.gpu
def test_cuda_session_runs_on_cuda():
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDA provider")
    assert load_model(MODEL, RunOptions("cuda")).provider == "CUDAExecutionProvider"
