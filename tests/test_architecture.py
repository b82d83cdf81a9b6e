"""The layout's rules, checked: the runtime side never imports Keras or TensorFlow, even lazily, nor matplotlib;
layers only look down (no import circles, no command importing another); no module over 500 lines."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "realtime_seg"
HEAVY = ("keras", "tensorflow", "tf2onnx", "jax")
# Allowed to reach the Keras side: training and export themselves, and bench's seed-Keras comparison (lazily).
KERAS_SIDE = {"training", "export"}
LAZY_KERAS_OK = {"commands/bench/measure.py"}


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


# Pictures (plots.py: training curves, batch --stats, bench --plot) load matplotlib lazily; the viewer's side never.
NO_PLOTS = ("runtime/", "commands/view.py", "cli.py", "contract.py", "paths.py", "system.py", "errors.py")


def test_the_runtime_and_the_viewer_never_import_matplotlib():
    bad = [f"{path.relative_to(PACKAGE).as_posix()} imports {name}" for path in sorted(PACKAGE.rglob("*.py"))
           if path.relative_to(PACKAGE).as_posix().startswith(NO_PLOTS)
           for name, _ in _imports(path) if name.split(".")[0] == "matplotlib" or name == "realtime_seg.plots"]
    assert not bad, bad
    lazy = [f"{path.relative_to(PACKAGE).as_posix()} imports {name} at import time"
            for path in sorted(PACKAGE.rglob("*.py")) for name, top in _imports(path)
            if top and name.split(".")[0] == "matplotlib"]
    assert not lazy, lazy


def test_importing_every_runtime_module_and_command_loads_no_keras():
    code = ("import sys, importlib\n"
            "for m in ['realtime_seg.runtime.engine', 'realtime_seg.runtime.sources', 'realtime_seg.runtime.pipeline',\n"
            "          'realtime_seg.runtime.video', 'realtime_seg.runtime.render', 'realtime_seg.commands.view',\n"
            "          'realtime_seg.commands.batch', 'realtime_seg.commands.bench', 'realtime_seg.commands.evaluate',\n"
            "          'realtime_seg.datasets.readers', 'realtime_seg.datasets.augment', 'realtime_seg.__main__',\n"
            "          'realtime_seg.runtime.player', 'realtime_seg.runtime.scoring', 'realtime_seg.paths']:\n"
            "    importlib.import_module(m)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'tf2onnx',\n"
            "                                                             'matplotlib'))\n"
            "assert not heavy, heavy[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_public_api_resolves_and_its_docstring_example_runs():
    import realtime_seg
    from conftest import FIXTURES
    for name in realtime_seg.__all__:
        assert getattr(realtime_seg, name) is not None, name
    model = realtime_seg.open_model(realtime_seg.choose_model(str(FIXTURES / "tiny_camvid.onnx")),
                                    realtime_seg.RunOptions("cpu"))
    overlay = realtime_seg.Overlay(model.classes, model.palette_bgr)
    with realtime_seg.open_video(str(FIXTURES / "videos" / "dashcam_short.mp4")) as source:
        for packet in realtime_seg.segment_stream(source, model):
            image = overlay.paint(packet.frame, packet.class_map)
            assert image.shape == packet.frame.shape


# --- Layers that only look down: no circles, no command importing another, no module over 500 lines ---

MAX_LINES = 500  # a soft size: modules are cut by concern, and one over this says to look again
# export/ moves into the package; both places are read so the rules hold before and after
EXPORT_DIRS = [ROOT / "export", PACKAGE / "export"]
# Below the commands: these never import a command or export, nor (with export) the commands' options, cli.py.
LOWER = ("runtime", "datasets", "training", "contract.py", "errors.py", "system.py", "paths.py", "plots.py")


def _modules() -> dict[str, object]:
    """Dotted name -> file, for every module of the package and of export/."""
    files = [*PACKAGE.rglob("*.py"), *(p for d in EXPORT_DIRS if d.is_dir() for p in d.rglob("*.py"))]
    named = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        named[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return named


def _arrows(path, modules: dict) -> set[str]:
    """The modules of the house that `path` imports, at top level or lazily (`from . import x`: x itself)."""
    tree, found = ast.parse(path.read_text()), set()
    parts = path.relative_to(ROOT).with_suffix("").parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[:-node.level] if node.level else ()
            name = ".".join([*base, node.module] if node.module else base)
            subs = {f"{name}.{a.name}" for a in node.names} & modules.keys()
            found |= subs or {name}
    return found & modules.keys()


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _arrows(path, modules) - {name} for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _command(name: str) -> str | None:
    """The command a module belongs to (commands/X, export), or None below the commands."""
    parts = name.split(".")
    if parts[:2] == ["realtime_seg", "commands"] and len(parts) > 2:
        return f"commands/{parts[2]}"
    if "export" in parts[:2]:
        return "export"
    return None


def _rel(name: str, modules: dict) -> str:
    return modules[name].relative_to(PACKAGE if modules[name].is_relative_to(PACKAGE) else ROOT).as_posix()


def test_no_import_circles():
    assert _circles(_graph()) == []


def test_a_circle_is_found():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_commands_never_import_another_command():
    modules, graph = _modules(), _graph()
    bad = [f"{_rel(name, modules)} imports {target}" for name, targets in graph.items()
           for target in targets if _command(name) and _command(target) not in (None, _command(name))]
    assert not bad, bad


def test_lower_layers_never_import_commands_export_or_cli():
    modules, graph = _modules(), _graph()

    def lower(name: str) -> bool:
        return _command(name) is None and _rel(name, modules).startswith(LOWER)

    bad = [f"{_rel(name, modules)} imports {target}" for name, targets in graph.items() for target in targets
           if (lower(name) and _command(target)) or ((lower(name) or _command(name) == "export")
                                                      and target == "realtime_seg.cli")]
    assert not bad, bad


def test_no_module_over_500_lines():
    modules = _modules()
    long = {_rel(name, modules): n for name, path in modules.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


# --- scripts/: what regenerates a doc's figure or a benchmark, run as modules, each cited ---

SCRIPTS = ROOT / "scripts"


def test_scripts_run_as_modules_and_a_doc_cites_each():
    """`python -m scripts.NAME` from the repository (or against the installed package): no script puts
    a folder on sys.path by hand, and a page of docs/ (or a README) says what each one regenerates."""
    assert (SCRIPTS / "__init__.py").is_file()
    pages = [*(ROOT / "docs").glob("*.md"), ROOT / "README.md", ROOT / "models" / "README.md"]
    cited = "\n".join(page.read_text() for page in pages)
    scripts = sorted(p for p in SCRIPTS.glob("*.py") if p.name != "__init__.py")
    assert len(scripts) > 5
    edits = [f"{p.name}:{node.lineno}" for p in scripts for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Attribute) and node.attr == "path"
             and isinstance(node.value, ast.Name) and node.value.id == "sys"]
    assert not edits, f"sys.path edited in {edits}: run the script as `python -m scripts.NAME`"
    uncited = [p.name for p in scripts if f"scripts.{p.stem}" not in cited and f"scripts/{p.name}" not in cited]
    assert not uncited, f"no page of docs/ cites {uncited}"
