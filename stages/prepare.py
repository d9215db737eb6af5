"""Crop and resize the raw images into one HDF5 image store with attributes and splits."""

from __future__ import annotations

import functools
import time

import numpy as np
import typer

from stages import common
from vqgen import layout
from vqgen.config import Params
from vqgen.data import LayoutError, folder, images

PARAMS = ("data.source", "data.crop_size", "data.image_size", "evaluate.num_samples")


def run(p: Params) -> None:
    from vqgen.data import celeba  # here: it loads pandas, which other commands need not

    d = p.data
    if d.source == "folder":
        paths, split, counts = folder.read_import(layout.RAW)
        attrs, names = np.zeros((len(paths), 0), np.int8), []
        load = functools.partial(folder.load_square, size=d.image_size)
    else:
        paths, table, part = celeba.read_layout(layout.RAW, missing_ok=True)
        split, attrs, names = part.to_numpy().astype(np.uint8), table.to_numpy(), list(table.columns)
        counts = {"found": len(paths), "used": len(paths)}
        load = functools.partial(images.load_face, crop=d.crop_size, size=d.image_size)
    least = (1, 2, max(2, p.evaluate.num_samples))  # train, val, test: the judge compares num_samples
    _check_sizes(split, least, "")
    start = time.perf_counter()
    with common.progress(len(paths), "resizing images") as advance:
        failed = images.build_store(
            layout.IMAGES,
            paths,
            attrs,
            names,
            split,
            load,
            d.image_size,
            workers=common.workers(p),
            progress=advance,
            check=functools.partial(_check, paths, split, least),
        )
    split, attrs = np.delete(split, list(failed)), np.delete(attrs, list(failed), axis=0)
    counts["used"] -= len(failed)
    missing = sum(why == "missing" for why in failed.values())
    counts["skipped_missing"] = missing
    counts["skipped_unreadable"] = counts.get("skipped_unreadable", 0) + len(failed) - missing
    rate = len(paths) / (time.perf_counter() - start)
    typer.echo(f"prepared {len(split)} images at {rate:.0f} images/s", err=True)
    per_split = {f"{name}_images": int((split == i).sum()) for i, name in enumerate(images.SPLITS)}
    skipped = {f"skipped_{r}": counts.get(f"skipped_{r}", 0) for r in (*folder.REASONS, "missing")}
    freq = {f"attr_{name}": float(attrs[:, i].mean()) for i, name in enumerate(names)}
    common.write_metrics(
        "data",
        {
            "found": counts["found"],
            "used": counts["used"],
            "duplicates": counts.get("duplicates", 0),
            **per_split,
            **skipped,
            **freq,
        },
    )


def _check(paths: list, split: np.ndarray, least: tuple[int, ...], failed: dict[int, str]) -> None:
    """Name the images that do not decode; stop if they leave a split too small to train or measure on."""
    for line in folder.skip_lines(
        [
            (str(paths[i]), "missing" if why == "missing" else "unreadable", None if why == "missing" else why)
            for i, why in failed.items()
        ]
    ):
        typer.echo(f"warning: {line}", err=True)
    _check_sizes(
        np.delete(split, list(failed)),
        least,
        f"after leaving out {len(failed)} images that are missing or do not decode, ",
        "replace the damaged files",
    )


def _check_sizes(split: np.ndarray, least: tuple[int, ...], before: str, fix: str = "add images") -> None:
    """Stop, before any image is written, if a split holds fewer images than training and judging need."""
    for name, count, needed in zip(images.SPLITS, np.bincount(split, minlength=3), least):
        if count < needed:
            judged = name == "test" and needed > 2
            raise LayoutError(
                f"{before}the {name} split holds {count} images, fewer than the {needed} "
                + ("the judge compares (evaluate.num_samples); lower it, or " if judged else "it needs; ")
                + f"{fix} in {layout.RAW}."
            )
