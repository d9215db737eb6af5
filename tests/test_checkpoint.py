"""Checkpoints: a round trip keeps values, config and metadata; identical weights give identical bytes."""

import subprocess
import sys

import pytest
import torch

from vqgen import checkpoint
from vqgen.models.transformer import Transformer, TransformerConfig

SAVE = """
import sys, torch
from vqgen import checkpoint
from vqgen.models.transformer import Transformer, TransformerConfig
torch.manual_seed(0)
cfg = TransformerConfig(vocab_size=9, out_size=8, block_size=4, n_layer=1, n_head=2, n_embd=8)
checkpoint.save(sys.argv[1], Transformer(cfg), cfg, prior="masked", grid=[2, 2], options={"b": 1, "a": 2})
"""


def save_in_new_process(path):
    subprocess.run([sys.executable, "-c", SAVE, str(path)], check=True)
    return path.read_bytes()


def test_round_trip_keeps_values_config_and_metadata(tmp_path):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=9, out_size=8, block_size=4, n_layer=1, n_head=2, n_embd=8)
    model = Transformer(cfg)
    checkpoint.save(tmp_path / "m.safetensors", model, cfg, grid=[2, 2], options={"extra_noise": 0.3})
    again, meta = checkpoint.load(tmp_path / "m.safetensors", Transformer, TransformerConfig)
    assert again.cfg == cfg and not again.training
    assert meta == {"config": vars(cfg), "grid": [2, 2], "options": {"extra_noise": 0.3}}
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert not list(tmp_path.glob("*.tmp"))


def test_extra_tensors_stay_out_of_the_weights_and_come_back_by_name(tmp_path):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=9, out_size=8, block_size=4, n_layer=1, n_head=2, n_embd=8)
    model, extra = Transformer(cfg), torch.arange(12, dtype=torch.uint8).view(4, 3)
    checkpoint.save(tmp_path / "m.safetensors", model, cfg, {"rows": extra}, grid=[2, 2])
    again, meta = checkpoint.load(tmp_path / "m.safetensors", Transformer, TransformerConfig)
    assert meta == {"config": vars(cfg), "grid": [2, 2]}
    assert set(again.state_dict()) == set(model.state_dict())
    assert torch.equal(checkpoint.extras(tmp_path / "m.safetensors")["rows"], extra)
    assert checkpoint.parameters(tmp_path / "m.safetensors") == sum(p.numel() for p in model.state_dict().values())
    checkpoint.save(tmp_path / "plain.safetensors", model, cfg)
    assert checkpoint.extras(tmp_path / "plain.safetensors") == {}


def test_identical_weights_give_identical_bytes(tmp_path):
    first = save_in_new_process(tmp_path / "a.safetensors")
    assert save_in_new_process(tmp_path / "b.safetensors") == first
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=9, out_size=8, block_size=4, n_layer=1, n_head=2, n_embd=8)
    model = Transformer(cfg)
    for i in range(6):  # safetensors orders several metadata keys at random, even within one process
        checkpoint.save(tmp_path / "c.safetensors", model, cfg, prior="masked", grid=[2, 2], options={"b": 1, "a": 2})
        assert (tmp_path / "c.safetensors").read_bytes() == first, i


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"<!DOCTYPE html><html>quota</html>", "pickle", "no metadata"])
def test_a_file_that_is_not_our_checkpoint_is_one_sentence(tmp_path, content):
    path = tmp_path / "ar.safetensors"
    if content == "pickle":
        torch.save({"w": torch.zeros(2)}, path)
    elif content == "no metadata":
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(path))
    else:
        path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(path, Transformer, TransformerConfig)
    assert str(e.value) == f"{path} is not a checkpoint written by vqgen; run the stage that writes it again."


def test_a_prior_trained_on_another_tokenizers_tokens_is_refused(tmp_path, monkeypatch):
    from vqgen import layout
    from vqgen.pipeline import load_prior
    from vqgen.priors import PRIORS

    monkeypatch.chdir(tmp_path)
    layout.VQVAE.parent.mkdir()
    layout.VQVAE.write_bytes(b"the tokenizer in use")
    sha = checkpoint.sha256(layout.VQVAE)
    prior = PRIORS["masked"].create(8, (2, 2), n_layer=1, n_head=2, n_embd=8)
    for tokenizer in ("0" * 64, None):
        extra = {} if tokenizer is None else {"tokenizer": tokenizer}  # None: written before the sha was recorded
        checkpoint.save(layout.DIFFUSION, prior.model, prior.model.cfg, **prior.metadata(), **extra)
        with pytest.raises(
            checkpoint.CheckpointError,
            match=r"diffusion.safetensors was trained on the tokens of "
            r"tokenizer (000000000000|None), not of the one in use \(\w{12}\); run `vqgen train_diffusion`",
        ):
            load_prior(layout.DIFFUSION, sha)
    checkpoint.save(layout.DIFFUSION, prior.model, prior.model.cfg, **prior.metadata(), tokenizer=sha)
    assert type(load_prior(layout.DIFFUSION, sha)) is type(prior)
