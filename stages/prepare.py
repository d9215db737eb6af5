"""Crop and resize the raw images into one HDF5 image store with attributes and splits."""

from __future__ import annotations

import functools
import time

import numpy as np
import typer

from vqgen.config import Params
from vqgen.data import celeba, folder, images

from stages import common

PARAMS = ("data.source", "data.crop_size", "data.image_size")


def run(p: Params) -> None:
    d = p.data
    if d.source == "folder":
        paths, split, counts = folder.read_import(common.RAW)
        attrs, names = np.zeros((len(paths), 0), np.int8), []
        load = functools.partial(folder.load_square, size=d.image_size)
    else:
        paths, table, part = celeba.read_layout(common.RAW)
        split, attrs, names = part.to_numpy().astype(np.uint8), table.to_numpy(), list(table.columns)
        counts = {"found": len(paths), "used": len(paths)}
        load = functools.partial(images.load_face, crop=d.crop_size, size=d.image_size)
    start = time.perf_counter()
    with common.progress(len(paths), "resizing images") as advance:
        images.build_store(common.IMAGES, paths, attrs, names, split, load, d.image_size,
                           workers=common.workers(p), progress=advance)
    rate = len(paths) / (time.perf_counter() - start)
    typer.echo(f"prepared {len(paths)} images at {rate:.0f} images/s", err=True)
    per_split = {f"{name}_images": int((split == i).sum()) for i, name in enumerate(images.SPLITS)}
    skipped = {f"skipped_{r}": counts.get(f"skipped_{r}", 0) for r in folder.REASONS}
    freq = {f"attr_{name}": float(attrs[:, i].mean()) for i, name in enumerate(names)}
    common.write_metrics("data", {"found": counts["found"], "used": counts["used"], **per_split, **skipped, **freq})
