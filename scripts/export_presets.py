"""Regenerate every variant of the shipped presets from their .keras files: fp32, int8, fp16.

usage: python -m scripts.export_presets [accurate fast] [--calib ../shared/data/camvid] [--models-dir models]
                                        [--precisions fp32 int8 fp16]

For each preset NAME, from MODELS_DIR/camvid_NAME.keras (its run's config.json and summary.json
are used when they lie beside it; else the CamVid class table): camvid_NAME.onnx (fp32),
camvid_NAME.int8.onnx (written only when it passes export's checks against fp32: val mIoU within
0.3 points, class maps kept) and camvid_NAME.fp16.onnx (for CUDA). A variant that fails its
checks is not shipped: a stale file of that precision is removed, so a family never mixes weights.
Needs the training requirements (TensorFlow, tf2onnx, onnx). Summary table at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from realtime_seg.export import ExportConfig, export_model
from realtime_seg.export.quantize import Int8Config
from realtime_seg.paths import MODELS_DIR
from realtime_seg.runtime.models import PRESETS
from realtime_seg.contract import PRECISIONS
from realtime_seg.errors import UserError
from realtime_seg.runtime.precision import variant_path

ROOT = Path(__file__).resolve().parent.parent


def export_family(name: str, models_dir: Path, calib: str | None, precisions: list[str]) -> dict[str, str]:
    """Every precision of one preset; returns precision -> outcome."""
    base = models_dir / PRESETS[name]
    keras = base.with_suffix(".keras")
    classes = "auto" if (keras.parent / "config.json").is_file() else "camvid"
    outcome = {}
    for precision in precisions:
        out = variant_path(base, precision)
        cfg = ExportConfig(str(keras), str(out), precision=precision, classes=classes,
                           int8=Int8Config(calib) if precision == "int8" else None)
        print(f"--- {name} {precision} -> {out}", flush=True)
        try:
            checks = export_model(cfg)
        except UserError as e:
            if out.is_file() and precision != "fp32":
                out.unlink()  # built from other weights: it must not stay beside the new fp32
            outcome[precision] = f"not shipped: {e}"
            if precision == "fp32":
                break  # no variant without its fp32 reference
            continue
        outcome[precision] = _summary(checks)
    return outcome


def _summary(checks: dict) -> str:
    if "int8" in checks:
        c = checks["int8"]
        return (f"ok: val mIoU {c['val_miou_fp32'] * 100:.2f} -> {c['val_miou_int8'] * 100:.2f}, "
                f"agreement {c['agreement'] * 100:.1f}%, {c['speed_vs_fp32']:.2f}x fp32 here")
    return f"ok: agreement with Keras {checks['agreement'] * 100:.2f}%"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("presets", nargs="*", default=list(PRESETS),
                   help=f"presets to export (default: all of {', '.join(PRESETS)})")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--calib", default=str(ROOT.parent / "shared" / "data" / "camvid"),
                   help="dataset for int8 calibration (train) and checks (val); default ../shared/data/camvid")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    args = p.parse_args()
    unknown = [name for name in args.presets if name not in PRESETS]
    if unknown:
        p.error(f"unknown preset {unknown[0]!r}; allowed: {', '.join(PRESETS)}")
    if "fp32" not in args.precisions:
        p.error("--precisions must include fp32: every variant is checked against it")
    precisions = ["fp32", *[x for x in args.precisions if x != "fp32"]]
    results = {name: export_family(name, args.models_dir, args.calib, precisions) for name in args.presets}
    print(json.dumps(results, indent=2))
    return 1 if any(v.startswith("not shipped") for r in results.values() for k, v in r.items() if k == "fp32") else 0


if __name__ == "__main__":
    sys.exit(main())
