"""Images and frame folders as sources: formats users bring, natural order, bad files, sizes, the Python API."""
from __future__ import annotations


import cv2
import numpy as np
import pytest

from conftest import FIXTURES, run_python
from realtime_seg.errors import UsageError, UserError
from realtime_seg.runtime.edges import smooth_upsample
from realtime_seg.runtime.engine import RunOptions, load_model
from realtime_seg.runtime.media import BadImage, frame_files, natural_key, read_image
from realtime_seg.runtime.segment import segment_image
from realtime_seg.runtime.sources import FrameSource, open_video

KITTI = FIXTURES / "kitti"                       # 5 real KITTI frames, 414x125
CARLA = FIXTURES / "carla13" / "CameraRGB"       # 4 real CARLA frames, 200x150
TINY = FIXTURES / "tiny_camvid.onnx"


def _all(source) -> list[np.ndarray]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A real KITTI frame, BGR 8-bit."""
    return cv2.imread(str(KITTI / "000050_10.png"), cv2.IMREAD_COLOR)


def test_formats_users_bring_read_as_the_same_8_bit_bgr(tmp_path, frame):
    """16-bit PNG (the 8-bit values times 257), RGBA with any alpha, BMP, TIFF, lossless WebP: the same pixels;
    grayscale: three equal channels; JPEG: close."""
    rgba = np.dstack([frame, np.random.default_rng(0).integers(0, 256, frame.shape[:2], dtype=np.uint8)])
    exact = {"png16.png": frame.astype(np.uint16) * 257, "rgba.png": rgba, "plain.bmp": frame,
             "plain.tiff": frame, "tiff16.tif": frame.astype(np.uint16) * 257, "RGBA.PNG": rgba}
    for name, pixels in exact.items():
        assert cv2.imwrite(str(tmp_path / name), pixels)
        np.testing.assert_array_equal(read_image(tmp_path / name), frame, err_msg=name)
    assert cv2.imwrite(str(tmp_path / "lossless.webp"), frame, [cv2.IMWRITE_WEBP_QUALITY, 101])
    np.testing.assert_array_equal(read_image(tmp_path / "lossless.webp"), frame)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert cv2.imwrite(str(tmp_path / "gray.png"), gray)
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.dstack([gray] * 3))
    assert cv2.imwrite(str(tmp_path / "photo.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    photo = read_image(tmp_path / "photo.jpg")
    np.testing.assert_array_equal(photo, cv2.imread(str(tmp_path / "photo.jpg")))
    assert np.abs(photo.astype(int) - frame).mean() < 6


def test_exif_rotation_is_applied_to_photos(tmp_path, frame):
    pil = pytest.importorskip("PIL.Image")  # Pillow writes the EXIF tag (matplotlib installs it)
    photo = pil.fromarray(frame[..., ::-1])
    exif = photo.getexif()
    exif[0x0112] = 6  # orientation: the camera was turned; the picture must be rotated 90 degrees clockwise
    photo.save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95)
    raw = cv2.imread(str(tmp_path / "turned.jpg"), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert raw.shape[:2] == frame.shape[:2]
    upright = read_image(tmp_path / "turned.jpg")
    assert upright.shape[:2] == frame.shape[1::-1]
    np.testing.assert_array_equal(upright, cv2.rotate(raw, cv2.ROTATE_90_CLOCKWISE))


@pytest.mark.parametrize("make, reason", [
    (lambda p, png: p.write_bytes(png[: len(png) // 3]), "corrupt, cut off or not an image"),
    (lambda p, png: p.write_bytes(b""), "empty (0 bytes)"),
    (lambda p, png: p.write_text("a text file named like an image\n"), "corrupt, cut off or not an image"),
    (lambda p, png: cv2.imwrite(str(p), np.zeros((20, 64, 3), np.uint8)), "64x20 pixels, under the 32 a side"),
], ids=["truncated", "empty", "text", "too small"])
def test_bad_images_are_one_line_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.png"
    make(path, (KITTI / "000000_10.png").read_bytes())
    with pytest.raises(BadImage) as caught:
        read_image(path)
    assert str(caught.value).startswith(f"cannot read image {path}: {reason}") and "\n" not in str(caught.value)


def test_a_cut_off_jpeg_says_nothing_on_stderr(tmp_path, frame, capfd):
    """libjpeg prints 'Premature end of JPEG file' for a JPEG cut short: kept off the one-line errors."""
    data = cv2.imencode(".jpg", frame)[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    try:
        read_image(tmp_path / "cut.jpg")  # a decoder may give the top half: then it is an image
    except BadImage as e:
        assert e.reason == "corrupt, cut off or not an image"
    assert capfd.readouterr().err == ""


def test_natural_order_and_what_a_spec_names(tmp_path):
    folder = tmp_path / "CameraRGB"
    folder.mkdir()
    for name in ("frame10.png", "frame2.png", "Frame3.jpg", "frame1.png", "notes.txt", "clip.mp4", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "frame0.png").write_bytes(b"x")
    assert [p.name for p in frame_files(str(folder))] == ["frame1.png", "frame2.png", "Frame3.jpg", "frame10.png"]
    assert [p.name for p in frame_files(str(folder / "frame*.png"))] == ["frame1.png", "frame2.png", "frame10.png"]
    assert frame_files(str(folder / "frame2.png")) == [folder / "frame2.png"]
    assert frame_files(str(folder / "clip.mp4")) is None and frame_files("rtsp://host/x") is None
    assert sorted(["b10", "b9", "a100"], key=lambda n: natural_key(tmp_path / n)) == ["a100", "b9", "b10"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="folder .*empty holds no images"):
        frame_files(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="no images match"):
        frame_files(str(folder / "*.webp"))


def test_a_folder_plays_like_a_video_at_its_fps(tmp_path):
    """Real KITTI and CARLA frames of two sizes in one folder, one corrupt: every readable frame at its
    own size, in natural order; the bad one skipped and named; replay starts at the first."""
    folder = tmp_path / "frames"
    folder.mkdir()
    names = ["f1.png", "f2.png", "f3.png", "f10.png"]
    sources = [KITTI / "000000_10.png", CARLA / "train_0.png", KITTI / "000025_10.png", CARLA / "train_1.png"]
    for name, src in zip(names, sources):
        (folder / name).write_bytes(src.read_bytes())
    (folder / "f4.png").write_bytes((KITTI / "000050_10.png").read_bytes()[:5000])  # cut off
    (folder / "readme.txt").write_text("ignored\n")
    with open_video(str(folder)) as source:
        assert isinstance(source, FrameSource) and not source.still
        assert source.fps == 10.0 and source.frame_count == 5 and source.size == (414, 125)
        frames = _all(source)
        assert [f.shape[:2] for f in frames] == [(125, 414), (150, 200), (125, 414), (150, 200)]
        for got, src in zip(frames, sources):
            np.testing.assert_array_equal(got, cv2.imread(str(src)))
        assert source.names == [folder / n for n in ("f1.png", "f2.png", "f3.png", "f10.png")]
        assert list(source.skipped) == [folder / "f4.png"] and source.broken is None
        assert source.sizes == [(414, 125), (200, 150)]
        assert source.restart() and np.array_equal(source.read(), frames[0])
    with open_video(str(folder / "f*.png"), fps=25, loop=True) as looping:
        looping.limit = 6
        assert looping.fps == 25 and len(_all(looping)) == 6 and looping.loops == 1


def test_one_image_is_a_still_and_fps_is_for_images(tmp_path):
    with open_video(str(KITTI / "000000_10.png")) as source:
        assert source.still and len(_all(source)) == 1
    with pytest.raises(UsageError, match="--fps sets the rate of images"):
        open_video(str(FIXTURES / "videos" / "carla_small.mp4"), fps=5)
    (tmp_path / "a.png").write_text("not an image")
    (tmp_path / "b.png").write_text("nor this")
    with pytest.raises(UserError, match=r"none of the 2 images of .* could be read \(the first, .*a.png: corrupt"):
        open_video(str(tmp_path))


def test_segment_image_from_a_path_or_an_rgb_array(frame):
    model = load_model(TINY, RunOptions("cpu"))
    path = KITTI / "000050_10.png"
    result = segment_image(path, model)
    assert result.class_map.shape == frame.shape[:2] and result.class_map.dtype == np.uint8
    assert result.annotated.shape == frame.shape and result.classes == model.classes
    np.testing.assert_array_equal(result.class_map, smooth_upsample(model.predict([frame])[0], frame.shape[1::-1]))
    same = segment_image(frame[..., ::-1], model)  # RGB, as PIL and matplotlib hold images
    np.testing.assert_array_equal(same.class_map, result.class_map)
    np.testing.assert_array_equal(same.annotated, result.annotated)
    blended = result.annotated[60:, 200:].astype(int)  # below and right of the legend: frame and colours mixed
    assert np.abs(blended - frame[60:, 200:, ::-1]).mean() > 10  # RGB, and not the frame itself
    with pytest.raises(UserError, match="takes an RGB image array"):
        segment_image(frame.astype(np.float32), model)


def test_the_api_loads_no_keras():
    code = ("import sys, realtime_seg\n"
            f"r = realtime_seg.segment_image({str(KITTI / '000000_10.png')!r}, {str(TINY)!r})\n"
            "assert r.class_map.shape == (125, 414)\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'matplotlib')]\n"
            "assert not heavy, heavy[:5]\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
