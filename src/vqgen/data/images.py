"""The image store: one HDF5 file of resized uint8 images, their attributes and their split.

Datasets: `images` (N, S, S, 3) uint8 chunked one image per chunk, `attributes` (N, A) int8
(0/1), `split` (N,) uint8 (0 train, 1 val, 2 test), `source_index` (N,) int64 (row in the
source listing); file attribute `attribute_names` (JSON list).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch

from vqgen import files
from vqgen.data.decode import UnreadableImage, open_rgb

SPLITS = ("train", "val", "test")


FIELDS = ("images", "attributes", "split", "source_index")


class ImageStoreWriter:
    """Streams at most n images into a temporary file, renamed into place only by `close()`."""

    def __init__(self, path: str | Path, n: int, size: int, attribute_names: list[str]):
        self.path = Path(path)
        self.tmp = files.temporary(self.path)
        self.f = h5py.File(self.tmp, "w")
        self.f.attrs["attribute_names"] = json.dumps(list(attribute_names))
        self.f.create_dataset("images", (n, size, size, 3), np.uint8, chunks=(1, size, size, 3))
        self.f.create_dataset("attributes", (n, len(attribute_names)), np.int8)
        self.f.create_dataset("split", (n,), np.uint8)
        self.f.create_dataset("source_index", (n,), np.int64)
        self.count = 0

    def append(self, images: np.ndarray, attributes: np.ndarray, split: np.ndarray, source_index: np.ndarray) -> None:
        end = self.count + len(images)
        for key, values in zip(FIELDS, (images, attributes, split, source_index)):
            self.f[key][self.count : end] = values
        self.count = end

    def close(self) -> None:
        """Put the store in place, cut to the images appended (a copy, only when some were left out)."""
        n = len(self.f["split"])
        self.f.close()
        if self.count < n:
            cut = self.tmp.with_name(self.tmp.name + ".cut")
            with h5py.File(self.tmp, "r") as src, h5py.File(cut, "w") as dst:
                dst.attrs.update(src.attrs)
                for key in FIELDS:
                    chunks = src[key].chunks if key == "images" else None
                    dst.create_dataset(key, data=src[key][: self.count], chunks=chunks)
            cut.replace(self.tmp)
        files.commit(self.tmp, self.path)

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


class Split:
    """One split of an image store, indexable like an array of uint8 images (N, S, S, 3).

    Images are read on demand, one HDF5 chunk per image, so training draws random batches
    without loading the file; a split smaller than `memory_limit` bytes is read once and kept.
    """

    def __init__(self, path: str | Path, split: str, memory_limit: int = 1 << 30):
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist; run `vqgen prepare` first.")
        self.file = h5py.File(path, "r")
        self.rows = np.flatnonzero(self.file["split"][:] == SPLITS.index(split))
        self.attributes = self.file["attributes"][:][self.rows]
        self.source_index = self.file["source_index"][:][self.rows]
        self.attribute_names: list[str] = json.loads(self.file.attrs["attribute_names"])
        dataset = self.file["images"]
        self.shape = (len(self.rows), *dataset.shape[1:])
        fits = len(self.rows) * int(np.prod(dataset.shape[1:])) <= memory_limit
        self.cache = self._read(self.rows) if fits else None

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, *self.file["images"].shape[1:]), np.uint8)
        order = np.argsort(rows, kind="stable")  # HDF5 reads want increasing, unique rows
        unique, inverse = np.unique(rows[order], return_inverse=True)
        out = np.empty((len(rows), *self.file["images"].shape[1:]), np.uint8)
        out[order] = self.file["images"][unique][inverse]
        return out

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> np.ndarray:
        positions = np.arange(len(self.rows))[index]
        return self.cache[positions] if self.cache is not None else self._read(self.rows[positions])

    def close(self) -> None:
        self.file.close()


BATCH = 64  # images per batch of a forward pass: on a CPU, larger batches spill the cache and run up to 2.5x slower


def batched(images, size: int = BATCH) -> Iterator[torch.Tensor]:
    """Consecutive float batches (B, 3, S, S) of a uint8 image array or a Split."""
    for i in range(0, len(images), size):
        yield to_tensor(images[i : i + size])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float (N, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of (B, C, H, W) mirrored left to right with probability 1/2."""
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, S, S) in [-1, 1] -> uint8 (N, S, S, 3)."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def load_face(path: str | Path, crop: int, size: int) -> np.ndarray:
    """Centre-crop an image to crop x crop, resize (antialiased) to size x size: uint8 (S, S, 3).
    Raises `decode.UnreadableImage` for a file that does not decode (empty, truncated, not an image,
    a decompression bomb)."""
    from PIL import Image

    img = open_rgb(path)
    w, h = img.size
    crop = min(crop, w, h)
    left, top = (w - crop) // 2, (h - crop) // 2
    img = img.crop((left, top, left + crop, top + crop)).resize((size, size), Image.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def _load_many(job: tuple[Callable[[str], np.ndarray], list[str]]) -> tuple[list[np.ndarray | None], dict[int, str]]:
    """The decoded images of a chunk (None where one does not decode) and why each of those failed."""
    load, paths = job
    out, failed = [], {}
    for i, path in enumerate(paths):
        try:
            out.append(load(path))
        except UnreadableImage as e:
            out.append(None)
            failed[i] = str(e)
    return out, failed


def build_store(
    path: str | Path,
    paths: list[Path],
    attributes: np.ndarray,
    attribute_names: list[str],
    split: np.ndarray,
    load: Callable[[str], np.ndarray],
    size: int,
    workers: int = 1,
    progress=None,
    chunk: int = 256,
    check: Callable[[dict[int, str]], None] | None = None,
) -> dict[int, str]:
    """Decode every image with `load` (a picklable function of a path returning uint8 (size, size, 3))
    in worker processes and stream them into an image store, `source_index` their index in `paths`.
    Images that do not decode are left out; returns {index: why} for them. `check`, given the same,
    may raise to refuse the store before it is put in place."""
    from concurrent.futures import ProcessPoolExecutor

    writer = ImageStoreWriter(path, len(paths), size, attribute_names)
    jobs = [(load, [str(p) for p in paths[i : i + chunk]]) for i in range(0, len(paths), chunk)]
    failed = {}
    try:
        with ProcessPoolExecutor(max(1, workers)) as pool:
            start = 0
            for decoded, bad in pool.map(_load_many, jobs):
                failed.update({start + i: why for i, why in bad.items()})
                good = [i for i, img in enumerate(decoded) if img is not None]
                rows = start + np.array(good, np.int64)
                if good:
                    writer.append(np.stack([decoded[i] for i in good]), attributes[rows], split[rows], rows)
                start += len(decoded)
                if progress:
                    progress(len(decoded))
        if check is not None:
            check(failed)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return failed
