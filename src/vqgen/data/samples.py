"""Sample files: what a sampling stage drew (grids, decoded images, completions), one HDF5 dataset
per array, images chunked one per chunk."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from vqgen.files import writing


def write(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays atomically."""
    with writing(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, chunks=(1, *value.shape[1:]) if value.ndim == 4 else None)
    return Path(path)


def read(path: str | Path, *keys: str) -> dict[str, np.ndarray]:
    """The named arrays of a sample file."""
    with h5py.File(path, "r") as f:
        return {key: f[key][:] for key in keys}
