"""Getting the real CelebA files into a directory: from files the user already has, or from Google Drive.

The official host often fails (quota pages saved in place of the zip, 403s), so every file is
checked: a missing file or an HTML page where a file should be raises a FetchError saying how to
get the file by hand. A file whose md5 differs from the official one (a mirror's re-zipped
images, a subset cut to fewer images) only warns with a FetchWarning: the annotation files are
then parsed strictly, and every listed image must be there or is counted as missing. From a
directory the bounding-box, landmark and identity files are optional (only identities are read),
and the Kaggle copy (CSV annotations, images under img_align_celeba/img_align_celeba/) is
accepted and rewritten in the official layout.

`fetch` builds the target directory in `<root>.tmp` and renames it into place only once every
file is there and `celeba.read_layout` accepts it, so a half-built directory is never left
behind under the final name; a leftover `<root>.tmp` is deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from vqgen.data import FetchError, celeba
from vqgen.files import building, commit

IMAGE_ZIP = "img_align_celeba.zip"
OPTIONAL = (celeba.BBOX_FILE, celeba.LANDMARKS_FILE, celeba.IDENTITY_FILE)  # may be absent from a directory
KAGGLE_ATTR, KAGGLE_PARTITION = "list_attr_celeba.csv", "list_eval_partition.csv"
MAX_UNPACKED = 8 << 30  # bytes an archive may unpack to (the aligned images are 1.4 GB)
MAX_RATIO = 200  # uncompressed / compressed size of one member (JPEGs hardly compress; bombs do, hugely)
CACHE_DIR = Path("scratch") / "celeba"  # relative to the working directory: the project root under DVC


def official_files() -> list[tuple[str, str, str]]:
    """The (Google Drive id, md5, name) of CelebA's six files: torchvision's table, read when first
    asked for (importing torchvision takes seconds, which every `vqgen` command would pay)."""
    from torchvision.datasets import CelebA

    return [tuple(entry) for entry in CelebA.file_list]


def __getattr__(name: str):
    if name == "FILES":  # the module's constant, made on first use
        return official_files()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SITE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


class FetchWarning(UserWarning):
    """A CelebA file that differs from the official one but is still usable."""


def _manual(directory: Path) -> str:
    return (
        f"download it from the CelebA site ({SITE}) or a mirror, put it in {directory} "
        f"and set data.celeba_dir: {directory}"
    )


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def looks_like_html(path: str | Path) -> bool:
    """Whether the file starts like a web page (what Google Drive sends when its quota is exceeded)."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def check_file(path: str | Path, md5: str) -> None:
    """Raise a FetchError if path is missing or an HTML page; warn (FetchWarning) if its md5 is not the
    official one: mirrors re-zip the images, and subsets cut the annotation files, which are then
    parsed strictly."""
    path = Path(path)
    manual = _manual(path.parent)
    if not path.is_file():
        raise FetchError(f"{path} is missing; {manual}.")
    if looks_like_html(path):
        raise FetchError(f"{path} is an HTML page (Google Drive's quota or error page), not {path.name}; {manual}.")
    found = md5sum(path)
    if found == md5:
        return
    why = "mirrors re-zip the images" if path.name == IMAGE_ZIP else "a subset or another copy; it is parsed strictly"
    warnings.warn(f"{path} has md5 {found}, not the official {md5} ({why}); using it.", FetchWarning, stacklevel=2)


def _unsafe(name: str) -> bool:
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    return posix.is_absolute() or bool(windows.drive or windows.root) or ".." in windows.parts


def safe_extract(
    zip_path: str | Path,
    dest: str | Path,
    progress: Callable[[int], None] | None = None,
    max_bytes: int = MAX_UNPACKED,
    max_ratio: float = MAX_RATIO,
) -> None:
    """Extract a zip archive into dest, which appears only once complete.

    Members with absolute paths or `..` components, archives that would unpack to more than
    `max_bytes`, and members compressed more than `max_ratio` times (zip bombs) are refused before
    anything is written; the archive is unpacked into `<dest>.partial` (a leftover one is deleted
    first) and renamed to dest. progress, if given, is called with 1 for every file extracted.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    manual = _manual(zip_path.parent)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            for member in members:
                if _unsafe(member.filename):
                    raise FetchError(
                        f"{zip_path} holds the unsafe member {member.filename!r} (an absolute path "
                        f"or '..'), so it is not extracted; {manual}."
                    )
                if member.file_size > max_ratio * max(member.compress_size, 1) and member.file_size > 1 << 20:
                    raise FetchError(
                        f"{zip_path} holds {member.filename!r}, compressed {member.file_size} to "
                        f"{member.compress_size} bytes, more than {max_ratio:g} times (a zip bomb?), "
                        f"so it is not extracted; {manual}."
                    )
            total = sum(member.file_size for member in members)
            if total > max_bytes:
                raise FetchError(
                    f"{zip_path} would unpack to {total} bytes, more than the {max_bytes} allowed, "
                    f"so it is not extracted; {manual}."
                )
            with building(dest, ".partial") as partial:
                for member in members:
                    archive.extract(member, partial)
                    if progress is not None and not member.is_dir():
                        progress(1)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise FetchError(f"{zip_path} is not a readable zip archive ({err}); {manual}.") from err


def _image_folder(unpacked: Path) -> Path | None:
    """The folder of .jpg images in an unpacked archive: its img_align_celeba/ (perhaps nested once) or its top."""
    for candidate in (unpacked / celeba.IMAGE_DIR / celeba.IMAGE_DIR, unpacked / celeba.IMAGE_DIR, unpacked):
        if candidate.is_dir() and any(candidate.glob("*.jpg")):
            return candidate
    return None


def _link_images(source: Path, dest: Path, progress: Callable[[int], None] | None) -> None:
    """Hard-link every .jpg of source into dest, copying where a link is impossible (another file system)."""
    dest.mkdir()
    for image in source.iterdir():
        if image.suffix.lower() != ".jpg" or not image.is_file():
            continue
        try:
            os.link(image, dest / image.name)
        except OSError:
            shutil.copyfile(image, dest / image.name)
        if progress is not None:
            progress(1)


def _reason(err: Exception) -> str:
    """The first sentence of an error's multi-line message (gdown's run to a paragraph), on one line."""
    text = " ".join(str(err).split())
    return text.split(". ")[0].rstrip(".") or type(err).__name__


def _download(file_id: str, md5: str, name: str, cache_dir: Path) -> Path:
    """cache_dir/name, downloaded from Google Drive unless a good copy is already there."""
    path = cache_dir / name
    if path.is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", FetchWarning)
                check_file(path, md5)
            return path
        except (FetchError, FetchWarning):
            path.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = cache_dir / (name + ".part")
    part.unlink(missing_ok=True)
    try:
        from torchvision.datasets.utils import download_file_from_google_drive

        download_file_from_google_drive(file_id, str(cache_dir), part.name)
    except Exception as err:  # gdown and requests raise many kinds; each means the same to the user
        part.unlink(missing_ok=True)
        raise FetchError(
            f"{name} could not be downloaded from Google Drive ({_reason(err)}); {_manual(cache_dir)}."
        ) from err
    try:
        if not part.is_file():
            raise FetchError(
                f"{name} could not be downloaded from Google Drive (nothing was saved); {_manual(cache_dir)}."
            )
        if looks_like_html(part):
            raise FetchError(
                f"Google Drive sent an HTML page (its quota or error page) instead of {name}; {_manual(cache_dir)}."
            )
        found = md5sum(part)
        if found != md5:
            raise FetchError(
                f"{name} downloaded from Google Drive has md5 {found}, not the official {md5}; {_manual(cache_dir)}."
            )
    except FetchError:
        part.unlink(missing_ok=True)
        raise
    commit(part, path)
    return path


def fetch(
    root: str | Path,
    celeba_dir: str | Path | None = None,
    *,
    cache_dir: str | Path = CACHE_DIR,
    files: Sequence[tuple[str, str, str]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Make root a complete CelebA directory: root/img_align_celeba/*.jpg and the official text files.

    With celeba_dir, the files come from there and nothing is downloaded: the text files are
    copied, the images hard-linked (copied across file systems) from an extracted
    celeba_dir/img_align_celeba/ if there is one, else extracted from celeba_dir/img_align_celeba.zip.
    Without it, each file is downloaded from Google Drive into cache_dir (kept across runs, so a
    re-run downloads nothing) and the images are extracted from there.

    Hard links cost no space or time, but the user's images then share their inodes with root (and
    with DVC's cache when it links rather than copies, which marks them read-only).

    files lists (Google Drive id, md5, name) of the six files, by default torchvision's table (`FILES`).
    Anything already at root is replaced. progress, if given, is called with 1 per image placed.
    """
    root, files = Path(root), official_files() if files is None else files
    source = Path(celeba_dir) if celeba_dir else None
    cache_dir = Path(cache_dir)
    if source is not None and not source.is_dir():
        raise FetchError(
            f"data.celeba_dir {source} is not a directory; point it at the folder holding the "
            f"CelebA files, or leave it empty to download them."
        )

    with building(root) as tmp:
        if source is not None and (source / KAGGLE_ATTR).exists():
            _place_kaggle(source, tmp, progress)
        else:
            for file_id, md5, name in files:
                if source is not None and name in OPTIONAL and not (source / name).exists():
                    continue
                _place(file_id, md5, name, source, cache_dir, tmp, progress)
        paths, attrs, _ = celeba.read_layout(tmp, missing_ok=True)
        if tuple(attrs.columns) != celeba.ATTRIBUTES:
            raise FetchError(
                f"{tmp.name}/{celeba.ATTR_FILE} names the attributes {' '.join(attrs.columns)[:120]!r}, "
                f"not CelebA's 40; {_manual(source or cache_dir)}."
            )
        missing = sum(not p.exists() for p in paths)
        if missing:
            warnings.warn(
                f"{missing} of the {len(paths)} listed images are not in the image folder; `vqgen prepare` "
                "skips and counts them.",
                FetchWarning,
                stacklevel=2,
            )
    return root


def _place_kaggle(source: Path, tmp: Path, progress: Callable[[int], None] | None) -> None:
    """The Kaggle copy of CelebA, rewritten in the official layout: its CSV annotations as the official
    text files, its images (under img_align_celeba/img_align_celeba/ or img_align_celeba/) linked."""
    for name in (KAGGLE_ATTR, KAGGLE_PARTITION):
        if not (source / name).is_file():
            raise FetchError(
                f"{source / name} is missing; the Kaggle copy of CelebA holds {KAGGLE_ATTR}, "
                f"{KAGGLE_PARTITION} and {celeba.IMAGE_DIR}/."
            )
        if looks_like_html(source / name):
            raise FetchError(f"{source / name} is an HTML page, not {name}; {_manual(source)}.")
    celeba.write_attributes(celeba.read_kaggle_attributes(source / KAGGLE_ATTR), tmp / celeba.ATTR_FILE)
    celeba.write_partition(celeba.read_kaggle_partition(source / KAGGLE_PARTITION), tmp / celeba.PARTITION_FILE)
    images = source / celeba.IMAGE_DIR
    if (images / celeba.IMAGE_DIR).is_dir():
        images = images / celeba.IMAGE_DIR
    if not images.is_dir():
        raise FetchError(f"{source} holds no {celeba.IMAGE_DIR}/ folder of images; {_manual(source)}.")
    _link_images(images, tmp / celeba.IMAGE_DIR, progress)


def _place(
    file_id: str,
    md5: str,
    name: str,
    source: Path | None,
    cache_dir: Path,
    tmp: Path,
    progress: Callable[[int], None] | None,
) -> None:
    """Put one of the official files into tmp, from source if given, else from a download."""
    if source is not None and name == IMAGE_ZIP and (source / celeba.IMAGE_DIR).is_dir():
        _link_images(source / celeba.IMAGE_DIR, tmp / celeba.IMAGE_DIR, progress)
        return
    if source is not None:
        path = source / name
        check_file(path, md5)
    else:
        path = _download(file_id, md5, name, cache_dir)
    if name == IMAGE_ZIP:
        _unpack_images(path, tmp, progress)
    else:
        shutil.copyfile(path, tmp / name)


def _unpack_images(zip_path: Path, tmp: Path, progress: Callable[[int], None] | None) -> None:
    unpacked = tmp / "unpacked"
    safe_extract(zip_path, unpacked, progress)
    folder = _image_folder(unpacked)
    if folder is None:
        raise FetchError(f"{zip_path} holds no {celeba.IMAGE_DIR}/ folder of .jpg images; {_manual(zip_path.parent)}.")
    os.replace(folder, tmp / celeba.IMAGE_DIR)
    shutil.rmtree(unpacked, ignore_errors=True)
