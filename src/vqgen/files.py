"""Writing outputs safely: every file and directory is written under a temporary name beside its
destination, flushed to disk, and renamed into place only when complete, so an interrupted run
never leaves a half-written output under the final name."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def temporary(path: str | Path) -> Path:
    """The name a file is written under before it replaces `path`: hidden, beside it, with the same
    suffix (writers such as matplotlib choose the format from it); a leftover one is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    _remove(tmp)
    return tmp


def commit(tmp: str | Path, path: str | Path) -> None:
    """Flush the finished file `tmp` to disk and rename it over `path` in one step."""
    _sync(tmp)
    os.replace(tmp, path)
    _sync(Path(path).parent)


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[Path]:
    """Yield the temporary name to write `path` under; on success it replaces path, on any error it is
    removed and path is left as it was."""
    tmp = temporary(path)
    try:
        with _naming(tmp, path):
            yield tmp
            commit(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def building(dest: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield an empty directory `<dest><suffix>` to fill (a leftover one is deleted first); on success
    it takes dest's place, on any error it is removed and dest is left as it was.

    The swap renames: the old dest (a directory or a file) moves aside to `<dest>.old`, the new one
    moves in, then the old one is deleted. A kill at any moment leaves dest complete or absent, never
    half-deleted."""
    dest = Path(dest)
    tmp, old = dest.with_name(dest.name + suffix), dest.with_name(dest.name + ".old")
    _remove(tmp)
    try:
        with _naming(tmp, dest):
            tmp.mkdir(parents=True)
            yield tmp
            for root, _, names in os.walk(tmp):
                for name in names:
                    _sync(Path(root) / name)
                _sync(root)
    except BaseException:
        _remove(tmp)
        raise
    _remove(old)
    if dest.exists() or dest.is_symlink():
        os.replace(dest, old)
    os.replace(tmp, dest)
    _sync(dest.parent)
    _remove(old)


@contextlib.contextmanager
def _naming(tmp: Path, dest: str | Path) -> Iterator[None]:
    """Report a file system error on the temporary output under the name the user knows: a file
    that cannot be written under `tmp` is named as the same file under `dest`."""
    try:
        yield
    except OSError as e:
        for attr in ("filename", "filename2"):
            name = getattr(e, attr)
            if isinstance(name, (str, os.PathLike)) and Path(name).is_relative_to(tmp):
                setattr(e, attr, str(Path(dest) / Path(name).relative_to(tmp)))
        raise


def _sync(path: str | Path) -> None:
    """fsync a file or a directory (directories only where the system allows opening them)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Delete a file, link or directory tree if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
