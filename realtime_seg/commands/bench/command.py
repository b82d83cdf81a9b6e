"""`python -m realtime_seg bench`: measure every model on the same clip, in one run."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ...cli import add_model_options, foreign_spec
from ...errors import ArgumentParser, UsageError, UserError, check_at_least
from ...paths import DEMO_VIDEO
from ...plots import require
from ...runtime.engine import SegModel
from ...runtime.foreign import ForeignSpec
from ...runtime.models import PRESETS, ModelChoice, RunOptions, choose_model, open_model
from ...runtime.precision import family_base
from ...system import check_output_file, write_json
from .measure import (
    BenchConfig,
    SeedKeras,
    bench_model,
    check_video,
    keras_path_for,
    read_clip,
    seed_keras,
    status,
)
from .report import build_result, load_average, machine_info, plot_stages, report, table

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One measured row: a model (a preset or a file) at one precision and aspect."""

    choice: ModelChoice  # its name is the JSON's `model`, beside `precision`; its path (the fp32 file of a
                         # preset, or the file given) is where its .keras is looked for
    model: SegModel


def choices(specs: list[str], precisions: list[str], aspects: list[str | None],
            foreign: ForeignSpec | None) -> list[ModelChoice]:
    """Every --models entry at every precision and aspect asked for; the foreign-model flags apply to
    the files, not to the presets; a variant given stands for its family."""
    rows = []
    for spec in specs:
        for aspect in dict.fromkeys(aspects):
            for precision in dict.fromkeys(precisions):
                choice = choose_model(spec, precision, None if spec in PRESETS else foreign, aspect)
                rows.append(replace(choice, path=family_base(choice.path)))
    return rows


def load_rows(cfg: BenchConfig) -> list[Row]:
    """Every choice opened (`auto` as the product picks it); no file at one aspect twice."""
    rows: list[Row] = []
    for choice in cfg.choices:
        model = open_model(choice, cfg.options)
        if all((r.model.path, r.model.aspect) != (model.path, model.aspect) for r in rows):
            rows.append(Row(choice, model))
    return rows


def run(cfg: BenchConfig) -> dict:
    """Measure every model on the same clip; print the tables; return the JSON document."""
    check_video(cfg.video)
    paths = list(dict.fromkeys(c.path for c in cfg.choices))
    if cfg.json:  # fail before measuring, not after; never over an input
        models = {"model": paths[0]} if len(paths) == 1 else {f"model {p.name}": p for p in paths}
        inputs = {"video": cfg.video, **models}
        check_output_file(Path(cfg.json), "--json", {**inputs, **({"Keras model": cfg.keras} if cfg.keras else {})})
    if cfg.plot:
        require("--plot's picture")
        check_output_file(Path(cfg.plot), "--plot", {"video": cfg.video, **{f"model {p.name}": p for p in paths}})
    rows = load_rows(cfg)
    if cfg.keras and not Path(cfg.keras).is_file():
        raise UserError(f"Keras model {cfg.keras} not found; pass --keras PATH to a .keras file")
    load = load_average()
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load} on {os.cpu_count()} cores: other processes use the CPU, "
              f"timings will be low and noisy", file=sys.stderr)
    clip = read_clip(cfg.video, cfg.frames)
    with tempfile.TemporaryDirectory(prefix="realtime_seg_bench_") as tmp:
        measured = [bench_model(r.model, f"{r.choice.name} {r.model.precision}", cfg, clip, Path(tmp), r.choice)
                    for r in rows]
        keras_loops: dict[str, SeedKeras] = {}  # the seed notebook's loop, once per model, whatever the precisions
        for row in rows:  # last: TensorFlow stays loaded after
            name = row.choice.name
            keras_path = keras_path_for(row.choice.path, cfg.keras)
            if name in keras_loops:
                continue
            if cfg.seed_keras:
                status(f"{name}: seed Keras loop")
                keras_loops[name] = seed_keras(row.model, clip, Path(tmp), keras_path)
            else:
                keras_loops[name] = SeedKeras(str(keras_path), note="skipped: --no-keras")
    results = [build_result(r.choice.name, r.model, cfg.options.threads, cfg.options.spinning, m,
                            keras_loops[r.choice.name])
               for r, m in zip(rows, measured)]
    status("matrix-multiply rate")
    machine = machine_info(any(r.provider.startswith("CUDA") for r in results), load)
    print(f"bench: {clip.path} ({clip.size[0]}x{clip.size[1]}, {len(clip.frames)} frames), "
          f"{machine['cpu']}, {machine['cores']} cores ({' '.join(machine['flags']) or 'no SIMD flags read'})"
          f"{', GPU ' + machine['gpu'] if machine['gpu'] else ''}; "
          f"NumPy float32 matmul {machine['matmul_gflops']:.0f} GFLOP/s")
    for r in results:
        print(table(r, results[0] if len(results) > 1 else None))
    doc = report(cfg, clip, results, machine)
    if cfg.json:
        write_json(Path(cfg.json), doc, hint="choose a writable --json path")
        print(f"wrote {cfg.json}")
    if cfg.plot:
        print(f"wrote {plot_stages(Path(cfg.plot), results)}")
    return doc


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg bench", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(DEMO_VIDEO), help="video file (default: the demo video)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help=f"ONNX model or preset ({', '.join(PRESETS)}); default: accurate")
    which.add_argument("--models", nargs="+", metavar="M", help="several models, measured in one run")
    p.add_argument("--keras", help="the same weights as .keras (default: M.keras beside M.onnx)")
    p.add_argument("--no-keras", action="store_true", help="skip the seed Keras loop")
    add_model_options(p, model=False, threads_help="onnxruntime intra-op threads (0: automatic; the pipeline row "
                                                          "then runs the viewer's plan: two frames in flight)", several=True)
    p.add_argument("--frames", type=int, default=200, help="first N frames of the video (default 200)")
    p.add_argument("--spin", action="store_true",
                   help="let onnxruntime's idle threads busy-wait (its own default; the product turns it off)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8], help="batch sizes for model alone")
    p.add_argument("--json", help="also write the results as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the stage times per model (PNG)")
    return p


def config(args: argparse.Namespace) -> BenchConfig:
    """Checked settings from the parsed arguments."""
    check_at_least("--frames", args.frames, 1)
    check_at_least("--threads", args.threads, 0)
    check_at_least("--batches", min(args.batches), 1)
    specs = args.models or [choose_model(args.model).spec]
    if args.keras and len(specs) > 1:
        raise UsageError("--keras names one Keras file: use it with --model, not --models")
    return BenchConfig(args.video, choices(specs, args.precision, args.aspect or [None], foreign_spec(args)),
                       args.keras, RunOptions(args.device, args.threads, args.spin), args.frames,
                       tuple(args.batches), not args.no_keras, args.json, args.plot)


def main(argv: list[str]) -> int:
    run(config(parser().parse_args(argv)))
    return 0
