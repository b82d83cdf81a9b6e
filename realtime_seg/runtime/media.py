"""What a path on disk holds, for the sources: a video file (read by FFmpeg), one image, or a folder
or glob of images (frames); and annotated images written back.

Images are read by OpenCV as 8-bit BGR whatever they hold: 8- and 16-bit PNG (16-bit: the high
byte), JPEG with its EXIF rotation applied, BMP, TIFF and WebP; grayscale becomes three equal
channels and an alpha channel is dropped (the U-Net course's CARLA frames are RGBA). A folder's or
a glob's images are listed in natural order (frame2 before frame10); other files are ignored.
`ImageCapture` reads such a list with cv2.VideoCapture's interface, so that `sources.Source` plays
it like a video.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import UsageError, UserError
from ..system import check_readable, partial_path, quiet_stderr, read_head, usable_cores, write_error

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
JPEG_SUFFIXES = (".jpg", ".jpeg")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")
MIN_SIDE = 32            # pixels: a smaller image has too little to segment (and breaks 2x2 area steps)
DEFAULT_FPS = 10.0       # the rate frames play at unless --fps says: CARLA's usual capture rate
JPEG_QUALITY = 95        # annotated JPEGs (the input was a JPEG): near the input's own quality
_GLOB_CHARS = set("*?[")


class BadImage(UserError):
    """An image that cannot be segmented; `reason` says why without the path (a folder's report names it)."""

    def __init__(self, path: Path, reason: str, hint: str):
        super().__init__(f"cannot read image {path}: {reason}; {hint}")
        self.path, self.reason = path, reason


def is_image_name(path: Path) -> bool:
    """True for a file name that ends like an image this project reads (.png, .jpg, ...; any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def looks_like_image(path: Path) -> bool:
    """The file starts like an image (PNG, JPEG, GIF, TIFF, BMP, WebP), whatever its name."""
    head = read_head(path)
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def read_image(path: Path) -> np.ndarray:
    """An image file as 8-bit BGR (H, W, 3), EXIF rotation applied; `BadImage` (one line) when it
    cannot be read, is not an image, or is smaller than MIN_SIDE on a side."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        reason = "not found" if isinstance(e, FileNotFoundError) else (e.strerror or str(e)).lower()
        raise BadImage(path, reason, "check the path and its permissions") from None
    if path.suffix.lower() in JPEG_SUFFIXES and bytes(data[-2:]) != b"\xff\xd9":
        with quiet_stderr():  # libjpeg prints "Premature end of JPEG file" for a cut-off one
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    else:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        reason = "empty (0 bytes)" if not data.size else "corrupt, cut off or not an image"
        raise BadImage(path, reason, "re-copy or re-export it")
    if min(image.shape[:2]) < MIN_SIDE:
        raise BadImage(path, f"{image.shape[1]}x{image.shape[0]} pixels, under the {MIN_SIDE} a side a model "
                       f"needs", "pass a larger image")
    return image


def natural_key(path: Path) -> list:
    """Sort key in natural order: frame2 before frame10 (digits compare as numbers, letters without case)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.as_posix())]


def is_glob(spec: str) -> bool:
    """A pattern (`*`, `?`, `[`) rather than a path that exists."""
    return bool(_GLOB_CHARS & set(spec)) and not os.path.exists(spec)


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The images of a folder (and its subfolders when `recursive`) in natural order; hidden ones skipped."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    found = [p for p in files if is_image_name(p) and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder)))


def glob_images(pattern: str, recursive: bool = True) -> list[Path]:
    """The images a glob matches, in natural order (`**` spans folders when `recursive`)."""
    hits = (Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=recursive))
    return sorted((p for p in hits if is_image_name(p) and p.is_file()), key=natural_key)


def frame_files(spec: str) -> list[Path] | None:
    """The images `spec` names, when it names images: a folder of frames, a glob, or one image file;
    None for anything else (a video, a URL). A folder or glob without images is a usage error."""
    path = Path(spec).expanduser()
    if path.is_dir():
        images = images_in(path)
        if not images:
            raise UsageError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a folder of "
                             f"frames, a glob like '{path / '*.png'}' or a video file (batch takes folders of videos)")
        return images
    if is_glob(spec):
        images = glob_images(spec)
        if not images:
            raise UsageError(f"no images match {spec}; check the pattern (quote it), e.g. 'CameraRGB/*.png'")
        return images
    return [path] if is_image_name(path) else None


def frames_name(spec: str) -> str:
    """How outputs of images played as a video are named: the folder's name (a glob's folder), or the image's stem."""
    path = Path(spec).expanduser()
    if is_glob(spec):
        path = next((p for p in path.parents if not _GLOB_CHARS & set(p.name)), Path("."))
        return path.resolve().name or "frames"
    return path.stem if is_image_name(path) and not path.is_dir() else path.resolve().name or "frames"


class ImageCapture:
    """cv2.VideoCapture's interface over image files, for `sources.FrameSource`: read() decodes the
    next readable image; one that cannot be read is skipped and kept in `skipped` (path: reason).

    `names` lists the files read in this pass, in order (the i-th frame read is `names[i]`);
    `sizes` the sizes seen (W, H): frames of one folder may differ.
    """

    def __init__(self, paths: list[Path], fps: float):
        self.paths, self.fps = list(paths), fps
        self.skipped: dict[Path, str] = {}
        self.names: list[Path] = []
        self.sizes: list[tuple[int, int]] = []
        self._next = 0

    def isOpened(self) -> bool:  # noqa: N802 (cv2's name)
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        """(True, the next readable image) or (False, None) after the last."""
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            try:
                frame = read_image(path)
            except BadImage as e:
                self.skipped.setdefault(path, e.reason)
                continue
            self.names.append(path)
            if (frame.shape[1], frame.shape[0]) not in self.sizes:
                self.sizes.append((frame.shape[1], frame.shape[0]))
            return True, frame
        return False, None

    def grab(self) -> bool:
        """Pass over the next image without decoding it (a source keeping pace skips frames so)."""
        if self._next >= len(self.paths):
            return False
        self._next += 1
        return True

    def get(self, prop: int) -> float:
        size = self.sizes[0] if self.sizes else (0, 0)
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_COUNT: float(len(self.paths)),
                cv2.CAP_PROP_FRAME_WIDTH: float(size[0]), cv2.CAP_PROP_FRAME_HEIGHT: float(size[1]),
                cv2.CAP_PROP_POS_FRAMES: float(self._next)}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        """Seek (only to a frame index): the pass starts again there."""
        if prop != cv2.CAP_PROP_POS_FRAMES:
            return False
        self._next, self.names = int(value), []
        return True

    def release(self) -> None:
        pass

    def unreadable(self, name: str) -> UserError:
        """The error when not one image could be read: the image's own for one, else the first's reason."""
        if len(self.paths) == 1:
            return BadImage(self.paths[0], self.skipped[self.paths[0]], "re-copy or re-export it")
        path, reason = next(iter(self.skipped.items()))
        return UserError(f"none of the {len(self.paths)} images of {name} could be read (the first, {path}: "
                         f"{reason}); check the files")


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    """A BGR image as the file format of `suffix` (PNG lossless; JPEG at JPEG_QUALITY)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix.lower() in JPEG_SUFFIXES else []
    ok, data = cv2.imencode(suffix.lower(), image, params)
    if not ok:
        raise OSError(f"cannot encode a {image.shape[1]}x{image.shape[0]} image as {suffix}")
    return data.tobytes()


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write an image under a temporary name and rename it when complete; a one-line UserError on failure."""
    tmp = partial_path(path)
    try:
        data = encode_image(image, path.suffix)
        with open(tmp, "wb") as f:  # Python's write: a failure says why (errno)
            f.write(data)
        os.replace(tmp, path)
    except (OSError, cv2.error) as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
    return path


class ImageOutput:
    """The viewer's `--output x.png` for one image: the annotated frame, written when closed (the
    interface of `video.VideoOutput` that the viewer uses)."""

    def __init__(self, path: Path):
        self.path, self.frames, self.encode_ms = Path(path), 0, 0.0
        self.size: tuple[int, int] | None = None
        self._image: np.ndarray | None = None

    def write(self, image: np.ndarray) -> None:
        self._image, self.frames = image, self.frames + 1
        self.size = (image.shape[1], image.shape[0])

    def close(self, ok: bool = True) -> Path | None:
        """Write the last image given (when `ok`); its path, or None."""
        if not ok or self._image is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return write_image(self.path, self._image)


def file_capture(path: Path | str) -> cv2.VideoCapture:
    """FFmpeg's capture of a video file, on one decoding thread when there are two cores or fewer.

    FFmpeg's frame threads cost CPU time to coordinate (960x540 H.264: 3.3 CPU ms a frame
    against 2.4 on one thread); on 2 cores the model needs every CPU ms, and one thread decodes
    400 frames a second.
    """
    params = [cv2.CAP_PROP_N_THREADS, 1] if usable_cores() <= 2 else []
    return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)


def open_video_file(path: Path) -> tuple[cv2.VideoCapture, np.ndarray]:
    """An opened capture and its first frame; a clear error for anything that is not a video."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a video; pass a video file")
    check_readable(path, "video")
    if path.stat().st_size == 0:
        raise UserError(f"video {path} is empty (0 bytes); pass a real video file")
    if is_image_name(path):
        raise UserError(f"{path} is an image, not a video; pass a video file")
    cap = file_capture(path)
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if ok and looks_like_image(path):  # FFmpeg plays an image as a 1-frame video; a raw MJPEG has more
        ok = cap.grab()
        cap.release()
        if not ok:
            raise UserError(f"{path} is an image with a video's name; rename it to .png or .jpg to segment it")
        cap = file_capture(path)
        ok, first = cap.read()
    if not ok:  # a header alone, or bytes FFmpeg cannot decode
        cap.release()
        raise UserError(f"cannot decode {path}: corrupt or not a video; pass an mp4, avi, mkv "
                        f"or webm file")
    return cap, first
