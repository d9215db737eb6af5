"""Token shards: the dataset encoded by a tokenizer, as HDF5 files the priors train on.

`{split}-{i:05d}-of-{n:05d}.h5` holds `tokens` (N, h, w) in the smallest unsigned dtype that
fits the codebook, `attributes` (N, A) int8 and `source_index` (N,) int64; its attributes
record the codebook size, the grid shape and the checksum of the tokenizer that wrote it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np


class ShardError(ValueError):
    """Shards that are missing, or were written by another tokenizer than the one in use."""


def token_dtype(codebook_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if codebook_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"codebook of {codebook_size} codes does not fit 32 bits")


def write_shards(directory: str | Path, split: str, tokens: np.ndarray, attributes: np.ndarray,
                 source_index: np.ndarray, codebook_size: int, tokenizer: str, shard_size: int) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = max(1, math.ceil(len(tokens) / shard_size))
    paths = []
    for i in range(n):
        rows = slice(i * shard_size, (i + 1) * shard_size)
        path = directory / f"{split}-{i:05d}-of-{n:05d}.h5"
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("tokens", data=tokens[rows].astype(token_dtype(codebook_size)))
            f.create_dataset("attributes", data=attributes[rows].astype(np.int8))
            f.create_dataset("source_index", data=source_index[rows].astype(np.int64))
            f.attrs["codebook_size"] = codebook_size
            f.attrs["grid"] = tokens.shape[1:]
            f.attrs["tokenizer"] = tokenizer
        os.replace(tmp, path)
        paths.append(path)
    return paths


def read_shards(directory: str | Path, split: str, codebook_size: int | None = None,
                tokenizer: str | None = None) -> dict[str, np.ndarray]:
    """Concatenate one split's shards; refuse shards of another tokenizer or codebook size."""
    paths = sorted(Path(directory).glob(f"{split}-*-of-*.h5"))
    if not paths:
        raise ShardError(f"no {split} shards in {directory}; run `vqgen encode` first.")
    parts: dict[str, list] = {"tokens": [], "attributes": [], "source_index": []}
    for path in paths:
        with h5py.File(path, "r") as f:
            if codebook_size is not None and int(f.attrs["codebook_size"]) != codebook_size:
                raise ShardError(f"{path} holds codes of a {int(f.attrs['codebook_size'])}-code codebook; "
                                 f"the tokenizer in use has {codebook_size}: re-run `vqgen encode`.")
            if tokenizer is not None and f.attrs["tokenizer"] != tokenizer:
                raise ShardError(f"{path} was written by tokenizer {f.attrs['tokenizer'][:12]}, not by the one in use "
                                 f"({tokenizer[:12]}): re-run `vqgen encode`.")
            for key in parts:
                parts[key].append(f[key][:])
    return {key: np.concatenate(value) for key, value in parts.items()}
