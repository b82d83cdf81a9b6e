"""Keras -> ONNX export: metadata, parity with Keras in onnxruntime, heads, fp16, mixed
precision, bad input from the command line; and the runtime never loading TensorFlow."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli

pytest.importorskip("tf2onnx")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
keras = pytest.importorskip("keras")

from realtime_seg.export import ExportConfig, export_model  # noqa: E402
from realtime_seg.training.checkpoint import load_keras  # noqa: E402
from realtime_seg.datasets.classes import CAMVID  # noqa: E402
from realtime_seg.contract import preprocess  # noqa: E402
from realtime_seg.runtime.engine import RunOptions, load_model  # noqa: E402
from realtime_seg.errors import UserError  # noqa: E402


def _frames(frames_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(frames_dir.glob("*.png"))]


def _keras_at(keras_model, size: tuple[int, int], head_resolution: bool = False):
    """The Keras model at input `size` (its weights; progressive.small_view), to compare a graph of any
    size with; `head_resolution`: without its last bilinear x2, as export converts it by default."""
    from realtime_seg.export.any_size import at_head_resolution
    from realtime_seg.training.progressive import small_view
    net = at_head_resolution(keras_model) if head_resolution else keras_model
    return net if size == tuple(net.inputs[0].shape[1:3]) else small_view(net, size)


def _agreement(keras_model, onnx_path: Path, frames: list[np.ndarray]) -> float:
    """Share of pixels where onnxruntime (through the runtime's loader, at the size it picks for the
    frames) and Keras (at that size, at the file's output resolution) agree."""
    seg = load_model(onnx_path, RunOptions("cpu"))
    assert seg.provider == "CPUExecutionProvider"
    size = seg.size_for(frames[0].shape)
    batch = preprocess(frames, size)
    net = _keras_at(keras_model, size, head_resolution=seg.output_stride > 1)
    reference = np.argmax(np.asarray(net(batch, training=False)), -1)
    got = seg.infer(seg.prepare(frames))
    assert got.shape == reference.shape and got.dtype == np.uint8
    return float(np.mean(got == reference))


def _export(checkpoint: Path, out: Path, frames_dir: Path, **kw) -> dict:
    return export_model(ExportConfig(checkpoint=str(checkpoint), output=str(out),
                                     frames=str(frames_dir), **kw))


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".onnx" in p.name or p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def fp32(tiny_run, frames_dir, tmp_path_factory) -> tuple[Path, dict]:
    run, _ = tiny_run
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    return out, _export(run / "best.keras", out, frames_dir)


def test_metadata(fp32, tiny_run):
    path, checks = fp32
    run, summary = tiny_run
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    for key in ("classes", "palette", "input_size", "preprocessing", "source_sha256", "val_miou"):
        assert key in meta, key
    assert json.loads(meta["classes"]) == list(CAMVID.classes)
    assert json.loads(meta["palette"]) == [list(c) for c in CAMVID.palette]
    assert json.loads(meta["input_size"]) == [32, 48]
    assert json.loads(meta["preprocessing"])["color"] == "RGB"
    assert json.loads(meta["val_miou"]) == pytest.approx(summary["best_val_miou"])
    assert meta["source_sha256"] == hashlib.sha256((run / "best.keras").read_bytes()).hexdigest()
    assert meta["output"] == "class_map" and meta["precision"] == "fp32"
    assert json.loads(meta["parity"])["agreement"] == pytest.approx(checks["agreement"])
    assert not list(path.parent.glob(".*tmp"))


def test_val_miou_is_the_checkpoints_own(tiny_run):
    """best.keras carries the run's best val mIoU, last.keras the last epoch's (what a fixed schedule ships)."""
    import csv
    from realtime_seg.export.onnx_export import _run_val_miou
    run, summary = tiny_run
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert _run_val_miou(run / "best.keras") == pytest.approx(summary["best_val_miou"])
    assert _run_val_miou(run / "last.keras") == pytest.approx(float(rows[-1]["val_miou"]))


def test_fp32_runs_in_onnxruntime_and_agrees_with_keras(fp32, tiny_run, frames_dir):
    path, checks = fp32
    run, _ = tiny_run
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["class_map", "probs"]  # the parity-only logits are dropped
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # scaled in the graph
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    seg = load_model(path, RunOptions("cpu"))
    seg.use_aspect("squash")  # at the trained size here; other sizes: test_the_export_takes_any_size
    assert seg.input_dtype == np.uint8 and seg.precision == "fp32"
    assert seg.classes == list(CAMVID.classes) and seg.input_size == (32, 48)
    assert seg.output_name == "class_map" and seg.palette_bgr.shape == (11, 3)
    frames = _frames(frames_dir)
    assert len(frames) == 3
    model = load_keras(run / "best.keras")
    assert _agreement(model, path, frames) >= 0.999
    # probs: Keras's softmax of the logits; their argmax is the class map
    maps, probs = seg.infer_probs(seg.prepare(frames))
    logits = np.asarray(_keras_at(model, seg.input_size, head_resolution=True)(preprocess(frames, seg.input_size),
                                                                               training=False))
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(-1, keepdims=True), atol=1e-4)
    assert np.mean(np.argmax(probs, -1) == maps) >= 0.999  # (exact but for float ties)
    assert checks["agreement"] >= 0.999 and checks["max_abs_logit_diff"] < 1e-3


def test_the_export_takes_any_size_and_matches_keras_at_each(fp32, tiny_run, frames_dir):
    """Issue 35: the graph's height and width are free (the trained size stays `input_size`, aspect
    keep); at the trained size, at the 16:9 frames' own aspect and at a larger size, onnxruntime's
    class maps and probabilities are Keras's at that size."""
    import onnxruntime as ort
    path, checks = fp32
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[1:3]] == ["height", "width"] and dims[3].dim_value == 3
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["aspect"] == "keep" and json.loads(meta["input_size"]) == [32, 48]
    assert checks["second_size"]["size"] == [32, 64] and checks["second_size"]["agreement"] >= 0.999
    assert json.loads(meta["parity"])["second_size"] == checks["second_size"]
    keras_model, frames = load_keras(tiny_run[0] / "best.keras"), _frames(frames_dir)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in ((32, 48), (32, 64), (64, 128)):
        batch = preprocess(frames, size, np.uint8)
        maps, probs = session.run(["class_map", "probs"], {"image": batch})
        logits = np.asarray(_keras_at(keras_model, size, head_resolution=True)(batch.astype(np.float32) / 255,
                                                                               training=False))
        expected = np.exp(logits - logits.max(-1, keepdims=True))
        assert maps.shape == (len(frames), size[0] // 2, size[1] // 2)
        np.testing.assert_allclose(probs, expected / expected.sum(-1, keepdims=True), atol=1e-4)
        assert np.mean(maps == logits.argmax(-1)) >= 0.999


def test_outputs_come_at_the_heads_resolution_and_predict_brings_them_to_the_input(fp32, tiny_run, frames_dir):
    """The residual U-Net ends in a bilinear x2 of its logits: the file leaves it out (outputs at H/2 x
    W/2, metadata and graph say so), and `predict`, which eval and the int8 check score, brings the
    class map back to the input size with smooth edges: Keras's full-size argmax, but at boundaries."""
    path, _ = fp32
    proto = onnx.load(str(path))
    assert {p.key: p.value for p in proto.metadata_props}["output_stride"] == "2"
    for out in proto.graph.output:
        assert [d.dim_param for d in out.type.tensor_type.shape.dim[1:3]] == ["height/2", "width/2"]
    seg = load_model(path, RunOptions("cpu"))
    assert seg.output_stride == 2
    frames = _frames(frames_dir)
    x = seg.prepare(frames)                                                     # (3, 32, 64, 3): aspect kept
    maps, probs = seg.infer_probs(x)
    assert maps.shape == (3, 16, 32) and probs.shape == (3, 16, 32, 11)
    full = seg.predict(frames)
    assert full.shape == (3, 32, 64) and full.dtype == np.uint8
    keras_full = np.argmax(np.asarray(_keras_at(load_keras(tiny_run[0] / "best.keras"), (32, 64))(
        x.astype(np.float32) / 255, training=False)), -1)
    assert np.mean(full == keras_full) >= 0.97
    nearest = np.stack([cv2.resize(m, (64, 32), interpolation=cv2.INTER_NEAREST) for m in maps])
    assert np.mean(full == keras_full) > np.mean(nearest == keras_full)  # smooth edges, not 2x2 blocks


def test_full_size_outputs_flag_keeps_the_graphs_own_upsampling(tiny_run, frames_dir, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "full.onnx"
    proc = run_cli("realtime_seg", "export", str(run / "best.keras"), "-o", str(out), "--frames", str(frames_dir),
                   "--full-size-outputs")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "outputs at 32x48" in proc.stdout
    seg = load_model(out, RunOptions("cpu"))
    assert seg.output_stride == 1 and seg.metadata["output_stride"] == "1"
    frames = _frames(frames_dir)
    assert seg.infer(seg.prepare(frames)).shape == (3, 32, 64)
    assert _agreement(load_keras(run / "best.keras"), out, frames) >= 0.999


def test_cli_aspect_squash_is_recorded_and_a_bad_one_is_one_line(tiny_run, frames_dir, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "squash.onnx"
    proc = run_cli("realtime_seg", "export", str(run / "best.keras"), "-o", str(out), "--frames", str(frames_dir),
                   "--aspect", "squash")
    assert proc.returncode == 0, proc.stderr[-2000:]
    seg = load_model(out, RunOptions("cpu"))
    assert seg.any_size and seg.aspect == "squash"  # any size all the same: --aspect keep at run time works
    assert seg.size_for(_frames(frames_dir)[0].shape) == (32, 48)
    seg.use_aspect("keep")
    assert seg.predict(_frames(frames_dir)).shape == (3, 32, 64)
    bad = run_cli("realtime_seg", "export", str(run / "best.keras"), "-o", str(tmp_path / "x.onnx"),
                  "--aspect", "wide")
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]  # TensorFlow's start-up
    assert bad.returncode == 2 and "Traceback" not in bad.stderr  # chatter aside (test_cli_usage_error_exit_2)
    assert len(errors) == 1 and "--aspect: invalid choice: 'wide'" in errors[0]
    assert not (tmp_path / "x.onnx").exists()


def _softmax_axes(path: Path) -> list[int]:
    nodes = onnx.load(str(path)).graph.node
    return [onnx.helper.get_attribute_value(a) for n in nodes if n.op_type == "Softmax"
            for a in n.attribute if a.name == "axis"]


def test_softmax_runs_over_the_last_axis(fp32):
    """tf2onnx leaves the softmax over NCHW's axis 1 (6x slower in onnxruntime); export moves it last."""
    assert _softmax_axes(fp32[0]) == [-1]


@pytest.mark.parametrize("name", ["camvid_accurate", "camvid_fast"])
def test_shipped_presets_softmax_last(name):
    models = Path(__file__).resolve().parents[2] / "models"
    for path in sorted(models.glob(f"{name}*.onnx")):
        assert _softmax_axes(path) == [-1], path.name


def _run_graph(proto, x: np.ndarray) -> list[np.ndarray]:
    """Every output of a one-input ModelProto, fed `x` as its input `x`, in onnxruntime."""
    import onnxruntime as ort
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_softmax_rewrite_keeps_the_values():
    """Softmax(axis=1) -> Transpose on an NCHW tensor, rewritten: same probabilities, same names."""
    from onnx import TensorProto, helper
    from realtime_seg.export.graph import softmax_channels_last
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["s"], axis=1, name="sm"),
         helper.make_node("Transpose", ["s"], ["probs"], perm=[0, 2, 3, 1]),
         helper.make_node("ArgMax", ["x"], ["a"], axis=1, keepdims=0)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 6, 7])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 6, 7, 5]),
         helper.make_tensor_value_info("a", TensorProto.INT64, [1, 6, 7])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(0).normal(0, 4, (1, 5, 6, 7)).astype(np.float32)
    before = _run_graph(proto, x)
    after = _run_graph(softmax_channels_last(proto), x)
    onnx.checker.check_model(proto)
    assert [n.op_type for n in proto.graph.node] == ["Transpose", "Softmax", "ArgMax"]
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)
    np.testing.assert_array_equal(after[1], before[1])


def test_logits_head(tiny_run, frames_dir, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "logits.onnx"
    _export(run / "best.keras", out, frames_dir, head="logits")
    graph = onnx.load(str(out)).graph
    assert [o.name for o in graph.output] == ["logits"]
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    seg = load_model(out, RunOptions("cpu"))
    assert seg.output_name == "logits" and seg.metadata["output"] == "logits"
    raw = seg.session.run(None, {seg.input_name: seg.prepare(_frames(frames_dir))})[0]
    h, w = seg.size_for(_frames(frames_dir)[0].shape)
    assert raw.shape == (3, h // 2, w // 2, 11) and raw.dtype == np.float32  # at the head's resolution
    assert seg.predict(_frames(frames_dir)).shape == (3, h, w)              # softmax here, then smooth edges
    model = load_keras(run / "best.keras")
    assert _agreement(model, out, _frames(frames_dir)) >= 0.999


def test_fp16_is_smaller_and_agrees(fp32, tiny_run, frames_dir, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "half.onnx"
    checks = _export(run / "best.keras", out, frames_dir, precision="fp16")
    assert out.stat().st_size < fp32[0].stat().st_size
    proto = onnx.load(str(out))
    assert {p.key: p.value for p in proto.metadata_props}["precision"] == "fp16"
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # io unchanged
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    model = load_keras(run / "best.keras")
    assert checks["agreement"] >= 0.99
    assert _agreement(model, out, _frames(frames_dir)) >= 0.99


@pytest.fixture
def mixed_checkpoint(tmp_path) -> Path:
    """A U-Net saved under the mixed_float16 policy (float16 compute, float32 weights)."""
    from realtime_seg.training.model import unet_model
    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = unet_model((32, 48, 3), 4, CAMVID.num_classes)
        assert model.get_layer("down1_conv1").dtype_policy.name == "mixed_float16"
        path = tmp_path / "mixed" / "model.keras"
        path.parent.mkdir()
        model.save(path)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return path


def test_mixed_precision_checkpoint_exports_float32(mixed_checkpoint, frames_dir, tmp_path):
    reloaded = keras.models.load_model(mixed_checkpoint, compile=False)
    assert reloaded.get_layer("logits").dtype_policy.name == "mixed_float16"
    out = tmp_path / "mixed.onnx"
    checks = _export(mixed_checkpoint, out, frames_dir, head="logits", classes="camvid")
    assert checks["agreement"] >= 0.999
    assert load_model(out, RunOptions("cpu")).output_stride == 1  # the seed U-Net's head is at the input size
    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in graph.initializer
               if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16))
    f32 = load_keras(mixed_checkpoint)
    assert all(layer.dtype_policy.name == "float32" for layer in f32.layers)
    assert _agreement(f32, out, _frames(frames_dir)) >= 0.999


def test_failed_parity_writes_nothing(tiny_run, frames_dir, tmp_path):
    run, _ = tiny_run
    with pytest.raises(UserError, match="nothing written"):
        _export(run / "best.keras", tmp_path / "out" / "x.onnx", frames_dir, min_agreement=1.01)
    assert not _leftovers(tmp_path)


def test_output_that_is_a_folder(tiny_run, frames_dir, tmp_path):
    run, _ = tiny_run
    folder = tmp_path / "taken.onnx"
    folder.mkdir()
    with pytest.raises(UserError, match="cannot write"):
        _export(run / "best.keras", folder, frames_dir)
    assert folder.is_dir() and not list(folder.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["taken.onnx"]  # no .taken.onnx.tmp beside it


def test_bad_frames_folder(tiny_run, tmp_path):
    run, _ = tiny_run
    (tmp_path / "frames").mkdir()
    with pytest.raises(UserError, match="no frames"):
        _export(run / "best.keras", tmp_path / "x.onnx", tmp_path / "frames")
    assert not (tmp_path / "x.onnx").exists()


# --- bad input from the command line: non-zero exit, one line, no .onnx ----------------------

def _cli_export(checkpoint: Path, out: Path, frames_dir: Path, *extra: str):
    return run_cli("export", str(checkpoint), "-o", str(out), "--frames", str(frames_dir), *extra)


def test_cli_missing_checkpoint(tmp_path, frames_dir):
    proc = _cli_export(tmp_path / "nope.keras", tmp_path / "out" / "x.onnx", frames_dir)
    assert "nope.keras not found" in assert_one_line_error(proc, 1)
    assert not _leftovers(tmp_path) and not (tmp_path / "out").exists()


def test_cli_text_file_named_keras(tmp_path, frames_dir):
    fake = tmp_path / "notes.keras"
    fake.write_text("these are my notes, not a model\n")
    proc = _cli_export(fake, tmp_path / "x.onnx", frames_dir)
    assert "notes.keras is not a Keras .keras file" in assert_one_line_error(proc, 1)
    assert not _leftovers(tmp_path)


@pytest.mark.slow
def test_cli_model_without_rgb_input(tmp_path, frames_dir):
    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(CAMVID.num_classes, 1)(inputs))
    path = tmp_path / "gray.keras"
    model.save(path)
    proc = _cli_export(path, tmp_path / "x.onnx", frames_dir, "--classes", "camvid")
    assert "fixed (H, W, 3) image input" in assert_one_line_error(proc, 1)
    assert not _leftovers(tmp_path)


@pytest.mark.slow
def test_cli_unwritable_output(tiny_run, tmp_path, frames_dir):
    run, _ = tiny_run
    blocker = tmp_path / "plain_file"
    blocker.write_text("a file, not a folder")
    proc = _cli_export(run / "best.keras", blocker / "models" / "x.onnx", frames_dir)
    assert "cannot write" in assert_one_line_error(proc, 1)
    assert not _leftovers(tmp_path) and not _leftovers(run)


def test_cli_usage_error_exit_2(tmp_path, frames_dir):
    proc = run_cli("export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "x.onnx"),
                   "--head", "softmax")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("height", [5, "h"])  # known sizes or not (a graph of any size): channels-last interleave
def test_subpixel_rewrite_of_transposed_convolutions_is_exact(height):
    """A Keras "same" 3x3 stride-2 ConvTranspose and its sub-pixel rewrite give the same tensor."""
    from onnx import TensorProto, helper, numpy_helper
    from realtime_seg.export.graph import subpixel_conv_transpose
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(3, 2, 3, 3)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], kernel_shape=[3, 3],
                          pads=[0, 0, 1, 1], name="up")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, height, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, None, None])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.normal(size=(2, 3, 5, 7)).astype(np.float32)  # a batch of 2: the batch size stays free
    original = proto.SerializeToString()
    (before,) = _run_graph(proto, x)
    (after,) = _run_graph(subpixel_conv_transpose(proto), x)
    if height == "h":  # the rewritten graph at another height too
        x9 = rng.normal(size=(2, 3, 9, 7)).astype(np.float32)
        np.testing.assert_allclose(_run_graph(proto, x9)[0], _run_graph(onnx.load_from_string(original), x9)[0],
                                   atol=1e-5)
    onnx.checker.check_model(proto)
    shape_ops = {"Shape", "Slice", "Mul", "Concat"}  # unknown sizes: the reshapes read them at run time
    ops = [n.op_type for n in proto.graph.node]
    assert [op for op in ops if op not in shape_ops] == ["Conv", "Transpose", "Reshape", "Transpose", "Reshape",
                                                         "Transpose"]
    assert (shape_ops & set(ops)) == (set() if height == 5 else shape_ops)
    assert {"up/subpixel_kernel", "up/subpixel_bias"} <= {t.name for t in proto.graph.initializer}
    assert after.shape == before.shape == (2, 2, 10, 14)
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_shipped_int8_has_no_float_transposed_convolutions():
    models = Path(__file__).resolve().parents[2] / "models"
    for path in sorted(models.glob("*.int8.onnx")):
        assert "ConvTranspose" not in {n.op_type for n in onnx.load(str(path)).graph.node}, path.name


AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
AVX512_BF16 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16\n"


@pytest.mark.slow
@pytest.mark.parametrize("cpuinfo, policy", [(AVX2, "float32"), (AVX512_BF16, "mixed_bfloat16")],
                         ids=["avx2", "avx512_bf16"])
def test_precision_paths(cpuinfo, policy, camvid_dir, frames_dir, tmp_path, monkeypatch):
    """On any machine, both of auto's branches: the policy it picks, no policy left behind, and an
    export that agrees with the checkpoint's weights in float32."""
    from conftest import tiny_config
    from realtime_seg.system import cpu_flags
    from realtime_seg.training import train as train_module
    monkeypatch.setattr(train_module, "cpu_flags", lambda: cpu_flags(cpuinfo))
    summary = train_module.train(tiny_config(camvid_dir, tmp_path / "run", augment=False, lr=3e-3,
                                             schedule="constant"))
    assert summary["policy"] == policy
    assert keras.mixed_precision.global_policy().name == "float32"
    checks = _export(tmp_path / "run" / "best.keras", tmp_path / "m.onnx", frames_dir)
    assert checks["agreement"] >= 0.999
    assert _agreement(load_keras(tmp_path / "run" / "best.keras"), tmp_path / "m.onnx", _frames(frames_dir)) >= 0.999


def test_every_precision_of_the_contract_has_one_export_entry():
    from realtime_seg.contract import PRECISIONS
    from realtime_seg.export.onnx_export import EXPORT_PRECISIONS, parser
    assert tuple(EXPORT_PRECISIONS) == PRECISIONS
    for name in PRECISIONS[1:]:  # a flag each; fp32 is the default
        args = parser().parse_args(["c.keras", "-o", "x.onnx", f"--{name}"])
        assert [n for n in EXPORT_PRECISIONS if getattr(args, n, False)] == [name]
