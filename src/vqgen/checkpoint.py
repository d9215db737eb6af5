"""Checkpoints: tensors in safetensors files, the model config as JSON metadata.

Files are written under a temporary name and renamed when complete; `sha256` identifies
a checkpoint (the token shards record the tokenizer's).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open


def save(path: str | Path, model: torch.nn.Module, config, **meta) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"config": json.dumps(dataclasses.asdict(config)), **{k: json.dumps(v) for k, v in meta.items()}}
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def metadata(path: str | Path) -> dict:
    """The JSON metadata of a checkpoint (its model config under "config"), without loading tensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; run the stage that trains it first.")
    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in f.metadata().items()}


def load(path: str | Path, model_cls, config_cls, device: str | torch.device = "cpu"):
    """-> (model in eval mode, its metadata with the config decoded)."""
    meta = metadata(path)
    model = model_cls(config_cls(**meta["config"]))
    model.load_state_dict(load_file(str(path), device="cpu"))
    return model.to(device).eval(), meta


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
