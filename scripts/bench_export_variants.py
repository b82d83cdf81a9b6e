"""Export variants for docs/EXPORT.md: argmax head vs logits + NumPy argmax, NHWC vs NCHW input.

usage: python -m scripts.bench_export_variants [KERAS ...] [--random 16x192x256] [--threads 0]
                                               [--rounds 5] [--frames 20] [--json out.json]

Each Keras model (default: tests/fixtures/tiny_camvid.keras and a random-weight width-16
192x256 U-Net) is converted four ways with tf2onnx, in memory:
  argmax/NHWC   the default export: input (N, H, W, 3), output uint8 class map (N, H, W)
  logits/NHWC   output float32 logits (N, H, W, C); the runtime takes np.argmax
  argmax/NCHW   input (N, 3, H, W) (tf2onnx inputs_as_nchw): the transposes at the input go
  logits/NCHW
and each is timed at batch 1 on real frames: session.run, then the postprocess to a uint8
class map (np.argmax for logits). NCHW needs the frame transposed on the host; that cost is
shown apart ("to NCHW"). Variants are interleaved frame by frame in a shuffled order and the
medians kept, so a busy machine biases none of them. Needs TensorFlow, tf2onnx and onnx (requirements-train.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from realtime_seg.contract import preprocess  # noqa: E402  (after the environment it reads)

VARIANTS = (("argmax", "NHWC"), ("logits", "NHWC"), ("argmax", "NCHW"), ("logits", "NCHW"))
VIDEO = ROOT / "videos" / "dashcam_highway.mp4"


@dataclass
class VariantResult:
    variant: str
    run_ms: float          # median session.run at batch 1
    post_ms: float         # median postprocess to a uint8 class map (0 for the argmax head)
    to_nchw_ms: float      # median host-side transpose of the input (NCHW only)
    total_ms: float        # run + post + to_nchw
    transposes: int        # Transpose nodes left in the ONNX graph
    agreement: float       # class maps equal to the default export's, fraction of pixels


def convert(model, head: str, layout: str):
    """The product's converter for NHWC; the same traced function with inputs_as_nchw for NCHW."""
    from realtime_seg.export.onnx_export import OPSET, drop_output
    from realtime_seg.export.onnx_export import convert as product_convert
    if layout == "NHWC":
        proto = product_convert(model, head)
    else:
        import tensorflow as tf
        import tf2onnx
        _, h, w, _ = model.inputs[0].shape
        spec = [tf.TensorSpec((None, h, w, 3), tf.float32, name="image")]

        @tf.function(input_signature=spec)
        def forward(image):
            logits = model(image, training=False)
            if head == "logits":
                return {"logits": logits}
            return {"class_map": tf.cast(tf.argmax(logits, axis=-1), tf.uint8), "logits": logits}

        proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET,
                                                 inputs_as_nchw=["image:0"])
    return drop_output(proto, "logits") if head == "argmax" else proto


def session(proto, threads: int):
    """An onnxruntime CPU session configured like engine.load_model's."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """`n` preprocessed NHWC frames (1, H, W, 3) from the demo video."""
    import cv2
    cap = cv2.VideoCapture(str(VIDEO))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(preprocess([frame], size, np.uint8))
    cap.release()
    return out


def _time(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - t) * 1e3, out


def step(sess, head: str, layout: str, x: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """One frame: ms of the host transpose, the run and the postprocess, and the class map."""
    t0 = time.perf_counter()
    if sess.get_inputs()[0].type == "tensor(float)":  # the NCHW variants keep the float32 input
        x = x.astype(np.float32) / np.float32(255)
    feed = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout == "NCHW" else x
    t1 = time.perf_counter()
    out = sess.run(None, {sess.get_inputs()[0].name: feed})[0]
    t2 = time.perf_counter()
    cmap = out if head == "argmax" else np.argmax(out, axis=-1).astype(np.uint8)
    t3 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, cmap


def bench(model, label: str, args) -> dict:
    """All four variants of one Keras model, interleaved frame by frame in a shuffled order."""
    _, h, w, _ = model.inputs[0].shape
    print(f"converting {label} four ways ...", file=sys.stderr, flush=True)
    protos = {v: convert(model, *v) for v in VARIANTS}
    sessions = {v: session(p, args.threads) for v, p in protos.items()}
    xs = frames(args.frames, (h, w))
    samples = {v: ([], [], []) for v in VARIANTS}
    maps: dict = {v: [] for v in VARIANTS}
    rng = np.random.default_rng(0)
    for v in VARIANTS:  # warm-up
        step(sessions[v], *v, xs[0])
    for r in range(args.rounds):
        for x in xs:
            for i in rng.permutation(len(VARIANTS)):
                v = VARIANTS[i]
                *ms, cmap = step(sessions[v], *v, x)
                for acc, value in zip(samples[v], ms):
                    acc.append(value)
                if r == 0:
                    maps[v].append(cmap)
    ref = np.stack(maps[VARIANTS[0]])
    results = []
    for v in VARIANTS:
        t, r, p = (statistics.median(s) for s in samples[v])
        results.append(VariantResult(f"{v[0]}/{v[1]}", r, p, t, r + p + t,
                                     sum(n.op_type == "Transpose" for n in protos[v].graph.node),
                                     float(np.mean(np.stack(maps[v]) == ref))))
    return {"model": label, "input_size": [h, w], "classes": int(model.outputs[0].shape[-1]),
            "flops": _flops(model), "threads": args.threads, "results": [asdict(r) for r in results]}


def _flops(model) -> int:
    from realtime_seg.training.model import count_flops
    return count_flops(model)


def print_table(doc: dict) -> None:
    base = doc["results"][0]["total_ms"]
    print(f"\n{doc['model']}: {doc['input_size'][0]}x{doc['input_size'][1]}, {doc['classes']} classes, "
          f"{doc['flops'] / 1e9:.2f} GFLOPs, threads {doc['threads'] or 'auto'} (medians, batch 1)")
    print(f"  {'variant':<13} {'run ms':>8} {'post ms':>8} {'to NCHW':>8} {'total':>8} {'vs default':>10} "
          f"{'Transpose':>9} {'agree':>7}")
    for r in doc["results"]:
        print(f"  {r['variant']:<13} {r['run_ms']:8.3f} {r['post_ms']:8.3f} {r['to_nchw_ms']:8.3f} "
              f"{r['total_ms']:8.3f} {base / r['total_ms']:9.2f}x {r['transposes']:9d} {r['agreement']:7.4f}")


def models(args):
    """(label, Keras model) for each path given, plus the random-weight U-Net."""
    from realtime_seg.training.checkpoint import load_keras
    for path in args.keras or [str(ROOT / "tests/fixtures/tiny_camvid.keras")]:
        yield Path(path).stem, load_keras(Path(path))
    if args.random:
        from realtime_seg.training.model import unet_model
        width, h, w = (int(x) for x in args.random.split("x"))
        yield f"random_w{width}_{h}x{w}", unet_model((h, w, 3), width, 11)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("keras", nargs="*", help=".keras files (default: the tiny fixture)")
    p.add_argument("--random", default="16x192x256", help="WIDTHxHxW random-weight U-Net; '' for none")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: automatic)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--json", help="also write the results as JSON")
    args = p.parse_args()
    docs = []
    for label, model in models(args):
        docs.append(bench(model, label, args))
        print_table(docs[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(docs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
