"""Token shards: the dataset encoded by a tokenizer, as HDF5 files the priors train on.

`{split}-{i:05d}-of-{n:05d}.h5` holds `tokens` (N, h, w) in the smallest unsigned dtype that
fits the codebook, `attributes` (N, A) int8 and `source_index` (N,) int64; its attributes
record the codebook size, the grid shape and the checksum of the tokenizer that wrote it.
With `encode.mirror`, the train split holds the grids of its images mirrored after the originals'.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from vqgen.files import writing

FIELDS = ("tokens", "attributes", "source_index")


class ShardError(ValueError):
    """Shards that are missing, damaged, incomplete, or written by another tokenizer than the one in use."""


def token_dtype(codebook_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if codebook_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"codebook of {codebook_size} codes does not fit 32 bits")


def write_shards(
    directory: str | Path,
    split: str,
    tokens: np.ndarray,
    attributes: np.ndarray,
    source_index: np.ndarray,
    codebook_size: int,
    tokenizer: str,
    shard_size: int,
) -> list[Path]:
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= codebook_size):
        bad = int(tokens.max() if tokens.max() >= codebook_size else tokens.min())
        raise ShardError(
            f"the {split} tokens hold the code {bad}, outside the {codebook_size}-code codebook; nothing was written."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = max(1, math.ceil(len(tokens) / shard_size))
    paths = []
    for i in range(n):
        rows = slice(i * shard_size, (i + 1) * shard_size)
        path = directory / f"{split}-{i:05d}-of-{n:05d}.h5"
        with writing(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("tokens", data=tokens[rows].astype(token_dtype(codebook_size)))
            f.create_dataset("attributes", data=attributes[rows].astype(np.int8))
            f.create_dataset("source_index", data=source_index[rows].astype(np.int64))
            f.attrs["codebook_size"] = codebook_size
            f.attrs["grid"] = tokens.shape[1:]
            f.attrs["tokenizer"] = tokenizer
        paths.append(path)
    return paths


def _shard_set(directory: Path, split: str) -> list[Path]:
    """The split's shards, refused unless they are exactly one complete `i-of-n` set."""
    rerun = "re-run `vqgen encode`"
    paths = sorted(directory.glob(f"{split}-*-of-*.h5"))
    if not paths:
        raise ShardError(f"no {split} shards in {directory}; run `vqgen encode` first.")
    numbers = []
    for path in paths:
        parts = path.stem.split("-")
        if len(parts) != 4 or parts[2] != "of" or not (parts[1].isdigit() and parts[3].isdigit()):
            raise ShardError(f"{path} is not named {split}-<i>-of-<n>.h5 as the shards `vqgen encode` writes; {rerun}.")
        numbers.append((int(parts[1]), int(parts[3])))
    totals = sorted({n for _, n in numbers})
    if len(totals) > 1 or sorted(i for i, _ in numbers) != list(range(totals[0])):
        found = ", ".join(f"{i}-of-{n}" for i, n in sorted(numbers))
        raise ShardError(f"the {split} shards in {directory} are not one complete set ({found}); {rerun}.")
    return paths


def read_shards(
    directory: str | Path, split: str, codebook_size: int | None = None, tokenizer: str | None = None
) -> dict[str, np.ndarray]:
    """Concatenate one split's shards; refuse an incomplete set, damaged shards, and shards of another
    tokenizer, codebook size or grid."""
    rerun = "re-run `vqgen encode`"
    parts: dict[str, list] = {key: [] for key in FIELDS}
    grids = set()
    for path in _shard_set(Path(directory), split):
        try:
            with h5py.File(path, "r") as f:
                missing = [key for key in FIELDS if key not in f] + [
                    key for key in ("codebook_size", "grid", "tokenizer") if key not in f.attrs
                ]
                if missing:
                    raise ShardError(f"{path} lacks {', '.join(missing)}; {rerun}.")
                stored = int(f.attrs["codebook_size"])
                if codebook_size is not None and stored != codebook_size:
                    raise ShardError(
                        f"{path} holds codes of a {stored}-code codebook; "
                        f"the tokenizer in use has {codebook_size}: {rerun}."
                    )
                if tokenizer is not None and f.attrs["tokenizer"] != tokenizer:
                    raise ShardError(
                        f"{path} was written by tokenizer {f.attrs['tokenizer'][:12]}, not by the one "
                        f"in use ({tokenizer[:12]}): {rerun}."
                    )
                values = {key: f[key][:] for key in FIELDS}
                grid = tuple(int(g) for g in f.attrs["grid"])
        except OSError as err:
            raise ShardError(f"{path} is not a readable HDF5 token shard ({err}); {rerun}.") from err
        t = values["tokens"]
        if t.ndim != 3 or t.shape[1:] != grid or len({len(v) for v in values.values()}) != 1:
            raise ShardError(
                f"{path} holds tokens of shape {t.shape} for a {grid} grid with "
                f"{len(values['attributes'])} attribute rows; {rerun}."
            )
        if len(t) and int(t.max()) >= stored:
            raise ShardError(f"{path} holds the code {int(t.max())}, outside its {stored}-code codebook; {rerun}.")
        grids.add(grid)
        for key in FIELDS:
            parts[key].append(values[key])
    if len(grids) > 1:
        raise ShardError(
            f"the {split} shards in {directory} hold grids of different shapes "
            f"({', '.join(map(str, sorted(grids)))}); {rerun}."
        )
    return {key: np.concatenate(value) for key, value in parts.items()}
