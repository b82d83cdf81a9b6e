"""Foreign models imported in memory: every layout, input and output kind gives the class maps of the
original graph run by hand with NumPy (tests/foreign_models.py), through the engine's own path."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from foreign_models import IMAGENET, NO_NORM, SIZE, foreign_tiny, reference, tiny_graph
from realtime_seg.datasets.classes import CAMVID, CITYSCAPES, read_class_set
from realtime_seg.errors import UsageError
from realtime_seg.runtime.models import RunOptions, choose_model, open_model
from realtime_seg.runtime.foreign import ForeignSpec, parse_size, parse_triple

# name: (foreign_tiny's keywords, inferred layout, output kind, output layout, classes)
VARIANTS = {
    "nchw imagenet logits": (dict(), "NCHW", "logits", "NCHW", 11),
    "nhwc [0,1] bgr probs": (dict(layout="NHWC", norm=NO_NORM, bgr=True, output="probs_nhwc"), "NHWC", "probs", "NHWC", 11),
    "nchw logits nhwc": (dict(output="logits_nhwc", bgr=True), "NCHW", "logits", "NHWC", 11),
    "labels int64 no channel": (dict(output="labels_int64"), "NCHW", "labels", None, None),
    "labels int32 channel, half": (dict(output="labels_int32_channel", half=True), "NCHW", "labels", "NCHW", None),
    "logits at half size": (dict(half=True), "NCHW", "logits", "NCHW", 11),
    "probs half, batch fixed at 1": (dict(output="probs_nchw", half=True, batch1=True), "NCHW", "probs", "NCHW", 11),
    "uint8 nhwc": (dict(layout="NHWC", uint8=True, output="logits_nhwc"), "NHWC", "logits", "NHWC", 11),
    "dynamic size": (dict(dynamic=True), "NCHW", "logits", "NCHW", 11),
}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted((FIXTURES / "frames").glob("*.png"))]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_an_imported_model_gives_the_class_maps_of_the_original_run_by_hand(variant, frames, tmp_path):
    kw, layout, kind, out_layout, classes = VARIANTS[variant]
    path = foreign_tiny(tmp_path / "foreign.onnx", **kw)
    norm, uint8 = kw.get("norm", IMAGENET), kw.get("uint8", False)
    spec = ForeignSpec(CAMVID, norm["mean"], norm["std"], kw.get("bgr", False),
                       SIZE if kw.get("dynamic") else None, normalised=not uint8)
    model = open_model(choose_model(str(path), foreign=spec), RunOptions("cpu", 1))
    assert model.input_size == SIZE and model.classes == list(CAMVID.classes)
    foreign = json.loads(model.metadata["foreign"])
    assert (foreign["layout"], foreign["kind"], foreign["output_layout"]) == (layout, kind, out_layout)
    expected = reference(path, frames, layout, norm, kw.get("bgr", False), uint8=uint8)
    maps, probs = model.infer_probs(model.prepare(frames))  # three frames in one call (singly when batch 1)
    assert maps.shape == (3, *SIZE)
    agreement = (maps == expected).mean()
    assert agreement >= (0.999 if kw.get("half") else 1.0), agreement
    assert len(np.unique(expected)) > 1  # a real map, not one class everywhere
    if classes is None:
        assert probs is None  # a label map has no scores
    else:
        np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-4)
        np.testing.assert_array_equal(np.argmax(probs, -1), maps)


@pytest.mark.parametrize("kind", ["sigmoid", "sigmoid_logit"])
def test_one_sigmoid_channel_is_two_classes(kind, frames, tmp_path):
    path = tiny_graph(tmp_path / f"{kind}.onnx", kind)
    names = tmp_path / "fg.txt"
    names.write_text("background 0,0,0\nforeground 255 0 0\n")
    model = open_model(choose_model(str(path), foreign=ForeignSpec(read_class_set(str(names)))), RunOptions("cpu", 1))
    assert model.classes == ["background", "foreground"]
    np.testing.assert_array_equal(model.palette_bgr, [[0, 0, 0], [0, 0, 255]])
    maps, probs = model.infer_probs(model.prepare(frames))
    expected = reference(path, frames, "NCHW", size=(32, 32), sigmoid=kind == "sigmoid_logit")
    assert (maps == expected).mean() == 1.0 and set(np.unique(expected)) == {0, 1}
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)


def test_class_sets_by_name_and_from_files(tmp_path):
    assert read_class_set("cityscapes") is CITYSCAPES and CITYSCAPES.num_classes == 19
    assert CITYSCAPES.classes[:3] == ("road", "sidewalk", "building") and CITYSCAPES.classes[-1] == "bicycle"
    listed = tmp_path / "classes.json"
    listed.write_text(json.dumps([{"name": "road", "color": [128, 64, 128]}, "car", "sky"]))
    table = read_class_set(str(listed))
    assert table.classes == ("road", "car", "sky") and table.palette[0] == (128, 64, 128)
    assert len(set(table.palette)) == 3  # the unnamed colours are distinct
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"classes": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]]}))
    assert read_class_set(str(both)).palette == ((1, 2, 3), (4, 5, 6))
    text = tmp_path / "names.txt"
    text.write_text("traffic light 250,170,30\n\nperson\n")
    assert read_class_set(str(text)).classes == ("traffic light", "person")
    bad = tmp_path / "bad.txt"
    bad.write_text("road 300,0,0\ncar\n")
    with pytest.raises(ValueError, match="0-255"):
        read_class_set(str(bad))
    with pytest.raises(ValueError, match="neither a class set"):
        read_class_set(str(tmp_path / "missing.txt"))


def test_flag_values_are_checked():
    assert parse_triple("--mean", "123.675, 116.28,103.53") == (123.675, 116.28, 103.53)
    assert parse_size("512x1024") == (512, 1024)
    for text in ("1,2", "a,b,c", "1,2,3,4"):
        with pytest.raises(UsageError, match="three numbers"):
            parse_triple("--mean", text)
    with pytest.raises(UsageError, match="std of 0"):
        parse_triple("--std", "1,0,1", positive=True)
    with pytest.raises(UsageError, match="HEIGHTxWIDTH"):
        parse_size("512")
