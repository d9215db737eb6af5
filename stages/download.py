"""Get face images into data/raw: drawn offline (synthetic) or real CelebA, both in CelebA's file
layout, or any folder of images (checked, split by a hash of each path, and copied)."""

from __future__ import annotations

import warnings

import typer

from stages import common
from vqgen import layout
from vqgen.config import Params
from vqgen.data import folder

PARAMS = (
    "data.source",
    "data.synthetic_count",
    "data.seed",
    "data.celeba_dir",
    "data.folder",
    "data.min_size",
    "data.val_fraction",
    "data.test_fraction",
)


def run(p: Params) -> None:
    from vqgen.data import celeba, celeba_fetch, synthetic  # here: they load pandas, which other commands need not

    d = p.data
    if d.source == "synthetic":
        with common.progress(d.synthetic_count, "drawing faces") as advance:
            synthetic.write_synthetic(
                layout.RAW, d.synthetic_count, d.seed, workers=common.workers(p), progress=advance
            )
    elif d.source == "celeba":
        with (
            common.progress(celeba.IMAGE_COUNT, "placing CelebA images") as advance,
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always", celeba_fetch.FetchWarning)
            celeba_fetch.fetch(layout.RAW, d.celeba_dir or None, progress=advance)
        for warning in caught:
            typer.echo(f"warning: {warning.message}", err=True)
    else:
        with common.progress(None, f"checking images in {d.folder}") as advance:
            scan = folder.scan(
                d.folder, d.min_size, d.val_fraction, d.test_fraction, workers=common.workers(p), progress=advance
            )
        for line in folder.warnings(scan):
            typer.echo(f"warning: {line}", err=True)
        folder.check_splits(scan, d.val_fraction, d.test_fraction)
        folder.write_import(scan, layout.RAW)
    listed = layout.RAW / ("images" if d.source == "folder" else "img_align_celeba")
    common.write_metrics("download", {"images": sum(1 for f in listed.rglob("*") if f.is_file())})
