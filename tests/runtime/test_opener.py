"""The one model opener (runtime/models.py): the command line resolves --model, --precision,
--aspect, --compare and a foreign model's flags once into ModelChoices, `open_model(choice, options)`
opens any of them, and a model has one display name. Real files: the tiny_family fixtures (one
width-4 CamVid U-Net at fp32, int8 and fp16), the shipped presets and a foreign graph."""
from __future__ import annotations

import ast

import cv2
import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from foreign_models import IMAGENET, SIZE, foreign_tiny, reference
from realtime_seg.cli import compare_choice, comparison, model_choice, run_options
from realtime_seg.commands.view import parser as viewer_parser
from realtime_seg.datasets.classes import CAMVID
from realtime_seg.errors import UsageError
from realtime_seg.paths import MODELS_DIR
from realtime_seg.runtime.models import PRESETS, RunOptions, choose_model, open_model, open_streams

FAMILY = FIXTURES / "tiny_family" / "tiny.onnx"
CPU1 = RunOptions("cpu", threads=1)


def _args(*argv: str):
    """The viewer's own parser, as a user's command line reaches it."""
    return viewer_parser().parse_args(["--device", "cpu", *argv])


def _threads(model) -> int:
    return model.session.get_session_options().intra_op_num_threads


def _spins(model) -> bool:
    """Whether idle onnxruntime threads busy-wait: its default, unless the session turns it off."""
    try:
        return model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") != "0"
    except RuntimeError:  # not set: onnxruntime's own default (spinning)
        return True


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_opens_a_variant_of_its_family_under_its_own_name(name):
    choice = model_choice(_args("--model", name))
    assert choice.preset and choice.name == name and choice.precision == "auto"
    model = open_model(choice, CPU1)
    assert model.path.parent == MODELS_DIR and model.path.name.startswith(PRESETS[name][:-len(".onnx")])
    assert _threads(model) == 1 and model.provider == "CPUExecutionProvider"
    fp32 = open_model(model_choice(_args("--model", name, "--precision", "fp32")), CPU1)
    assert fp32.path == MODELS_DIR / PRESETS[name] and fp32.precision == "fp32"


def test_a_file_opens_as_given_and_is_named_by_its_file():
    choice = model_choice(_args("--model", str(FAMILY), "--aspect", "squash"))
    assert not choice.preset and choice.name == "tiny.onnx"
    model = open_model(choice, RunOptions("cpu", threads=2, spinning=True))
    assert model.path == FAMILY and model.precision == "fp32" and model.aspect == "squash"
    assert _threads(model) == 2 and _spins(model)
    assert not _spins(open_model(choice, CPU1))  # the product's default


@pytest.mark.parametrize("precision, file", [("int8", "tiny.int8.onnx"), ("fp16", "tiny.fp16.onnx"),
                                             ("fp32", "tiny.onnx")])
def test_a_precision_opens_that_member_of_the_files_family(precision, file):
    choice = model_choice(_args("--model", str(FAMILY), "--precision", precision))
    model = open_model(choice, CPU1)
    assert model.path.name == file and model.precision == precision
    assert choice.name == "tiny.onnx"  # one name, whichever variant runs


def test_an_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown precision 'int4'; allowed: auto, fp32, fp16, int8"):
        choose_model(str(FAMILY), "int4")


def test_compare_is_resolved_like_model_and_opened_with_its_plan():
    frames = [cv2.imread(str(p)) for p in sorted((FIXTURES / "frames").glob("*.png"))]
    args = _args("--model", str(FAMILY), "--precision", "fp32", "--aspect", "squash", "--compare", ":int8")
    main = model_choice(args)
    other = compare_choice(args, main)
    assert (other.path, other.precision, other.aspect, other.name) == (FAMILY, "int8", "squash", "tiny.onnx")
    opened = open_streams(main, run_options(args))
    compare = comparison(args, opened, other, run_options(args))
    assert compare.names == ("tiny.onnx", "tiny.onnx")
    assert compare.other.path.name == "tiny.int8.onnx" and compare.other.precision == "int8"
    assert _threads(compare.other) == opened.plan.threads  # the same plan as --model's
    np.testing.assert_array_equal(compare.other.predict(frames),
                                  open_model(choose_model(str(FAMILY), "int8"), CPU1).predict(frames))
    # without :PRECISION the compared model runs at --precision's
    fp16 = _args("--model", str(FAMILY), "--precision", "fp16", "--compare", "fast")
    inherited = compare_choice(fp16, model_choice(fp16))
    assert (inherited.name, inherited.precision, inherited.preset) == ("fast", "fp16", True)
    assert compare_choice(_args("--model", str(FAMILY)), main) is None


def test_a_foreign_model_opens_through_the_same_call(tmp_path):
    frames = [cv2.imread(str(p)) for p in sorted((FIXTURES / "frames").glob("*.png"))]
    path = foreign_tiny(tmp_path / "foreign.onnx")
    mean, std = (",".join(map(str, IMAGENET[k])) for k in ("mean", "std"))
    args = _args("--model", str(path), "--classes", "camvid", "--mean", mean, "--std", std)
    choice = model_choice(args)
    assert choice.foreign is not None and choice.name == "foreign.onnx"
    model = open_model(choice, CPU1)
    assert model.classes == list(CAMVID.classes) and model.input_size == SIZE and _threads(model) == 1
    assert (model.predict(frames) == reference(path, frames, "NCHW", IMAGENET)).mean() == 1.0
    with pytest.raises(UsageError, match="a model imported in memory runs as it is"):
        model_choice(_args("--model", str(path), "--classes", "camvid", "--precision", "int8"))
    with pytest.raises(UsageError, match="preset fast describes itself"):
        model_choice(_args("--model", "fast", "--classes", "camvid"))


def test_open_streams_plans_threads_and_shares_or_copies_sessions():
    choice = choose_model(str(FAMILY))
    shared = open_streams(choice, RunOptions("cpu"), streams=2, cores=4)
    assert shared.name == "tiny.onnx" and len(shared.models) == 1 and shared.plan.threads == 1
    assert shared.plan.workers == 2 and _threads(shared.model) == 1  # two calls on half of its 2 cores
    copies = open_streams(choice, RunOptions("cpu", threads=3), copies=2, cores=4)
    assert len(copies.models) == 2 and copies.models[0] is not copies.models[1]
    assert copies.plan.workers == 1 and all(_threads(m) == 3 for m in copies.models)


def test_only_the_opener_loads_sessions():
    """Every command, the export's int8 check and the scripts open models through runtime/models.py."""
    callers = []
    for path in [*(ROOT / "realtime_seg").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(a.name == "load_model" for a in node.names) \
                    and (node.module or "").endswith("engine"):
                callers.append(path.relative_to(ROOT).as_posix())
    assert callers == ["realtime_seg/runtime/models.py"]
