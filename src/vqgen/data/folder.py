"""Any directory of images as a data source: find the files, check each decodes and is large enough,
give each a split from a hash of its relative path (so adding files never moves old ones), and decode
them to square RGB arrays the way `images.load_face` does for CelebA.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from vqgen.data import FolderError
from vqgen.data.decode import UnreadableImage, open_rgb
from vqgen.files import building

SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
REASONS = ("unreadable", "too_small", "not_an_image", "link_outside", "dangling_link", "name_not_utf8")


def square(img: Image.Image, size: int, resample: int = Image.Resampling.LANCZOS, crop: float = 1.0) -> Image.Image:
    """An image centre-cropped to a square (`crop` of its shorter side) and resized (antialiased by
    default) to size x size."""
    w, h = img.size
    side = max(1, round(min(w, h) * crop))
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), resample)


def load_square(path: str | Path, size: int) -> np.ndarray:
    """Decode an image, centre-crop it to a square, resize (antialiased) to size x size: uint8 (S, S, 3)."""
    return np.asarray(square(open_rgb(path), size), dtype=np.uint8)


def load_photo(path: str | Path, size: int, min_size: int, crop: float = 1.0) -> tuple[np.ndarray, tuple[int, int]]:
    """One photograph read as `prepare` reads a folder's images (any format Pillow decodes, EXIF
    orientation, transparency on white, antialiased resize), its centre square keeping `crop` of its
    shorter side (`config.Data.photo_crop`): uint8 (S, S, 3) and the decoded image's (width, height).
    A file that does not decode, or whose shorter side is under `min_size` pixels, is refused with
    one sentence."""
    if not 0 < crop <= 1:
        raise FolderError(
            f"crop {crop:g} is not a share of the photo's shorter side; use a number above 0 and at most 1 "
            "(1: all of it)."
        )
    if not Path(path).is_file():
        raise FolderError(f"{path} is not a file; give the path of a photo.")
    try:
        img = open_rgb(path)
    except UnreadableImage as e:
        raise FolderError(
            f"{path} cannot be read as an image ({e}); give a photo in a format such as JPEG, PNG or WebP."
        ) from None
    if min(img.size) < min_size:
        raise FolderError(
            f"{path} is {img.size[0]}x{img.size[1]} pixels; use a photo at least {min_size} pixels on its "
            "shorter side (data.min_size)."
        )
    return np.asarray(square(img, size, crop=crop), dtype=np.uint8), img.size


def split_of(relative_path: str, val_fraction: float, test_fraction: float) -> int:
    """0 train, 1 val or 2 test, from a hash of the relative path alone."""
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction <= 1):
        raise ValueError(
            f"val_fraction {val_fraction} and test_fraction {test_fraction} must be >= 0 and sum to at most 1."
        )
    digest = hashlib.sha1(PurePosixPath(relative_path).as_posix().encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return 2 if u < test_fraction else 1 if u < test_fraction + val_fraction else 0


@dataclass
class Scan:
    root: Path
    paths: list[Path]  # usable images, sorted by relative path
    split: np.ndarray  # uint8, one per path
    skipped: dict[str, list[str]]  # reason -> relative paths
    found: int  # files considered
    details: dict[str, str] = field(default_factory=dict)  # relative path -> why it was skipped
    duplicates: int = 0  # usable files whose bytes repeat an earlier one's: they share its split


def shown(relative_path: str) -> str:
    """A relative path as it can be printed, whatever bytes its name holds."""
    return os.fsencode(relative_path).decode("utf-8", "backslashreplace")


def _walk(root: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Relative POSIX paths of the files under root, sorted, hidden files and directories left out;
    and those refused before decoding: links out of root or to nothing, names that are not UTF-8."""
    found, refused = [], {"link_outside": [], "dangling_link": [], "name_not_utf8": []}
    inside = root.resolve()
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(top, name)
            rel = path.relative_to(root).as_posix()
            if name.startswith("."):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.exists():
                    refused["dangling_link"].append(rel)
                    continue
                if inside not in target.parents:
                    refused["link_outside"].append(rel)
                    continue
            if not path.is_file():
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                refused["name_not_utf8"].append(rel)
                continue
            found.append(rel)
    return sorted(found), {reason: sorted(rels) for reason, rels in refused.items()}


def _check(path: str, min_size: int) -> tuple[str | None, str]:
    """(None, digest of the file's bytes) for a usable image, else (reason, detail)."""
    try:
        w, h = open_rgb(path).size
    except UnreadableImage as e:
        return "unreadable", str(e)
    if min(w, h) < min_size:
        return "too_small", f"{w}x{h}, under {min_size} px"
    return None, hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_many(job: tuple[list[str], int]) -> list[tuple[str | None, str]]:
    paths, min_size = job
    return [_check(p, min_size) for p in paths]


def scan(
    root: str | Path,
    min_size: int,
    val_fraction: float,
    test_fraction: float,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    chunk: int = 64,
) -> Scan:
    """Find the usable images under root and their splits; progress(n) after each n files decoded."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FolderError(f"data.folder {root} does not exist; set it to a directory of images.")
    if not root.is_dir():
        raise FolderError(f"data.folder {root} is not a directory; set it to a directory of images.")
    files, refused = _walk(root)
    skipped = {reason: [] for reason in REASONS} | refused
    details = {}
    candidates = []
    for rel in files:
        if Path(rel).suffix.lower() in SUFFIXES:
            candidates.append(rel)
        else:
            skipped["not_an_image"].append(rel)

    jobs = [
        ([str(root / rel) for rel in candidates[i : i + chunk]], min_size) for i in range(0, len(candidates), chunk)
    ]
    results = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            for checked in pool.map(_check_many, jobs):
                results += checked
                if progress:
                    progress(len(checked))
    else:
        for job in jobs:
            results += _check_many(job)
            if progress:
                progress(len(job[0]))

    used, digests = [], []
    for rel, (reason, detail) in zip(candidates, results):
        if reason is None:
            used.append(rel)
            digests.append(detail)
        else:
            skipped[reason].append(rel)
            details[rel] = detail
    if not used:
        raise FolderError(
            f"No usable image in {root}: of {len(files)} files, {len(skipped['unreadable'])} are unreadable, "
            f"{len(skipped['too_small'])} are smaller than {min_size} px and {len(skipped['not_an_image'])} "
            f"do not end in {', '.join(sorted(SUFFIXES))}."
        )
    first = {}  # identical bytes go where the first file holding them goes, so no test image is also trained on
    for rel, digest in zip(used, digests):
        first.setdefault(digest, rel)
    split = np.array([split_of(first[digest], val_fraction, test_fraction) for digest in digests], np.uint8)
    found = len(files) + sum(len(rels) for rels in refused.values())
    return Scan(root, [root / rel for rel in used], split, skipped, found, details, len(used) - len(first))


def check_splits(scan: Scan, val_fraction: float, test_fraction: float, least: int = 2) -> None:
    """Refuse a scan whose val or test split holds fewer than `least` images (the pipeline measures on both)."""
    for index, (name, fraction) in enumerate((("val", val_fraction), ("test", test_fraction)), start=1):
        count = int((scan.split == index).sum())
        if count < least:
            raise FolderError(
                f"Only {count} of the {len(scan.paths)} usable images in {scan.root} fall in the "
                f"{name} split (data.{name}_fraction {fraction}); add images or raise the fraction "
                f"so that it gets at least {least}."
            )


def warnings(scan: Scan, limit: int = 20) -> list[str]:
    """One line per skipped file, e.g. 'skipped photos/a.jpg: unreadable (truncated)', at most limit + 1."""
    return skip_lines(
        [(rel, reason, scan.details.get(rel)) for reason, rels in scan.skipped.items() for rel in rels], limit
    )


def skip_lines(skipped: list[tuple[str, str, str | None]], limit: int = 20) -> list[str]:
    """'skipped <file>: <reason> (<detail>)' for (file, reason, detail) triples, sorted, at most limit + 1 lines."""
    skipped = sorted(skipped, key=lambda item: item[:2])
    lines = [
        f"skipped {shown(rel)}: {reason.replace('_', ' ')}" + (f" ({detail})" if detail else "")
        for rel, reason, detail in skipped[:limit]
    ]
    if len(skipped) > limit:
        lines.append(f"... and {len(skipped) - limit} more")
    return lines


def counts(scan: Scan) -> dict[str, int]:
    """Flat numbers for the metrics file: files found, used, and skipped per reason."""
    out = {"found": scan.found, "used": len(scan.paths), "duplicates": scan.duplicates}
    out.update({f"skipped_{reason}": len(scan.skipped.get(reason, [])) for reason in REASONS})
    return out


def write_import(scan: Scan, dest: str | Path) -> None:
    """Copy the usable images (hard links where possible) under dest/images/, keeping their relative
    paths, with splits.csv (path, split) and counts.json; dest appears only when complete."""
    import pandas as pd  # here, not above: reading a photo (`vqgen inpaint`) needs no pandas

    rels = [p.relative_to(scan.root).as_posix() for p in scan.paths]
    with building(dest) as tmp:
        for rel, path in zip(rels, scan.paths):
            target = tmp / "images" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
        pd.DataFrame({"path": rels, "split": scan.split}).to_csv(tmp / "splits.csv", index=False)
        (tmp / "counts.json").write_text(json.dumps(counts(scan), indent=2) + "\n")


def read_import(dest: str | Path) -> tuple[list[Path], np.ndarray, dict[str, int]]:
    """The image paths, splits and counts written by `write_import`."""
    import pandas as pd

    dest = Path(dest)
    if not (dest / "splits.csv").exists():
        raise FolderError(f"{dest} holds no imported folder; run `vqgen download` with data.source: folder.")
    table = pd.read_csv(dest / "splits.csv", dtype={"path": str, "split": "uint8"}, keep_default_na=False)
    paths = [dest / "images" / rel for rel in table["path"]]
    return paths, table["split"].to_numpy(), json.loads((dest / "counts.json").read_text())
