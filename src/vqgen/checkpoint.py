"""Checkpoints: tensors in safetensors files, the model config as JSON metadata.

A checkpoint may hold tensors besides the model's weights (a prior's training attributes), under
the prefix `EXTRA`; `load` leaves them out and `extras` reads them. Files are written under a
temporary name and renamed when complete; `sha256` identifies
a checkpoint (the token shards record the tokenizer's). The metadata is one key holding sorted
JSON: safetensors writes several keys in a random order, so identical weights would give files
of different bytes, and DVC would see a new model after every re-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from vqgen.files import writing

KEY = "vqgen"  # the one metadata key
EXTRA = "extra."  # the prefix of tensors that are not the model's weights


class CheckpointError(ValueError):
    """A file that is not a checkpoint this project wrote."""


def save(path: str | Path, model: torch.nn.Module, config, extras: dict | None = None, **meta) -> None:
    """The model's weights, `extras` (tensors by name) and `meta` (JSON) with the model's config."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors |= {EXTRA + k: v.detach().contiguous().cpu() for k, v in (extras or {}).items()}
    content = {"config": dataclasses.asdict(config), **meta}
    with writing(path) as tmp:
        save_file(tensors, str(tmp), metadata={KEY: json.dumps(content, sort_keys=True)})


def metadata(path: str | Path) -> dict:
    """The JSON metadata of a checkpoint (its model config under "config"), without loading tensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; run the stage that trains it first.")
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})[KEY])
    except Exception:  # not safetensors, truncated, no or broken metadata: the file's kind of damage varies
        raise CheckpointError(
            f"{path} is not a checkpoint written by vqgen; run the stage that writes it again."
        ) from None


def load(path: str | Path, model_cls, config_cls, device: str | torch.device = "cpu"):
    """-> (model in eval mode, its metadata with the config decoded)."""
    meta = metadata(path)
    model = model_cls(config_cls(**meta["config"]))
    model.load_state_dict({k: v for k, v in load_file(str(path), device="cpu").items() if not k.startswith(EXTRA)})
    return model.to(device).eval(), meta


def extras(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint holds besides the model's weights, by the names `save` was given."""
    metadata(path)
    with safe_open(str(path), framework="pt") as f:
        return {k[len(EXTRA) :]: f.get_tensor(k) for k in f.keys() if k.startswith(EXTRA)}


def parameters(path: str | Path) -> int:
    """The number of values a checkpoint's model weights hold, without loading them."""
    metadata(path)  # one sentence for a file that is not a checkpoint
    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys() if not key.startswith(EXTRA))


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
