"""Plumbing shared by every command: file checks, atomic writes, progress bars, stderr, signals.

File checks are done before any work, with one-line errors. 
Inputs must be readable; an output must be creatable (its nearest existing ancestor is a
writable folder), must not be a folder when a file is meant, and must never be an input.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

from .errors import UsageError, UserError, first_line

# CPU flags of a fast int8 dot product (Linux /proc/cpuinfo names): x86 VNNI and AMX, Arm's SDOT/I8MM
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_info(text: str | None = None) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux; or of `text`), else empty."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Let glibc keep freed buffers for the next frame instead of handing them back to the kernel.

    A frame allocates ~10 MB of arrays (decoded frame, probabilities, their average, the drawn
    frame); by default glibc returns blocks that large to the kernel, and the next frame pays
    page faults and kernel time to get them back (counted: docs/BENCHMARKS.md, measurements behind
    the code). False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20))
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False


def usable_cores() -> int:
    """CPUs this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """This CPU's feature flags (x86 `flags`, Arm `Features`; or those of a cpuinfo text); empty where unknown."""
    info = cpu_info(cpuinfo)
    return set((info.get("flags") or info.get("Features") or "").split())


def cpu_int8_dot() -> bool:
    """True when the CPU has an int8 dot-product instruction (VNNI, AMX, SDOT), where int8 models gain most."""
    return bool(cpu_flags() & set(INT8_DOT_FLAGS))


def check_readable(path: Path, what: str) -> None:
    """`path` can be opened for reading; a clear error (missing, folder, permission) otherwise."""
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found; check the path") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder, not a file; pass a file") from None
    except PermissionError:
        raise UserError(f"cannot read {what} {path}: permission denied; check its permissions "
                        f"(e.g. chmod a+r)") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}; check the file") from None


def read_head(path: Path, size: int = 16) -> bytes:
    """The first bytes of a readable file (checked with `check_readable` first)."""
    with open(path, "rb") as f:
        return f.read(size)


def same_path(a: Path | str, b: Path | str) -> bool:
    """True when two paths name the same file (symlinks and hard links included)."""
    a, b = Path(a), Path(b)
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_creatable(folder: Path, option: str) -> None:
    """`folder` exists as a writable folder, or could be created (nothing is created here)."""
    base = nearest_existing(folder)
    if not base.is_dir():
        raise UserError(f"cannot write under {folder}: {base} is a file, not a folder; "
                        f"choose another {option}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"cannot write under {base}: permission denied; choose another {option}")


def check_output_file(path: Path, option: str, inputs: dict[str, Path | str] | None = None) -> None:
    """An output file that can be written and is none of the `inputs` (name -> path)."""
    for name, source in (inputs or {}).items():
        if same_path(path, source) or Path(path).resolve() == Path(source).resolve():
            raise UsageError(f"{option} {path} is the {name}; writing it would destroy the input: "
                             f"choose another {option} path")
    if Path(path).is_dir():
        raise UserError(f"cannot write {path}: it is a folder; pass a file path as {option}")
    check_creatable(Path(path).parent, option)


def partial_path(path: Path) -> Path:
    """Where `path` is written until complete: same folder, same extension (encoders go by it)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


_WRITE_HINTS = {
    errno.ENOSPC: "free some space on its disk or write it elsewhere",
    errno.EDQUOT: "free some space within your disk quota or write it elsewhere",
    errno.EFBIG: "it outgrew the largest file allowed here (ulimit -f, or the file system's limit); "
                 "write it elsewhere",
    errno.EIO: "the disk reported an I/O error; check the disk or write it elsewhere",
}


def write_error(path: Path, error: BaseException) -> UserError:
    """One line for a failed write: which file, why (strerror and errno name), what to do."""
    code = getattr(error, "errno", None)
    if code in errno.errorcode:
        reason = f"{getattr(error, 'strerror', None) or os.strerror(code)} ({errno.errorcode[code]})"
    else:
        reason = first_line(error, limit=None)
    hint = _WRITE_HINTS.get(code, "check the disk and its permissions, or write it elsewhere")
    return UserError(f"cannot write {path}: {reason}; {hint}")


def write_atomic(path: Path, write: Callable[[Path], object], hint: str = "choose a writable path",
                 what: str = "") -> Path:
    """`write(tmp)` beside `path`, then rename: on any failure neither `path` nor the temporary remains."""
    import cv2  # cv2.error: imwrite raises it for some bad paths and returns False for others
    tmp = partial_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if write(tmp) is False:
            raise OSError(f"could not encode {path.suffix or 'the file'}")
        os.replace(tmp, path)  # fails e.g. when `path` is a folder
    except (OSError, cv2.error) as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = getattr(e, "strerror", None) or first_line(e, limit=None)
        raise UserError(f"cannot write {what + ' ' if what else ''}{path}: {reason}; {hint}") from None
    return path


def write_json(path: Path, doc: dict, hint: str = "choose a writable path") -> Path:
    """`doc` as indented JSON, written atomically (`write_atomic`)."""
    import json
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n"), hint=hint)


T = TypeVar("T")


def progress(items: Iterable[T] | None = None, total: int | None = None, desc: str = "",
             unit: str = "it", **kwargs) -> tqdm:
    """A tqdm bar with rate and ETA, on stderr; sparse updates when stderr is not a terminal."""
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(items, total=total, desc=desc, unit=unit, mininterval=interval,
                dynamic_ncols=True, file=sys.stderr, **kwargs)


_STDERR_LOCK = threading.RLock()  # re-entrant: loading Keras inside a quiet block nests them


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null inside the block: C/C++ chatter (TensorFlow's start-up lines,
    OpenCV's WebM tag warning) that no log level silences. Python exceptions still propagate."""
    with _STDERR_LOCK:  # fd 2 is process-wide: threads must not interleave save and restore
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no real stderr (embedded interpreter): nothing to silence
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Call `handler(signum)` on SIGINT and SIGTERM inside the block; the previous handlers after.

    The one signal policy of every command: a signal inherited as ignored stays ignored (POSIX:
    a background job started by a script must not die of the terminal's Ctrl-C), and outside
    the main thread (where Python delivers no signals) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(sig, lambda signum, frame: handler(signum))
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (e.g. while a checkpoint is saved)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (models record the file they came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
