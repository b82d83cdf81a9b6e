"""`python -m realtime_seg batch`: real videos in, overlay videos, PNG masks and CSVs out.

Inputs are real footage: a 40-frame 480x270 cut of the dash-cam video, a 400x300 CARLA clip
(tests/fixtures/make_batch_videos.py), the full dash-cam video, and broken files made from them.
"""
from __future__ import annotations

import csv
import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from realtime_seg.commands.batch import BatchConfig, expand_inputs, run_batch  # noqa: E402
from realtime_seg.runtime.edges import smooth_upsample  # noqa: E402
from realtime_seg.runtime.engine import RunOptions, load_model  # noqa: E402
from realtime_seg.runtime.look import Look  # noqa: E402
from realtime_seg.runtime.models import choose_model  # noqa: E402
from realtime_seg.errors import UsageError  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
TINY = FIXTURES / "tiny_camvid.onnx"
SHORT = FIXTURES / "videos" / "dashcam_short.mp4"    # 40 frames, 480x270, 25 fps
CARLA = FIXTURES / "videos" / "carla_small.mp4"      # 31 frames, 400x300, 10 fps
FULL = ROOT / "videos" / "dashcam_highway.mp4"       # 221 frames, 960x540, 25 fps, H.264


def batch(*args: str, timeout: float = 240, model: Path = TINY) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, with the tiny model."""
    return subprocess.run([sys.executable, "-m", "realtime_seg", "batch", *map(str, args),
                           "--model", str(model)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def status_of(stdout: str, name: str) -> str:
    """The status column of the table row for `name` (file, frames, fps, proc fps, status)."""
    rows = [line for line in stdout.splitlines() if name in line and "outputs in" not in line]
    assert len(rows) == 1, stdout
    return rows[0].split(None, 4)[4]


def video_info(path: Path) -> tuple[int, tuple[int, int], float]:
    """(frames decoded, (width, height), fps) of a video."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps, n, size = cap.get(cv2.CAP_PROP_FPS), 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, size = n + 1, (frame.shape[1], frame.shape[0])
    cap.release()
    return n, size, fps


def browser_mp4(path: Path) -> tuple[str, str, int]:
    """(codec, pixel format, frames) of an MP4 that browsers stream: moov atom ahead of the media data."""
    head = path.read_bytes()[:1 << 16]
    assert head[4:8] == b"ftyp" and 0 < head.find(b"moov") < max(head.find(b"mdat"), 1 << 16), path
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        return stream.codec_context.name, stream.codec_context.pix_fmt, frames


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (item := cap.read())[0]:
        frames.append(item[1])
    return frames


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def truncated_copy(src: Path, dst: Path, fraction: float = 0.4) -> Path:
    """The first `fraction` of the bytes: like an interrupted download or copy."""
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def mjpg_avi(src: Path, dst: Path) -> Path:
    """`src` re-encoded as MJPG AVI (its header records the frame count)."""
    frames = frames_of(src)
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), 25.0,
                          (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        out.write(frame)
    out.release()
    return dst


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders anywhere under `folder`."""
    return [str(p) for p in folder.rglob("*") if p.name.startswith(".") or "partial" in p.name]


@pytest.fixture
def mixed_inputs(tmp_path) -> Path:
    """Two real videos, a truncated AVI and a text file named .mp4."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SHORT, folder / "dashcam_short.mp4")
    shutil.copy(CARLA, folder / "carla_small.mp4")
    truncated_copy(mjpg_avi(SHORT, tmp_path / "whole.avi"), folder / "cut_off.avi")
    (folder / "notes.mp4").write_text("not a video, just text with a video name\n")
    (folder / "readme.txt").write_text("ignored: not a video extension\n")
    return folder


def test_mixed_folder_two_ok_two_failed_then_rerun_skips(mixed_inputs, tmp_path):
    out = tmp_path / "out"
    before = digest(mixed_inputs)
    proc = batch(mixed_inputs, "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert status_of(proc.stdout, "dashcam_short.mp4") == "ok"
    assert status_of(proc.stdout, "carla_small.mp4") == "ok"
    assert "truncated" in status_of(proc.stdout, "cut_off.avi")
    assert "corrupt or not a video" in status_of(proc.stdout, "notes.mp4")
    assert "readme.txt" not in proc.stdout
    # The default output plays in browsers (H.264 MP4) and keeps frame count, size and fps.
    assert video_info(out / "dashcam_short_seg.mp4") == (40, (480, 270), 25.0)
    assert video_info(out / "carla_small_seg.mp4") == (31, (400, 300), 10.0)
    assert browser_mp4(out / "dashcam_short_seg.mp4") == ("h264", "yuv420p", 40)
    assert sorted(p.name for p in out.iterdir()) == ["carla_small_seg.mp4", "dashcam_short_seg.mp4"]
    # the table: the video's fps next to the processing speed
    header = proc.stdout.splitlines()[1].split()
    assert header == ["file", "frames", "fps", "proc", "fps", "status"], proc.stdout
    row = next(line for line in proc.stdout.splitlines() if "carla_small.mp4" in line).split()
    assert row[1:3] == ["31", "10"] and float(row[3]) > 0
    assert digest(mixed_inputs) == before

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = batch(mixed_inputs, "--out", out)
    assert again.returncode == 1  # the broken inputs still fail
    assert status_of(again.stdout, "dashcam_short.mp4") == "skipped (exists)"
    assert status_of(again.stdout, "carla_small.mp4") == "skipped (exists)"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    assert digest(mixed_inputs) == before


def test_full_video_with_workers_and_truncated_mp4(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cut = truncated_copy(FULL, folder / "dashcam_cut.mp4")  # moov first: opens, then runs dry
    out = tmp_path / "out"
    proc = batch(FULL, cut, "--out", out, "--ext", "mp4", "--workers", "2", "--batch-size", "4")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert status_of(proc.stdout, "dashcam_highway.mp4") == "ok"
    status = status_of(proc.stdout, "dashcam_cut.mp4")
    assert status.startswith("failed: truncated") and "of 221 frames" in status
    assert video_info(out / "dashcam_highway_seg.mp4") == (221, (960, 540), 25.0)
    assert sorted(p.name for p in out.iterdir()) == ["dashcam_highway_seg.mp4"]


PLAIN = ("--smooth", "0", "--edges", "nearest", "--palette", "dataset")  # each frame alone, blocky, dataset colours


def test_png_masks_and_stats_match_the_model(tmp_path):
    out = tmp_path / "out"
    first = batch(SHORT, "--out", out, "--ext", "mp4", "--mask-only", "--no-legend", *PLAIN)
    assert first.returncode == 0, first.stdout + first.stderr
    video = out / "dashcam_short_seg.mp4"
    mtime = video.stat().st_mtime_ns

    # A second run adds the missing masks and stats and leaves the finished video alone.
    second = batch(SHORT, "--out", out, "--ext", "mp4", "--mask-only", "--no-legend", "--png-masks", "--stats",
                   *PLAIN)
    assert second.returncode == 0, second.stdout + second.stderr
    assert video.stat().st_mtime_ns == mtime
    assert not leftovers(out)

    model = load_model(TINY, RunOptions("cpu"))
    frames = frames_of(SHORT)
    pngs = sorted((out / "dashcam_short_masks").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(40)]
    with open(out / "dashcam_short_stats.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", *model.classes, "flicker"]
    assert len(rows) == 41
    previous = None
    for i, (frame, png, row) in enumerate(zip(frames, pngs, rows[1:])):
        expected = model.predict([frame])[0]
        mask = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == frame.shape[:2]
        assert np.array_equal(mask, cv2.resize(expected, (480, 270), interpolation=cv2.INTER_NEAREST))
        fractions = np.array(row[1:-1], float)
        assert int(row[0]) == i and abs(fractions.sum() - 1) < 1e-4
        assert np.allclose(fractions, np.bincount(expected.ravel(), minlength=11) / expected.size, atol=1e-6)
        if previous is None:  # flicker: the fraction of pixels that changed class since the previous frame
            assert row[-1] == ""
        else:
            assert abs(float(row[-1]) - np.mean(previous != expected)) < 1e-6
        previous = expected

    # Beside the CSV, its picture: the shares stacked over the 40 frames, in the palette's colours.
    picture = cv2.imread(str(out / "dashcam_short_stats.png"))
    assert picture is not None and picture.shape == (450, 1000, 3)
    top = int(np.argmax(np.array([r[1:-1] for r in rows[1:]], float).mean(axis=0)))  # the largest share
    colour = model.palette_bgr[top].astype(int)  # --palette dataset: the model's own colours
    assert (np.abs(picture.astype(int) - colour).sum(axis=2) < 6).sum() > 5000

    # The mask-only video shows the palette colours of the prediction (lossy codec: on average).
    colours = model.palette_bgr[cv2.resize(model.predict([frames[0]])[0], (480, 270),
                                           interpolation=cv2.INTER_NEAREST)]
    assert np.abs(frames_of(video)[0].astype(int) - colours).mean() < 12

    third = batch(SHORT, "--out", out, "--ext", "mp4", "--png-masks", "--stats", "--overwrite")
    assert third.returncode == 0 and status_of(third.stdout, "dashcam_short.mp4") == "ok"
    assert video.stat().st_mtime_ns != mtime
    assert len(list((out / "dashcam_short_masks").iterdir())) == 40
    assert not leftovers(out)


def test_default_smoothing_lowers_the_flicker_in_stats(tmp_path):
    """Defaults: scores averaged over time (--smooth 0.7), smooth edges; stats report the flicker."""
    runs = {}
    for name, extra in (("smooth", ()), ("off", ("--smooth", "0"))):
        out = tmp_path / name
        proc = batch(SHORT, "--out", out, "--ext", "mp4", "--stats", "--png-masks", *extra,
                     model=FIXTURES / "tiny_camvid_probs.onnx")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with open(out / "dashcam_short_stats.csv") as f:
            rows = list(csv.reader(f))
        runs[name] = np.array([float(r[-1]) for r in rows[2:]])
        masks = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((out / "dashcam_short_masks").iterdir())]
        assert len(masks) == 40 and masks[0].shape == (270, 480)
    assert runs["smooth"].mean() < 0.6 * runs["off"].mean()
    model = load_model(FIXTURES / "tiny_camvid_probs.onnx", RunOptions("cpu"))
    first = frames_of(SHORT)[0]
    class_map, probs = model.infer_probs(model.prepare([first]))  # frame 0: nothing to average
    np.testing.assert_array_equal(masks[0], smooth_upsample(class_map[0], (480, 270), probs[0]))


def test_stats_with_compare_add_the_agreement_column_and_curve(tmp_path):
    """--compare: each frame's agreement in the CSV (its mean is the one printed) and below the shares."""
    proc = batch(SHORT, "--out", tmp_path, "--stats", "--precision", "fp32", "--compare", ":int8",
                 model=FIXTURES / "tiny_family" / "tiny.onnx")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tmp_path / "dashcam_short_stats.csv") as f:
        rows = list(csv.DictReader(f))
    agreement = np.array([float(r["agreement"]) for r in rows])
    assert len(agreement) == 40 and 0.5 < agreement.mean() <= 1 and np.ptp(agreement) > 0
    assert f"agreement {agreement.mean() * 100:.1f}%" in proc.stdout
    picture = cv2.imread(str(tmp_path / "dashcam_short_stats.png"))
    assert picture is not None and picture.shape == (650, 1000, 3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_promptly_and_keeps_only_finished_outputs(tmp_path, sig):
    out = tmp_path / "out"
    before = digest(FULL.parent)
    # The short clip finishes first; the full video is cut off (a slow lossless encoder keeps it
    # going long enough); CARLA never starts.
    proc = subprocess.Popen([sys.executable, "-m", "realtime_seg", "batch", str(SHORT), str(FULL), str(CARLA),
                             "--out", str(out), "--png-masks", "--stats", "--model", str(TINY),
                             "--ext", "avi", "--codec", "huffyuv"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = out / ".dashcam_highway_seg.partial.avi"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 20_000):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 128 + sig, stdout + stderr
    assert elapsed < 2.0, elapsed
    assert "Traceback" not in stderr
    assert status_of(stdout, "dashcam_short.mp4") == "ok"
    assert status_of(stdout, "dashcam_highway.mp4") == "interrupted"
    assert status_of(stdout, "carla_small.mp4") == "not started"
    assert sorted(p.name for p in out.iterdir()) == [
        "dashcam_short_masks", "dashcam_short_seg.avi", "dashcam_short_stats.csv", "dashcam_short_stats.png"]
    assert video_info(out / "dashcam_short_seg.avi")[0] == 40
    assert not leftovers(out)
    assert digest(FULL.parent) == before


def test_usage_errors_are_one_line_exit_2(tmp_path):
    proc = batch(tmp_path / "nothing_here" / "*.mp4", "--out", tmp_path / "out")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: no videos or images found"), proc.stderr
    bad = batch(SHORT, "--out", tmp_path / "out", "--opacity", "1.5")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --opacity must be between 0 and 1, got 1.5"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    (dict(workers=-1), "--workers must be 1 or more"),
    (dict(batch_size=-1), "--batch-size must be 0 or more"),
    (dict(ext="gif"), r"unsupported output type \.gif; use one of \.mp4"),
    (dict(codec="H26"), "unknown codec 'H26'; use one of h264, vp8, vp9, mp4v"),
    (dict(codec="vp8"), r"codec vp8 does not go in \.mp4 files; use \.webm or \.mkv"),
])
def test_bad_options(tmp_path, change, message):
    cfg = BatchConfig(out=tmp_path / "out", model=choose_model(str(TINY)), **change)
    with pytest.raises(UsageError, match=message):
        run_batch([str(SHORT)], cfg)


@pytest.mark.parametrize("change, message", [
    (dict(opacity=-0.1), "--opacity must be between 0 and 1"),
    (dict(smooth=1.0), r"--smooth must be at least 0 \(off\) and below 1, got 1"),
])
def test_bad_look(change, message):
    with pytest.raises(UsageError, match=message):
        Look(**change)


def test_outputs_never_replace_inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SHORT, folder / "clip.mp4")
    shutil.copy(SHORT, folder / "clip_seg.mp4")  # what clip.mp4's output would be called
    cfg = BatchConfig(out=folder, model=choose_model(str(TINY)), ext="mp4")
    with pytest.raises(UsageError, match="would overwrite the input"):
        run_batch([str(folder / "clip.mp4"), str(folder / "clip_seg.mp4")], cfg)
    (tmp_path / "other").mkdir()
    shutil.copy(SHORT, tmp_path / "other" / "clip.mp4")
    with pytest.raises(UsageError, match="would both write"):
        run_batch([str(folder / "clip.mp4"), str(tmp_path / "other" / "clip.mp4")],
                  BatchConfig(out=tmp_path / "out", model=choose_model(str(TINY))))
    assert not (tmp_path / "out").exists()


def test_expand_inputs_folders_globs_and_own_outputs(tmp_path):
    root = tmp_path / "videos"
    (root / "day").mkdir(parents=True)
    for name in ("b.mp4", "a.MOV", "notes.txt", ".hidden.mp4", "day/c.mkv"):
        (root / name).write_bytes(b"x")
    out = root / "seg"
    out.mkdir()
    (out / "a_seg.webm").write_bytes(b"x")       # an earlier run's output inside the input tree
    (out / ".b_seg.partial.webm").write_bytes(b"x")

    flat, missing = expand_inputs([str(root)], recursive=False, out=out)
    assert [p.name for p, _ in flat] == ["a.MOV", "b.mp4"] and missing == []
    deep, _ = expand_inputs([str(root)], recursive=True, out=out)
    assert [(p.name, str(rel)) for p, rel in deep] == [("a.MOV", "."), ("b.mp4", "."), ("c.mkv", "day")]
    globbed, missing = expand_inputs([str(root / "*.mp4"), str(root / "b.mp4"), str(root / "none*.avi")], out=out)
    assert [p.name for p, _ in globbed] == ["b.mp4"] and missing == [str(root / "none*.avi")]
    explicit, _ = expand_inputs([str(root / "notes.txt")], out=out)
    assert [p.name for p, _ in explicit] == ["notes.txt"]  # named explicitly: tried, reported if bad


def test_view_option_and_mask_only_alias(tmp_path):
    from realtime_seg.commands.batch.command import config_from_args, parser
    base = [str(SHORT), "--out", str(tmp_path), "--model", str(TINY)]
    assert config_from_args(parser().parse_args(base)).look.view == "blend"
    assert config_from_args(parser().parse_args([*base, "--mask-only"])).look.view == "mask"
    for view in ("mask", "outlines", "side", "original"):
        assert config_from_args(parser().parse_args([*base, "--view", view])).look.view == view
    assert "--view mask" in parser().format_help()


def test_original_view_writes_the_frames_themselves(tmp_path):
    out = tmp_path / "out"
    proc = batch(SHORT, "--out", out, "--view", "original", "--no-legend", *PLAIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = frames_of(out / "dashcam_short_seg.mp4")[0].astype(int)
    assert np.abs(first - frames_of(SHORT)[0]).mean() < 6  # the frame itself (lossy codec)
