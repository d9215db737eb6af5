"""Crop and resize the raw images into one HDF5 image store with attributes and splits."""

from __future__ import annotations

import numpy as np

from vqgen.config import Params
from vqgen.data import celeba, images

from stages import common

PARAMS = ("data.crop_size", "data.image_size")


def run(p: Params) -> None:
    paths, attrs, part = celeba.read_layout(common.RAW)
    split = part.to_numpy().astype(np.uint8)
    with common.progress(len(paths), "resizing images") as advance:
        images.build_store(common.IMAGES, paths, attrs.to_numpy(), list(attrs.columns), split,
                           p.data.crop_size, p.data.image_size, workers=common.workers(p), progress=advance)
    counts = {f"{name}_images": int((split == i).sum()) for i, name in enumerate(images.SPLITS)}
    freq = {f"attr_{name}": float(attrs[name].mean()) for name in attrs.columns}
    common.write_metrics("data", {**counts, **freq})
