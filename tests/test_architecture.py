"""The layout's rules, checked: the runtime side never imports Keras or TensorFlow, even lazily."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "realtime_seg"
HEAVY = ("keras", "tensorflow", "tf2onnx", "jax")
# Allowed to reach the Keras side: training and export themselves, and bench's seed-Keras comparison (lazily).
KERAS_SIDE = {"training", "export"}
LAZY_KERAS_OK = {"commands/bench/loops.py"}


def _imports(path) -> list[tuple[str, bool]]:
    """(absolute module, at top level) for every import in a module of the package."""
    tree, found = ast.parse(path.read_text()), []
    top = set(map(id, tree.body))
    parts = path.relative_to(ROOT).with_suffix("").parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[:-node.level] if node.level else ()
            name = ".".join([*base, node.module] if node.module else base)
            found.append((name, id(node) in top))
    return found


def _offending(path) -> list[str]:
    rel = path.relative_to(PACKAGE).as_posix()
    if rel.split("/")[0] in KERAS_SIDE:
        return []
    bad = []
    for name, top in _imports(path):
        root = name.split(".")[0]
        heavy = root in HEAVY or name.startswith(("realtime_seg.training", "realtime_seg.export", "export"))
        if heavy and (top or rel not in LAZY_KERAS_OK):
            bad.append(f"{rel} imports {name}")
    return bad


def test_runtime_datasets_and_commands_never_import_the_keras_side():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20
    bad = [line for path in modules for line in _offending(path)]
    assert not bad, bad


def test_importing_every_runtime_module_and_command_loads_no_keras():
    code = ("import sys, importlib\n"
            "for m in ['realtime_seg.runtime.engine', 'realtime_seg.runtime.sources', 'realtime_seg.runtime.pipeline',\n"
            "          'realtime_seg.runtime.video', 'realtime_seg.runtime.render', 'realtime_seg.commands.view',\n"
            "          'realtime_seg.commands.batch', 'realtime_seg.commands.bench', 'realtime_seg.commands.evaluate',\n"
            "          'realtime_seg.datasets.readers', 'realtime_seg.datasets.augment', 'realtime_seg.__main__']:\n"
            "    importlib.import_module(m)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'tf2onnx'))\n"
            "assert not heavy, heavy[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_public_api_resolves_and_its_docstring_example_runs():
    import realtime_seg
    from conftest import FIXTURES
    for name in realtime_seg.__all__:
        assert getattr(realtime_seg, name) is not None, name
    model = realtime_seg.load_model(FIXTURES / "tiny_camvid.onnx", "cpu")
    overlay = realtime_seg.Overlay(model.classes, model.palette_bgr)
    with realtime_seg.open_video(str(FIXTURES / "videos" / "dashcam_short.mp4")) as source:
        for packet in realtime_seg.segment_stream(source, model):
            image = overlay.paint(packet.frame, packet.class_map)
            assert image.shape == packet.frame.shape
