"""The training recipe's parts: bf16 detection, the learning-rate schedule, class weights, options."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from realtime_seg.system import cpu_flags
from realtime_seg.training.backend import bf16_supported, choose_precision

EPYC_AVX2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"


def test_cpu_flags_read_from_injected_cpuinfo():
    assert {"avx2", "fma"} <= cpu_flags(EPYC_AVX2) and "avx512_bf16" not in cpu_flags(EPYC_AVX2)
    assert {"avx512_bf16", "amx_bf16"} <= cpu_flags(SAPPHIRE_RAPIDS)
    assert cpu_flags("") == set()
    assert isinstance(cpu_flags(), set)  # this machine's own /proc/cpuinfo (or none) parses


@pytest.mark.parametrize("cpuinfo,device,want", [
    (EPYC_AVX2, "cpu", "float32"),                 # AVX2 only: bf16 is emulated, keep float32
    (SAPPHIRE_RAPIDS, "cpu", "mixed_bfloat16"),    # AVX512_BF16 / AMX
    ("flags: avx2 amx_bf16\n", "cpu", "mixed_bfloat16"),
    (GRAVITON, "cpu", "float32"),                  # Arm bf16 is not one of the flags trusted here
    (EPYC_AVX2, "gpu", "mixed_bfloat16"),          # a GPU under JAX
])
def test_auto_precision_follows_bf16_support(cpuinfo, device, want):
    assert choose_precision("auto", device, cpu_flags(cpuinfo)) == want
    assert bf16_supported(device, cpu_flags(cpuinfo)) == (want == "mixed_bfloat16")


@pytest.mark.parametrize("device, want", [("cpu", "float32"), ("gpu", "mixed_bfloat16")])
def test_auto_precision_keeps_float32_where_bf16_is_slower(device, want):
    """Depthwise encoders (lite*) run slower in bf16 on a bf16 CPU: auto keeps float32 there, not on GPUs."""
    from realtime_seg.training.options import ARCHS
    flags = cpu_flags(SAPPHIRE_RAPIDS)
    assert choose_precision("auto", device, flags, ARCHS["lite0"].cpu_bf16) == want
    assert choose_precision("auto", "cpu", flags, ARCHS["seed"].cpu_bf16) == "mixed_bfloat16"
    assert choose_precision("bfloat16", "cpu", flags, ARCHS["lite0"].cpu_bf16) == "mixed_bfloat16"  # asked


def test_explicit_precision_and_bad_value():
    flags = cpu_flags(EPYC_AVX2)
    assert choose_precision("float32", "gpu", flags) == "float32"
    assert choose_precision("bfloat16", "cpu", flags) == "mixed_bfloat16"
    assert choose_precision("float16", "gpu", flags) == "mixed_float16"
    with pytest.raises(ValueError, match="allowed: auto, float32, bfloat16, float16"):
        choose_precision("int8", "cpu", flags)


def test_warmup_then_poly_and_cosine_decay():
    pytest.importorskip("keras")
    from realtime_seg.training.schedule import WarmupDecay
    poly = WarmupDecay(1e-3, total_steps=100, warmup_steps=10, kind="poly")
    lr = [float(poly(s)) for s in (0, 5, 10, 55, 100, 200)]
    assert lr[0] == pytest.approx(1e-4) and lr[1] == pytest.approx(5.5e-4)  # linear from lr/10
    assert lr[2] == pytest.approx(1e-3)                                    # peak after warm-up
    assert lr[2] > lr[3] > lr[4] and lr[4] == pytest.approx(2e-5) == lr[5]  # decays to the floor
    cosine = WarmupDecay(1e-3, total_steps=100, kind="cosine")
    assert float(cosine(50)) == pytest.approx(1e-3 * (0.02 + 0.98 * 0.5), rel=1e-5)
    assert float(WarmupDecay(1e-3, 100, kind="constant")(70)) == pytest.approx(1e-3)
    again = WarmupDecay.from_config(poly.get_config())  # saved with the optimizer for --resume
    assert float(again(55)) == pytest.approx(lr[3])
    with pytest.raises(ValueError, match="allowed: poly, cosine, constant"):
        WarmupDecay(1e-3, 100, kind="step")


def test_sqrt_weights_are_the_root_of_median_balancing(camvid_dir):
    from realtime_seg.datasets.readers import load_dataset, load_pair
    from realtime_seg.training.inputs import pixel_weights
    ds = load_dataset(camvid_dir)
    pairs = [load_pair(s, ds.format, ds.table) for s in ds.train]
    median, sqrt = pixel_weights(ds, pairs, "median"), pixel_weights(ds, pairs, "sqrt")
    np.testing.assert_allclose(sqrt[:11], np.sqrt(median[:11]), rtol=1e-6)
    assert sqrt[11] == 0 and not sqrt[11:].any()  # void stays ignored


def test_trainval_also_trains_on_val_and_says_so(tmp_path, camvid_dir):
    pytest.importorskip("keras")
    from conftest import tiny_config
    from realtime_seg.training.train import train
    summary = train(tiny_config(camvid_dir, tmp_path / "tv", epochs=1, train_split="trainval"))
    assert summary["train_samples"] == 8 + 3 and summary["val_samples"] == 3
    assert summary["val_held_out"] is False and summary["arch"] == "resunet"
    assert summary["policy"] == choose_precision("auto", "cpu", cpu_flags(), True) and summary["gflops"] > 0


@pytest.mark.parametrize("args", [["--arch", "segnet"], ["--scale-range", "2,0.5"],
                                  ["--scale-range", "x"], ["--train-split", "test"],
                                  ["--compute-dtype", "int8"], ["--class-weights", "inverse"]])
def test_bad_recipe_options_exit_2(tmp_path, camvid_dir, args):
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.strip()
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, new", [(["--precision", "float16"], "--compute-dtype float32|bfloat16|float16"),
                                       (["--precision"], "--compute-dtype float32|bfloat16|float16"),
                                       (["--mixed-precision"], "--compute-dtype float16")])
def test_the_old_precision_flags_say_to_use_compute_dtype(tmp_path, camvid_dir, args, new):
    """--precision is a model file's run-time precision elsewhere: in train it only points to --compute-dtype."""
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "o"), *args)
    line = assert_one_line_error(proc, 2)
    assert line.startswith(f"error: train: {args[0]} ") and new in line
    assert not (tmp_path / "o").exists()


def test_compute_dtype_is_what_the_run_trains_in(tmp_path, camvid_dir):
    pytest.importorskip("keras")
    from conftest import tiny_config
    from realtime_seg.training.train import parser, train
    assert parser().parse_args(["--data", "d", "--out", "o", "--compute-dtype", "bfloat16"]).compute_dtype == "bfloat16"
    summary = train(tiny_config(camvid_dir, tmp_path / "f16", epochs=1, limit=2, compute_dtype="float16"))
    assert summary["policy"] == "mixed_float16"
