"""Train a U-Net on CARLA, CamVid, KITTI or Cityscapes folders, one or several (Keras 3; TensorFlow or JAX).

usage: python -m realtime_seg train --data DIR --out RUN_DIR [--arch resunet|seed|lite0] [--epochs 40] [--limit 16]
       python -m realtime_seg train --data ../shared/data/camvid --out RUN_DIR --arch lite0 --holdout-drive 0006R0
       python -m realtime_seg train --data CAMVID --data KITTI --out RUN_DIR     # two cameras, CamVid's classes
       python -m realtime_seg train --data CAMVID --holdout-data KITTI --out RUN_DIR  # KITTI: a camera never seen
Writes RUN_DIR/best.keras (best val mIoU), last.keras, metrics.csv, curves.png, summary.json, config.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..datasets.augment import AUGMENTATIONS, VOID, parse_augmentations
from ..datasets.readers import CLASS_SETS, FORMATS, Dataset, load_datasets
from ..errors import ArgumentParser, Renamed, UsageError, UserError, check_at_least, first_line
from ..system import check_creatable, cpu_flags, write_json
from .backend import accelerator, choose_precision, import_keras  # Keras loads when called
from .epochs import HINT, epoch_callbacks, interrupts_as_keyboard_interrupt, save_after_interrupt
from .inputs import CLASS_WEIGHTS, data_roots, data_weights, decode_run, pixel_weights, sequence_class
from . import progressive
from .presets import OVERRIDABLE, PRESETS, get_preset, stage_settings
from .options import ARCHS, COMPUTE_DTYPES, ENCODER_BN, OPTIMIZERS, SCHEDULES, TRAIN_SPLITS

log = logging.getLogger(__name__)

@dataclass
class TrainConfig:
    data: str | list[str]           # one dataset folder, or several trained as one (one class set)
    out: str
    format: str = "auto"
    classes: str = "auto"           # the run's class set: auto, camvid, cityscapes, carla13, carla23
    data_weights: str = ""          # N,M,...: each --data's frames drawn N, M... times an epoch (default 1)
    holdout_data: list[str] = field(default_factory=list)  # dataset folders never trained on, scored each epoch
    arch: str = "resunet"           # resunet | seed (the seed's exact U-Net) | lite0/1/2 (ImageNet encoder)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    schedule: str = "poly"          # poly | cosine | constant, stepped per batch
    warmup_epochs: float = 1.0      # linear warm-up from lr/10
    optimizer: str = "adamw"        # adamw | adam
    weight_decay: float = 1e-4      # AdamW's decoupled decay (kernels only)
    input_size: tuple[int, int] = (96, 128)  # (height, width), multiples of 16
    progressive: str = ""           # HxW:EPOCHS: the first EPOCHS epochs at HxW, the rest at input_size
    width: int = 0                  # n_filters of the first block (0: the arch's default)
    limit: int = 0                  # use only N samples (0: all)
    class_weights: str = "median"   # none | median | sqrt (square root of median frequency)
    augment: bool = True
    augmentations: str = "all"      # datasets/augment.py AUGMENTATIONS, comma-separated, or all | basic | none
    scale_range: tuple[float, float] = (0.5, 2.0)  # random scale about the run's resolution
    train_split: str = "train"      # train | trainval (CamVid: also train on val; val no longer held out)
    holdout_drive: str = ""         # drives (comma-separated) kept out of training whole, scored each epoch
    val_fraction: float = 0.1       # CARLA held-out fraction
    seed: int = 0
    resume: bool = False
    init: str = ""                  # start from this checkpoint's weights (fine-tuning)
    compute_dtype: str = "auto"     # auto (bfloat16 where supported) | float32 | bfloat16 | float16
    workers: int = 2
    encoder_lr: float = 0.1         # a pretrained encoder's learning rate, as a fraction of --lr
    encoder_bn: str = "frozen"      # a pretrained encoder's batch norm: frozen (ImageNet statistics) | train
    logit_adjustment: bool = True   # subtract log(class weight) from the logits at inference (model.py)
    extra: dict = field(default_factory=dict)


def _init_from(model, path: Path) -> None:
    """Start from a checkpoint's weights (fine-tuning); any input size, same width and classes."""
    keras = import_keras()
    if not path.is_file():
        raise UserError(f"--init: checkpoint {path} not found; pass a .keras file written by train")
    try:
        source = keras.models.load_model(path, compile=False)
        model.set_weights(source.get_weights())
    except Exception as e:
        raise UserError(f"--init: cannot use {path} ({first_line(e, 120)}); it needs the same --width and "
                        f"class count as this run") from None
    log.info("initialised from %s", path)


def _build(cfg: TrainConfig, class_weights: np.ndarray, run: Path, state: dict, steps_per_epoch: int):
    """A new model (or last.keras with --resume), compiled with the run's optimizer and weighted loss."""
    keras = import_keras()
    from . import schedule  # registers the saved LR schedule before a checkpoint is loaded
    from .model import get_model, with_logit_adjustment  # registers LogitAdjustment likewise
    if cfg.resume and (run / "last.keras").exists():
        log.info("resuming from %s at epoch %d", run / "last.keras", state.get("epoch", 0))
        if not zipfile.is_zipfile(run / "last.keras"):
            raise UserError(f"--resume: {run / 'last.keras'} is not a readable .keras file (cut off or "
                            f"corrupt); restore it, or start a new run without --resume")
        try:
            return keras.models.load_model(run / "last.keras")
        except Exception as e:
            raise UserError(f"--resume: cannot load {run / 'last.keras'} ({first_line(e)}); restore it, or "
                            f"start a new run without --resume") from None
    if cfg.resume:
        raise UserError(f"--resume: {run / 'last.keras'} does not exist; start without --resume")
    model = get_model(cfg.arch, cfg.input_size, len(class_weights), cfg.width or None)
    if cfg.init:
        _init_from(model, Path(cfg.init))
    pretrained = ARCHS[cfg.arch].pretrained
    if pretrained and cfg.encoder_bn == "frozen":
        _freeze_encoder_bn(model)
    if cfg.logit_adjustment:
        model = with_logit_adjustment(model, class_weights)
    optimizer = schedule.make_optimizer(cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.schedule,
                                        total_steps=cfg.epochs * steps_per_epoch,
                                        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
                                        encoder_lr_scale=cfg.encoder_lr if pretrained else 1.0)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _freeze_encoder_bn(model) -> None:
    """The encoder's batch norms keep ImageNet's statistics and affine (batches of 8 are too few)."""
    keras = import_keras()
    from .encoders import PREFIX
    for layer in model.layers:
        if layer.name.startswith(PREFIX) and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def check_config(cfg: TrainConfig) -> None:
    """Usage errors in the settings, and a run folder that cannot be made, before any work."""
    choices = {"arch": ARCHS, "schedule": SCHEDULES, "optimizer": OPTIMIZERS,
               "train_split": TRAIN_SPLITS, "compute_dtype": COMPUTE_DTYPES, "class_weights": CLASS_WEIGHTS,
               "encoder_bn": ENCODER_BN}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise UsageError(f"unknown --{name.replace('_', '-')} {getattr(cfg, name)!r}; "
                             f"allowed: {', '.join(allowed)}")
    try:
        parse_augmentations(cfg.augmentations)
    except ValueError as e:
        raise UsageError(f"--augment-ops: {e}") from None
    low, high = cfg.scale_range
    if not 0 < low <= high:
        raise UsageError(f"--scale-range must be LOW,HIGH with 0 < LOW <= HIGH, got {low:g},{high:g}")
    if cfg.warmup_epochs < 0 or cfg.weight_decay < 0:
        raise UsageError("--warmup-epochs and --weight-decay must be >= 0")
    if any(s <= 0 or s % 16 for s in cfg.input_size):
        raise UsageError(f"--input-size must be positive multiples of 16, got {cfg.input_size}")
    if cfg.width < 0:
        raise UsageError(f"--width must be at least 1 (or 0: the arch's default), got {cfg.width}")
    for name in ("epochs", "batch_size", "workers"):
        check_at_least(f"--{name.replace('_', '-')}", getattr(cfg, name), 1)
    if cfg.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {cfg.limit}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise UsageError(f"--lr must be a positive number, got {cfg.lr:g}")
    if not 0 <= cfg.encoder_lr <= 1:
        raise UsageError(f"--encoder-lr is a fraction of --lr from 0 (frozen) to 1, got {cfg.encoder_lr:g}")
    if ARCHS[cfg.arch].pretrained and any(s % 32 for s in cfg.input_size):
        raise UsageError(f"--arch {cfg.arch} needs --input-size multiples of 32, got {cfg.input_size}")
    progressive.check(cfg)
    if not 0 <= cfg.val_fraction < 1:
        raise UsageError(f"--val-fraction must be at least 0 and below 1, got {cfg.val_fraction:g}")
    if cfg.classes not in CLASS_SETS:
        raise UsageError(f"unknown --classes {cfg.classes!r}; allowed: {', '.join(CLASS_SETS)}")
    data_weights(cfg)
    out = Path(cfg.out).resolve()
    for root in data_roots(cfg) + list(cfg.holdout_data):
        data = Path(root).resolve()
        if out == data or data in out.parents:
            raise UsageError(f"--out {cfg.out} is {'' if out == data else 'inside '}the dataset folder "
                             f"{root}; choose a run folder outside it")
    if {Path(r).resolve() for r in cfg.holdout_data} & {Path(r).resolve() for r in data_roots(cfg)}:
        raise UsageError("--holdout-data names a folder that --data trains on; a held-out camera must be "
                         "one the run never sees")
    check_creatable(Path(cfg.out), "--out")


def train(cfg: TrainConfig) -> dict:
    """Run a training job; returns the summary written to RUN_DIR/summary.json."""
    check_config(cfg)
    datasets = load_datasets(data_roots(cfg), cfg.format, cfg.classes, cfg.val_fraction, cfg.seed)
    # before the run folder and Keras (seconds to load): a bad file fails at once, leaving nothing
    samples, pairs = decode_run(cfg, datasets)
    dataset = Dataset(" + ".join(ds.format for ds in datasets), datasets[0].table, [], [])
    weights = pixel_weights(dataset, pairs[0], cfg.class_weights)
    run = Path(cfg.out)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run folder {run}: {e.strerror}; choose a writable --out")
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    device = accelerator(keras.backend.backend())
    policy = choose_precision(cfg.compute_dtype, device, cpu_flags(),
                              ARCHS[cfg.arch].cpu_bf16)
    with global_policy(keras, policy):  # the caller's policy is back when train() returns
        return _fit(cfg, keras, dataset, samples, pairs, weights, run, policy, device)


@contextlib.contextmanager
def global_policy(keras, policy: str) -> Iterator[None]:
    """Keras's global dtype policy set to `policy` (set either way: no earlier run leaks in), then restored."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _fit(cfg: TrainConfig, keras, dataset, samples, pairs, weights, run: Path, policy: str,
         device: str) -> dict:
    """Build (or resume) the model, fit it with checkpoints, write summary.json."""
    (n_train, n_val, n_drive, n_camera), (train_pairs, val_pairs, drive_pairs, camera_pairs) = samples, pairs
    held_out = "held out" if cfg.train_split == "train" else "also trained on: not held out"
    drive = f" / {n_drive} of held-out drive {cfg.holdout_drive}" if n_drive else ""
    camera = f" / {n_camera} of held-out camera {', '.join(cfg.holdout_data)}" if n_camera else ""
    drawn = f" ({len(train_pairs)} drawn an epoch: --data-weights {cfg.data_weights})" if cfg.data_weights else ""
    print(f"{dataset.format} data: {n_train} train{drawn} / {n_val} val ({held_out}){drive}{camera}, "
          f"{dataset.table.num_classes} classes ({dataset.table.name}), backend {keras.backend.backend()} "
          f"on {device}, {policy}")
    state_path = run / "state.json"
    state = json.loads(state_path.read_text()) if cfg.resume and state_path.exists() else {}
    model = _build(cfg, weights[:dataset.table.num_classes], run, state,
                   steps_per_epoch=max(1, len(train_pairs) // cfg.batch_size))
    write_json(run / "config.json", {**asdict(cfg), "dataset": dataset.format, "table": dataset.table.name,
                                     "classes_list": list(dataset.table.classes),
                                     "palette": dataset.table.palette}, hint=HINT)
    Seq = sequence_class()
    void = dataset.table.void if dataset.table.void is not None else VOID  # padding: weight 0
    ops = parse_augmentations(cfg.augmentations) if cfg.augment else ()
    seq = Seq(train_pairs, cfg.input_size, cfg.batch_size, weights, dataset.table.num_classes,
              cfg.seed, cfg.workers, ops, cfg.scale_range, void)
    start, t0, losses = state.get("epoch", 0), time.time(), []
    if cfg.progressive:
        print(progressive.describe(cfg))
    with interrupts_as_keyboard_interrupt() as received:
        try:
            for phase in progressive.phases(cfg, start):  # one phase unless --progressive
                if phase.first > start:
                    print(progressive.switch_line(phase))
                callbacks = epoch_callbacks(cfg, run, {"val": val_pairs, "holdout": drive_pairs,
                                            "camera": camera_pairs}, dataset.table, state, model,
                                            append=cfg.resume or phase.first > start)
                history = progressive.fit(model, seq, phase, callbacks, verbose=1 if sys.stdout.isatty() else 2)
                losses += history.history.get("loss", [])
        except KeyboardInterrupt:
            raise save_after_interrupt(model, run, received) from None
    from .model import count_flops
    summary = {
        "dataset": dataset.format, "table": dataset.table.name, "classes": list(dataset.table.classes),
        "epochs": state.get("epoch", 0), "train_samples": n_train, "val_samples": n_val,
        "best_val_miou": state.get("best_miou"), "best_epoch": state.get("best_epoch"),
        "best_per_class_iou": dict(zip(dataset.table.classes, state.get("best_per_class", []))),
        "last_val_miou": state.get("last_miou"),
        "last_per_class_iou": dict(zip(dataset.table.classes, state.get("last_per_class", []))),
        "holdout_drive": cfg.holdout_drive, "holdout_samples": n_drive,
        "last_holdout_miou": state.get("last_holdout_miou"),
        "last_holdout_per_class_iou": dict(zip(dataset.table.classes, state.get("last_holdout_per_class", []))),
        "holdout_data": list(cfg.holdout_data), "camera_samples": n_camera,
        "last_camera_miou": state.get("last_camera_miou"),
        "last_camera_per_class_iou": dict(zip(dataset.table.classes, state.get("last_camera_per_class", []))),
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "arch": cfg.arch, "params": model.count_params(), "gflops": round(count_flops(model) / 1e9, 3),
        "val_held_out": cfg.train_split == "train", "policy": policy, "seconds": round(time.time() - t0, 1),
        "backend": keras.backend.backend(), "config": asdict(cfg),
    }
    write_json(run / "summary.json", summary, hint=HINT)
    last = [f"{name} {summary[key]:.4f}" for name, key in (("val mIoU", "last_val_miou"),
            ("held-out drive mIoU", "last_holdout_miou"), ("held-out camera mIoU", "last_camera_miou"))
            if summary[key] is not None]
    print(f"done: {summary['epochs']} epochs in {summary['seconds']:.0f}s; last epoch: "
          f"{', '.join(last) or 'not scored'} -> {run / 'last.keras'}")
    return summary


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH like 0.5,2.0, got {text!r}")
    return low, high


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH like 96x128, got {text!r}")
    return h, w


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg train", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, action="append",
                   help="a CamVid, CARLA, KITTI semantics or Cityscapes folder; repeat it to train on several "
                        "at once in one class set (wide frames are cropped at random, never squashed)")
    p.add_argument("--data-weights", default="", metavar="N,M",
                   help="how many times an epoch each --data folder's frames are drawn (default 1 each)")
    p.add_argument("--holdout-data", action="append", default=[], metavar="DIR",
                   help="a labelled dataset (another camera) never trained on, scored after every epoch")
    p.add_argument("--out", required=True, help="run folder for checkpoints and metrics")
    p.add_argument("--preset", default="", metavar="NAME",
                   help=f"train a shipped model's recipe end to end, every stage ({', '.join(PRESETS)}; "
                        f"models/README.md); only --epochs, --limit, --workers, --seed, --batch-size, "
                        f"--compute-dtype and --resume may be set beside it")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--classes", default="auto", choices=CLASS_SETS,
                   help="the run's class set; auto: CamVid's 11 with a CamVid folder, Cityscapes' 19 for "
                        "Cityscapes-format data alone (KITTI, Cityscapes), CARLA's 13 or 23 tags by the masks")
    p.add_argument("--arch", default="resunet", choices=ARCHS,
                   help="resunet (residual, BN, dilated context), seed (the seed's exact U-Net), or "
                        "lite0/lite1/lite2 (ImageNet-pretrained EfficientNet-Lite encoder)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--schedule", default="poly", choices=SCHEDULES, help="decay after warm-up, per step")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up from lr/10")
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW decay of conv kernels")
    p.add_argument("--input-size", type=_size, default=(96, 128), help="HEIGHTxWIDTH, e.g. 96x128")
    p.add_argument("--progressive", default="", metavar="HxW:EPOCHS",
                   help="progressive resizing: train the first EPOCHS epochs at the smaller HxW (same "
                        "multiples as --input-size), the rest at --input-size; val is scored and "
                        "checkpoints are saved at --input-size throughout")
    p.add_argument("--width", type=int, default=0,
                   help="filters of the first block (default: resunet 16, seed 32 as the seed's)")
    p.add_argument("--limit", type=int, default=0, help="use only N samples (smoke runs)")
    p.add_argument("--class-weights", default="median", choices=CLASS_WEIGHTS,
                   help="sqrt: square root of median frequency balancing")
    p.add_argument("--no-logit-adjustment", dest="logit_adjustment", action="store_false",
                   help="keep the class weights' bias at inference (more rare-class pixels, lower IoU)")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--augment-ops", dest="augmentations", default="all", metavar="OPS",
                   help=f"comma-separated, from {','.join(AUGMENTATIONS)}; or all (default), basic "
                        f"(scale,flip,colour: the presets' pick), none")
    p.add_argument("--scale-range", type=_range, default=(0.5, 2.0),
                   help="LOW,HIGH random scale of the frame about the run's size (log-uniform; pads with void)")
    p.add_argument("--train-split", default="train", choices=TRAIN_SPLITS,
                   help="trainval: CamVid's train+val (for shipping; val is then not held out)")
    p.add_argument("--holdout-drive", default="", metavar="DRIVE[,DRIVE]",
                   help="keep every frame of these drives (CamVid: 0001TP, 0006R0, 0016E5) out of train "
                        "and val and score them after each epoch: how the model does on a new scene")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.keras")
    p.add_argument("--init", default="", help="start from this .keras checkpoint's weights (fine-tune)")
    p.add_argument("--compute-dtype", default="auto", choices=COMPUTE_DTYPES,
                   help="training's number format. auto: mixed bfloat16 on GPUs (JAX), and on CPUs with "
                        "AVX512_BF16/AMX for the archs that run faster in it there (seed, resunet); else float32")
    p.add_argument("--precision", action=Renamed, hint="train: --precision is the run-time precision of a model; "
                   "training's number format is --compute-dtype float32|bfloat16|float16")
    p.add_argument("--mixed-precision", action=Renamed, nargs=0,
                   hint="train: --mixed-precision is now --compute-dtype float16")
    p.add_argument("--workers", type=int, default=2, help="data loader threads")
    p.add_argument("--encoder-lr", type=float, default=0.1,
                   help="lite archs: the pretrained encoder's learning rate as a fraction of --lr")
    p.add_argument("--encoder-bn", default="frozen", choices=ENCODER_BN,
                   help="lite archs: frozen keeps ImageNet's batch-norm statistics; train updates them")
    return p


def _fit_progressive(text: str, epochs: int) -> str:
    """A stage's progressive phase fitted to --epochs given beside --preset: at most all but the
    last epoch small; none for a one-epoch run."""
    if not text:
        return ""
    size, small = text.split(":")
    small = min(int(small), epochs - 1)
    return f"{size}:{small}" if small >= 1 else ""


def run_preset(args: argparse.Namespace, defaults: dict) -> Path:
    """Train every stage of --preset in OUT/STAGE/, each from the stage before's last.keras; a stage
    already finished (its summary.json) is kept. Returns the last stage's last.keras."""
    try:
        preset = get_preset(args.preset)
    except ValueError as e:
        raise UsageError(f"--preset: {e}") from None
    given = {k: v for k, v in vars(args).items() if v != defaults.get(k) and k not in ("preset", "data", "out")}
    fixed = sorted(set(given) - set(OVERRIDABLE))
    if fixed:
        raise UsageError(f"--preset {preset.name} sets --{fixed[0].replace('_', '-')} itself; drop it, or train "
                         f"without --preset (allowed with it: {', '.join('--' + o.replace('_', '-') for o in OVERRIDABLE)})")
    out, init = Path(args.out), ""
    for i, stage in enumerate(preset.stages, 1):
        run = out / stage.name
        settings = {**stage_settings(preset, stage, args.data), **given, "out": str(run), "init": init}
        settings["progressive"] = _fit_progressive(settings.get("progressive", ""), settings["epochs"])
        init = str(run / "last.keras")
        if (run / "summary.json").is_file():
            print(f"preset {preset.name}, stage {i}/{len(preset.stages)} {stage.name}: done before, kept ({run})")
            continue
        print(f"preset {preset.name}, stage {i}/{len(preset.stages)} {stage.name}: {stage.purpose}")
        settings["resume"] = bool(given.get("resume")) and (run / "last.keras").is_file()
        train(TrainConfig(**settings))
    print(f"preset {preset.name}: {init}; export it with "
          f"python -m realtime_seg export {init} -o models/mine.onnx [--int8 --calib {args.data[0]}]")
    return Path(init)


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.preset:
        run_preset(args, {k: p.get_default(k) for k in vars(args)})
        return 0
    del args.preset
    train(TrainConfig(**vars(args)))
    return 0
