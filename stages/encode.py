"""Encode every split of the image store into HDF5 token shards with the trained tokenizer; with
`encode.mirror`, the train split's shards also hold the grids of its images mirrored, after the
originals (same attributes and source index)."""

from __future__ import annotations

import numpy as np
import torch

from stages import common
from vqgen import checkpoint, layout, tokenizer
from vqgen.config import Params
from vqgen.data import images, tokens
from vqgen.files import building

PARAMS = ("encode",)


def run(p: Params) -> None:
    dev = common.device(p, 0)
    model = tokenizer.load(layout.VQVAE, dev)
    model.to(memory_format=torch.channels_last)
    sha, counts = checkpoint.sha256(layout.VQVAE), {}
    with building(layout.TOKENS) as tmp:
        for split in images.SPLITS:
            data = images.Split(layout.IMAGES, split, memory_limit=0)
            views = (False, True) if split == "train" and p.encode.mirror else (False,)
            grids = []
            with common.progress(len(data) * len(views), f"encoding {split}") as advance:
                for mirrored in views:
                    for x in images.batched(data, p.encode.batch_size):
                        x = x.to(dev, memory_format=torch.channels_last)
                        grids.append(model.encode(x.flip(3) if mirrored else x).cpu().numpy())
                        advance(len(grids[-1]))
            h = w = data.shape[1] // model.cfg.downsample
            grid = np.concatenate(grids) if grids else np.zeros((0, h, w), np.int64)
            counts[f"{split}_grids"] = len(grid)
            tokens.write_shards(
                tmp,
                split,
                grid,
                np.concatenate([data.attributes] * len(views)),
                np.concatenate([data.source_index] * len(views)),
                model.cfg.codebook_size,
                sha,
                p.encode.shard_size,
            )
    common.write_metrics("encode", counts)
