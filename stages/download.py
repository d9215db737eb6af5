"""Get face images in CelebA's file layout into data/raw: drawn offline (synthetic) or real CelebA."""

from __future__ import annotations

from vqgen.config import ConfigError, Params
from vqgen.data import synthetic

from stages import common

PARAMS = ("data.source", "data.synthetic_count", "data.seed", "data.celeba_dir", "data.folder")


def run(p: Params) -> None:
    if p.data.source == "synthetic":
        with common.progress(p.data.synthetic_count, "drawing faces") as advance:
            synthetic.write_synthetic(common.RAW, p.data.synthetic_count, p.data.seed,
                                      workers=common.workers(p), progress=advance)
    else:
        raise ConfigError(f"data.source {p.data.source!r} is not implemented yet; use data.source: synthetic.")
