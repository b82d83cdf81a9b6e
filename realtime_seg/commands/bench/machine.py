"""The machine a benchmark ran on: CPU, SIMD flags, GPU, BLAS rate, load, versions; model FLOPs."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from ...system import cpu_flags, cpu_info
from .stages import _ms

CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimddp", "i8mm", "sve")


MATMUL_N = 1024


def _gpu_name() -> str | None:
    """The first NVIDIA GPU's name from nvidia-smi, or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def matmul_gflops(n: int = MATMUL_N, reps: int = 10) -> float:
    """This machine's float32 matrix-multiply rate with NumPy's BLAS (best of `reps`), GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    a @ b  # warm-up: BLAS threads start
    best = min(_ms(lambda: a @ b)[0] for _ in range(reps))
    return 2 * n ** 3 / (best / 1e3) / 1e9


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work distorts timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info(cuda: bool, load: float | None) -> dict:
    """CPU model, cores, SIMD flags of interest, GPU name (when on CUDA), matmul rate, load."""
    cpu, flags = cpu_info(), cpu_flags()
    return {"cpu": cpu.get("model name") or platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags],
            "platform": platform.platform(), "gpu": _gpu_name() if cuda else None,
            "matmul_gflops": round(matmul_gflops(), 1), "matmul_n": MATMUL_N,
            "load_average_at_start": load}


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries that were used (Keras/TF only if loaded)."""
    import av
    import onnxruntime
    found = {"python": platform.python_version(), "numpy": np.__version__,
             "opencv": cv2.__version__, "onnxruntime": onnxruntime.__version__, "av": av.__version__}
    for name in ("onnx", "keras", "tensorflow"):
        if name in sys.modules:
            found[name] = getattr(sys.modules[name], "__version__", "?")
    return found


def onnx_conv_flops(path: str | Path, size: tuple[int, int] | None = None) -> int | None:
    """Multiply-adds x2 of the Conv/ConvTranspose nodes for one image (at `size` (H, W) when the graph
    takes any size), by ONNX shape inference.

    None when the `onnx` package is not installed or a shape cannot be inferred.
    """
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path))
    for inp in proto.graph.input:  # batch 1 (and `size`), so every shape is concrete
        dims = inp.type.tensor_type.shape.dim
        for axis, value in enumerate([1, *(size or ())]):
            if len(dims) > axis and not dims[axis].HasField("dim_value"):
                dims[axis].dim_value = value
    graph = onnx.shape_inference.infer_shapes(proto).graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                           for d in vi.type.tensor_type.shape.dim]
    total = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        x, w, y = shapes.get(node.input[0]), shapes.get(node.input[1]), shapes.get(node.output[0])
        if not (x and w and y) or None in x + w + y:
            return None
        # Conv: W (C_out, C_in/g, kh, kw), cost per output pixel; ConvTranspose: W (C_in, C_out/g, kh, kw),
        # each input pixel scatters a kernel. Either way: pixels x prod(W).
        pixels = int(np.prod(y[2:] if node.op_type == "Conv" else x[2:]))
        total += 2 * pixels * int(np.prod(w))
    return total
