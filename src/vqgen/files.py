"""Writing outputs safely: a directory is built under a temporary name and replaces its
destination only when complete, so an interrupted run never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def building(dest: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield an empty `<dest><suffix>` to fill (a leftover one is deleted first); on success it
    replaces dest, on any error it is removed and dest is left as it was."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + suffix)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
