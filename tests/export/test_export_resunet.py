"""The residual U-Net exports with tf2onnx and passes the export's parity check, layer names kept."""
from __future__ import annotations

import re

import pytest

from conftest import run_cli

onnx = pytest.importorskip("onnx")
pytest.importorskip("tf2onnx")


def test_resunet_checkpoint_exports_from_the_cli(tiny_run, tmp_path):
    run, summary = tiny_run
    assert summary["arch"] == "resunet"  # the trainer's default: every export test covers it
    out = tmp_path / "resunet.onnx"
    proc = run_cli("export", str(run / "best.keras"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    agreement = float(re.search(r"argmax agreement ([\d.]+)%", proc.stdout).group(1))
    assert agreement >= 99.9 and out.is_file()
    graph = onnx.load(str(out)).graph
    names = " ".join(node.name for node in graph.node)
    for layer in ("stem1", "enc2_res1_add", "enc4_res3", "context", "dec1", "head"):
        assert layer in names, layer
    ops = {node.op_type for node in graph.node}
    assert {"Conv", "Resize", "ArgMax"} <= ops and "ConvTranspose" not in ops
    assert not any(node.op_type == "BatchNormalization" for node in graph.node)  # folded into convs
