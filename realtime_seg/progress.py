"""Progress bars: tqdm on a terminal, a few plain lines otherwise (CI logs stay short)."""
from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T] | None = None, total: int | None = None, desc: str = "",
             unit: str = "it", **kwargs) -> tqdm:
    """A tqdm bar with rate and ETA, on stderr; sparse updates when stderr is not a terminal."""
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(items, total=total, desc=desc, unit=unit, mininterval=interval,
                dynamic_ncols=True, file=sys.stderr, **kwargs)
