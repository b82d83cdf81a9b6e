"""`batch` on images: folders of frames and globs beside videos, one annotated image (and class-id PNG)
per image, a stats row per image, resumed re-runs, bad images skipped by name, --as-video, --recursive.

Inputs are real frames: 5 KITTI frames (tests/fixtures/kitti, 414x125) and 4 CARLA frames
(tests/fixtures/carla13/CameraRGB, 200x150), and variants made from them here.
"""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FIXTURES, ROOT, assert_one_line_error
from realtime_seg.commands.batch import BatchConfig, expand_inputs, run_batch
from realtime_seg.commands.batch.plan import Frames
from realtime_seg.runtime.engine import RunOptions, load_model
from realtime_seg.runtime.look import Look
from realtime_seg.runtime.models import choose_model

TINY = FIXTURES / "tiny_camvid.onnx"
KITTI = FIXTURES / "kitti"
CARLA = FIXTURES / "carla13" / "CameraRGB"
PLAIN = ("--smooth", "0", "--edges", "nearest", "--palette", "dataset")  # class ids exactly the model's, resized
PLAIN_LOOK = Look(smooth=0.0, edges="nearest", palette="dataset", hud=False)


def batch(*args, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime_seg", "batch", *map(str, args), "--model", str(TINY)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.startswith(".") or "partial" in p.name]


def expected_ids(model, image: np.ndarray) -> np.ndarray:
    """The model's class ids at the image's size (nearest): what --png-masks holds with --edges nearest."""
    return cv2.resize(model.predict([image])[0], image.shape[1::-1], interpolation=cv2.INTER_NEAREST)


@pytest.fixture
def kitti_copy(tmp_path) -> Path:
    folder = tmp_path / "image_2"
    shutil.copytree(KITTI, folder)
    (folder / "readme.txt").write_text("not an image: ignored\n")
    return folder


def test_a_frame_folder_gives_an_image_and_a_mask_each_and_a_rerun_writes_nothing(kitti_copy, tmp_path):
    out = tmp_path / "D"
    before = mtimes(kitti_copy)
    proc = batch(kitti_copy, "--out", out, "--png-masks", "--stats", *PLAIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(p.stem for p in KITTI.glob("*.png"))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}_seg.png" for n in names] + [f"{n}_mask.png" for n in names] + ["image_2_stats.csv", "image_2_stats.png"])
    model = load_model(TINY, RunOptions("cpu"))
    with open(out / "image_2_stats.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", *model.classes, "flicker"] and [r[0] for r in rows[1:]] == [f"{n}.png" for n in names]
    for name, row in zip(names, rows[1:]):
        image = cv2.imread(str(KITTI / f"{name}.png"))
        mask = cv2.imread(str(out / f"{name}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        np.testing.assert_array_equal(mask, expected_ids(model, image))
        picture = cv2.imread(str(out / f"{name}_seg.png"))
        assert picture.shape == image.shape and np.abs(picture.astype(int) - image).mean() > 10  # painted
        ids = model.predict([image])[0]
        assert np.allclose(np.array(row[1:-1], float), np.bincount(ids.ravel(), minlength=11) / ids.size, atol=1e-6)
    table = next(line for line in proc.stdout.splitlines() if str(kitti_copy) in line).split()
    assert table[1:3] == ["5", "-"] and table[-1] == "ok"  # 5 images, no frame rate
    assert not leftovers(out) and mtimes(kitti_copy) == before

    written = mtimes(out)
    again = batch(kitti_copy, "--out", out, "--png-masks", "--stats", *PLAIN)
    assert again.returncode == 0 and "skipped (exists)" in again.stdout, again.stdout + again.stderr
    assert mtimes(out) == written  # nothing new

    (out / f"{names[2]}_mask.png").unlink()  # one output lost: only it is written again
    third = batch(kitti_copy, "--out", out, "--png-masks", "--stats", *PLAIN)
    assert third.returncode == 0, third.stdout + third.stderr
    changed = {n for n, t in mtimes(out).items() if written.get(n) != t}
    assert changed == {f"{names[2]}_mask.png", f"{names[2]}_seg.png", "image_2_stats.csv", "image_2_stats.png"}


def test_a_corrupt_image_is_named_and_skipped_and_the_rest_is_done(kitti_copy, tmp_path):
    bad = kitti_copy / "000050_10.png"
    bad.write_bytes(bad.read_bytes()[:3000])  # cut off, like an interrupted copy
    out = tmp_path / "D"
    proc = batch(kitti_copy, "--out", out)
    line = assert_one_line_error(proc, 1)
    assert line == f"error: skipped {bad}: corrupt, cut off or not an image; the other images were segmented"
    assert "failed: 1 of 5 images could not be read (skipped)" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [f"{n}_seg.png" for n in
                                                      ("000000_10", "000025_10", "000075_10", "000099_10")]
    assert not leftovers(out)


@pytest.mark.parametrize("spec", ["{tmp}/empty", "{tmp}/notes", "{tmp}/notes/*.png"])
def test_a_folder_or_glob_without_images_is_one_line_exit_2(tmp_path, spec):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here\n")
    proc = batch(spec.format(tmp=tmp_path), "--out", tmp_path / "D")
    assert "no videos or images found" in assert_one_line_error(proc, 2)
    assert not (tmp_path / "D").exists()


def test_rgba_and_16_bit_frames_give_the_masks_of_their_8_bit_versions(tmp_path):
    """The U-Net course's CARLA layout stores RGBA frames (alpha dropped); 16-bit PNGs are read by their
    high byte. Real CARLA and KITTI frames in each form, through batch: the same class ids."""
    folder = tmp_path / "forms"
    folder.mkdir()
    alpha = np.random.default_rng(1)
    for stem, src in (("carla", CARLA / "train_2.png"), ("kitti", KITTI / "000075_10.png")):
        image = cv2.imread(str(src))
        cv2.imwrite(str(folder / f"{stem}_rgb.png"), image)
        cv2.imwrite(str(folder / f"{stem}_rgba.png"),
                    np.dstack([image, alpha.integers(0, 256, image.shape[:2], dtype=np.uint8)]))
        cv2.imwrite(str(folder / f"{stem}_16bit.png"), image.astype(np.uint16) * 257)
        cv2.imwrite(str(folder / f"{stem}_16bit_tiff.tiff"), image.astype(np.uint16) * 257)
    results = run_batch([str(folder)], BatchConfig(out=tmp_path / "D", model=choose_model(str(TINY)), png_masks=True,
                                                   look=PLAIN_LOOK))
    assert [r.status for r in results] == ["ok"] and results[0].frames == 8
    model = load_model(TINY, RunOptions("cpu"))
    for stem, src in (("carla", CARLA / "train_2.png"), ("kitti", KITTI / "000075_10.png")):
        expected = expected_ids(model, cv2.imread(str(src)))
        for form in ("rgb", "rgba", "16bit", "16bit_tiff"):
            np.testing.assert_array_equal(
                cv2.imread(str(tmp_path / "D" / f"{stem}_{form}_mask.png"), cv2.IMREAD_UNCHANGED), expected, form)


def test_jpeg_inputs_keep_jpeg_and_as_video_writes_one_video(tmp_path):
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), cv2.imread(str(KITTI / "000099_10.png")), [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = tmp_path / "D"
    results = run_batch([str(photo)], BatchConfig(out=out, model=choose_model(str(TINY))))
    assert [r.status for r in results] == ["ok"]
    written = out / "photo_seg.jpg"
    assert written.read_bytes()[:3] == b"\xff\xd8\xff" and cv2.imread(str(written)).shape == (125, 414, 3)

    results = run_batch([str(CARLA / "*.png")], BatchConfig(out=out, model=choose_model(str(TINY)), as_video=True, fps=5,
                                                            png_masks=True, stats=True))
    assert [r.status for r in results] == ["ok"] and results[0].frames == 4
    cap = cv2.VideoCapture(str(out / "CameraRGB_seg.mp4"))
    count = 0
    while cap.grab():
        count += 1
    assert (count, cap.get(cv2.CAP_PROP_FPS)) == (4, 5.0)
    assert sorted(p.name for p in (out / "CameraRGB_masks").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    again = run_batch([str(CARLA / "*.png")], BatchConfig(out=out, model=choose_model(str(TINY)), as_video=True, fps=5,
                                                          png_masks=True, stats=True))
    assert [r.status for r in again] == ["skipped (exists)"]


def test_recursive_mirrors_subfolders(tmp_path):
    root = tmp_path / "drives"
    for sub, src in (("day", KITTI / "000000_10.png"), ("night", CARLA / "val_1.png"), (".", KITTI / "000025_10.png")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / sub / f"{sub.strip('.') or 'top'}_frame.png")
    out = tmp_path / "D"
    results = run_batch([str(root)], BatchConfig(out=out, model=choose_model(str(TINY)), stats=True, recursive=True))
    assert sorted(r.status for r in results) == ["ok"] * 3
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*.*"))
    assert found == ["day/day_frame_seg.png", "day/day_stats.csv", "day/day_stats.png", "drives_stats.csv",
                     "drives_stats.png", "night/night_frame_seg.png", "night/night_stats.csv", "night/night_stats.png",
                     "top_frame_seg.png"]
    assert cv2.imread(str(out / "night" / "night_frame_seg.png")).shape == (150, 200, 3)


def test_expand_inputs_groups_images_beside_videos_and_leaves_our_outputs_out(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("clip.mp4", "frame10.png", "frame2.png", "frame1.PNG", "notes.txt", "old_seg.png", "old_mask.png"):
        (root / name).write_bytes(b"x")
    found, missing = expand_inputs([str(root), str(root / "frame2.png")], out=root)
    videos = [p for p, _ in found if not isinstance(p, Frames)]
    groups = [p for p, _ in found if isinstance(p, Frames)]
    assert [p.name for p in videos] == ["clip.mp4"] and missing == []
    assert [[i.name for i in g.images] for g in groups] == [["frame1.PNG", "frame2.png", "frame10.png"], ["frame2.png"]]
    assert groups[0].name == "in" and groups[1].name == "frame2"
