"""A full disk, simulated without root: the CLI runs in a child process whose files may not grow
past a size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it fails with EFBIG as
a write to a full disk fails with ENOSPC). An output is called written only when it is.

Inputs: the 40-frame 480x270 dash-cam cut and the full 221-frame demo video, with the tiny model.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest

from conftest import FIXTURES, ROOT, assert_one_line_error

TINY = FIXTURES / "tiny_camvid.onnx"
SHORT = FIXTURES / "videos" / "dashcam_short.mp4"   # 40 frames, 480x270, 25 fps
FULL = ROOT / "videos" / "dashcam_highway.mp4"      # 221 frames, 960x540, 25 fps
EFBIG = "File too large (EFBIG)"


def run_limited(args: list, limit: int | None, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m realtime_seg ARGS` with the tiny model, its files limited to `limit` bytes (None: no limit)."""
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "realtime_seg", *map(str, args), "--model", str(TINY)],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=_headless_env(), preexec_fn=limit_files if limit else None)


def _headless_env() -> dict[str, str]:
    """No display (the viewer then records instead of opening a window); the package from this tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return {**env, "PYTHONPATH": str(ROOT)}


def frames_in(path: Path) -> tuple[str, str, int]:
    """(codec, pixel format, frames demuxed) of a video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return (stream.codec_context.name, stream.codec_context.pix_fmt,
                sum(1 for packet in container.demux(stream) if packet.size))


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def status_of(stdout: str, name: str) -> str:
    """The status column of the batch table's row for `name` (file, frames, fps, proc fps, status)."""
    rows = [line for line in stdout.splitlines() if name in line and "outputs in" not in line]
    assert len(rows) == 1, stdout
    return rows[0].split(None, 4)[4]


# ---------------------------------------------------------------- the viewer's --output

@pytest.mark.parametrize("name", ["o.mp4", "o.webm"])
def test_viewer_output_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, name):
    """Before: `wrote o.mp4 (221 frames...)`, exit 0, an mp4 without its index; a webm with 29 of 80 frames."""
    whole = run_limited(["--video", SHORT, "--no-show", "--no-hud", "--output", tmp_path / name], None, tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    size = (tmp_path / name).stat().st_size
    (tmp_path / name).unlink()
    # mid-stream, and at the very end (the mp4's index, written when the file is closed)
    for limit in (size // 2, size - 600):
        proc = run_limited(["--video", SHORT, "--no-show", "--no-hud", "--output", tmp_path / name], limit, tmp_path)
        line = assert_one_line_error(proc)
        assert line.startswith(f"error: cannot write {tmp_path / name}: {EFBIG}; "), (limit, line)
        assert "wrote" not in proc.stdout
        assert files(tmp_path) == [], (limit, files(tmp_path))


def test_viewer_default_output_is_an_h264_mp4_browsers_play(tmp_path):
    """Headless without --output (the README's first command): NAME_seg.mp4, H.264, yuv420p, index first."""
    proc = run_limited(["--video", SHORT], None, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "writing dashcam_short_seg.mp4" in proc.stdout
    out = tmp_path / "dashcam_short_seg.mp4"
    assert frames_in(out) == ("h264", "yuv420p", 40)
    head = out.read_bytes()[:4096]
    assert 0 < head.find(b"moov") < 4096 and b"mdat" not in head[:head.find(b"moov")]  # +faststart
    assert files(tmp_path) == ["dashcam_short_seg.mp4"]


# ---------------------------------------------------------------- batch

def test_batch_full_disk_fails_that_file_and_the_rest_goes_on(tmp_path):
    """The short clip's video (~120 KB) fits under 500 KB, the full video's (~2 MB) does not."""
    out = tmp_path / "out"
    proc = run_limited(["batch", SHORT, FULL, "--out", out], 500_000, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert status_of(proc.stdout, "dashcam_short.mp4") == "ok"
    failed = status_of(proc.stdout, "dashcam_highway.mp4")
    assert failed.startswith(f"failed: cannot write {out / 'dashcam_highway_seg.mp4'}: {EFBIG}; "), failed
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {failed.removeprefix('failed: ')}"]
    assert files(out) == ["dashcam_short_seg.mp4"]  # no temporary left
    assert frames_in(out / "dashcam_short_seg.mp4")[2] == 40

    again = run_limited(["batch", SHORT, FULL, "--out", out], None, tmp_path)  # space freed
    assert again.returncode == 0, again.stdout + again.stderr[-2000:]
    assert status_of(again.stdout, "dashcam_short.mp4") == "skipped (exists)"
    assert status_of(again.stdout, "dashcam_highway.mp4") == "ok"
    assert frames_in(out / "dashcam_highway_seg.mp4") == ("h264", "yuv420p", 221)


def test_batch_png_masks_and_stats_are_renamed_only_with_the_video(tmp_path):
    """Before: the truncated video was renamed into place before the mask writer failed, and kept.

    Under 50 KB each PNG (~4 KB) and the CSV (~5 KB) can be written, the video (~120 KB) not:
    none of the three may appear, and once space is freed the re-run writes all three.
    """
    out = tmp_path / "out"
    args = ["batch", SHORT, "--out", out, "--png-masks", "--stats"]
    proc = run_limited(args, 50_000, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert EFBIG in status_of(proc.stdout, "dashcam_short.mp4")
    assert not out.exists() or files(out) == []

    again = run_limited(args, None, tmp_path)
    assert again.returncode == 0 and status_of(again.stdout, "dashcam_short.mp4") == "ok", again.stderr[-2000:]
    assert frames_in(out / "dashcam_short_seg.mp4")[2] == 40
    assert len(list((out / "dashcam_short_masks").glob("*.png"))) == 40
    assert len((out / "dashcam_short_stats.csv").read_text().splitlines()) == 41
    assert not [p for p in files(out) if "partial" in p or p.startswith(".")]


def _cut(path: Path) -> None:
    """The first 60% of the bytes: what a full disk left before outputs were checked."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 6 // 10])


def _no_index(path: Path) -> None:
    """The mp4 without its moov atom (the index): what the viewer left on a full disk, exit 0."""
    data = path.read_bytes()
    moov = data.find(b"moov") - 4
    size = int.from_bytes(data[moov:moov + 4], "big")
    path.write_bytes(data[:moov] + data[moov + size:])


@pytest.mark.parametrize("ext, damage", [("mp4", _cut), ("mp4", _no_index), ("webm", _cut)])
def test_resume_redoes_an_output_short_of_its_frames(tmp_path, ext, damage):
    """Before: a re-run said `skipped (exists)` and kept the broken file for good."""
    out = tmp_path / "out"
    args = ["batch", SHORT, "--out", out, "--ext", ext, "--png-masks", "--stats"]
    first = run_limited(args, None, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    video, masks, stats = out / f"dashcam_short_seg.{ext}", out / "dashcam_short_masks", out / "dashcam_short_stats.csv"
    damage(video)
    for png in sorted(masks.iterdir())[30:]:
        png.unlink()
    stats_mtime = stats.stat().st_mtime_ns

    again = run_limited(args, None, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr[-2000:]
    assert status_of(again.stdout, "dashcam_short.mp4") == "ok"
    notes = [line for line in again.stderr.splitlines() if line.startswith("note:")]
    assert notes[0].startswith(f"note: {video} ") and notes[0].endswith(": writing it again"), notes
    assert notes[1] == f"note: {masks} holds 30 of 40 frames: writing it again", notes
    assert frames_in(video)[2] == 40 and len(list(masks.glob("*.png"))) == 40
    assert stats.stat().st_mtime_ns == stats_mtime  # complete: left alone

    third = run_limited(args, None, tmp_path)
    assert status_of(third.stdout, "dashcam_short.mp4") == "skipped (exists)"


def test_viewer_codec_its_container_cannot_hold_is_a_usage_error(tmp_path):
    proc = run_limited(["--video", SHORT, "--no-show", "--output", tmp_path / "o.mp4", "--codec", "vp8"], None, tmp_path)
    line = assert_one_line_error(proc, 2)
    assert line == "error: codec vp8 does not go in .mp4 files; use .webm or .mkv (or another --codec)"
    assert files(tmp_path) == []
