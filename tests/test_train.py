"""The training loop's parts: learning-rate schedule, minibatches, and the two-optimizer GAN step."""

import math

import pytest
import torch

from vqgen import train
from vqgen.models import vqvae


def test_cosine_lr_warms_up_linearly_then_decays_to_a_tenth():
    lr = [train.cosine_lr(it, 110, 1.0, 10) for it in range(111)]
    assert lr[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert lr[10] == pytest.approx(1.0) and lr[60] == pytest.approx(0.55) and lr[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))
    assert train.cosine_lr(500, 110, 1.0, 10) == pytest.approx(0.1)  # past the end: stays at the floor
    assert train.cosine_lr(35, 110, 2.0, 10) == pytest.approx(2.0 * (0.1 + 0.45 * (1 + math.cos(math.pi / 4))))


@pytest.mark.parametrize("n, batch_size", [(12, 4), (13, 4), (3, 8)])
def test_batches_cover_each_row_once_per_epoch(n, batch_size):
    data = torch.arange(n)
    stream = train.batches(data, batch_size, torch.Generator().manual_seed(0))
    per_epoch = n // batch_size if n >= batch_size else 1
    epochs = [torch.cat([next(stream) for _ in range(per_epoch)]) for _ in range(3)]
    for rows in epochs:
        assert len(rows) == min(n, per_epoch * batch_size) and len(rows.unique()) == len(rows)  # no row twice
    if n % batch_size == 0:
        assert all(sorted(rows.tolist()) == list(range(n)) for rows in epochs)
    assert not all(torch.equal(epochs[0], e) for e in epochs[1:])  # reshuffled every epoch


def test_the_gan_step_updates_each_network_on_its_own_loss_only():
    torch.manual_seed(0)
    model = vqvae.VQVAE(vqvae.VQVAEConfig(channels=8, downsample=4, codebook_size=16, code_dim=8))
    disc = vqvae.Discriminator(channels=8)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    model.train()(x)  # codebook initialised from data, so only the optimisers change weights below
    snapshot = lambda m: [p.detach().clone() for p in m.parameters()]  # noqa: E731
    changed = lambda m, before: any(not torch.equal(p, q) for p, q in zip(m.parameters(), before))  # noqa: E731
    opt_g, opt_d = train.adamw(model, 1e-3), train.adamw(disc, 1e-3)

    def losses(use_disc):
        return lambda it: vqvae.losses(model, disc, x, 0.1, 0.1, use_disc=use_disc)

    g, d = snapshot(model), snapshot(disc)
    train.fit(losses(False), [("loss", opt_g), ("d_loss", opt_d)], 2, 1e-3)
    assert changed(model, g) and not changed(disc, d)  # before disc_start the discriminator rests

    g, d = snapshot(model), snapshot(disc)
    train.fit(losses(True), [("d_loss", opt_d)], 2, 1e-3)
    assert changed(disc, d) and not changed(model, g)  # its hinge loss moves the discriminator alone

    first = vqvae.losses(model, disc, x, 0.1, 0.1, use_disc=True)["d_loss"].item()
    train.fit(losses(True), [("d_loss", opt_d)], 30, 1e-3)
    assert vqvae.losses(model, disc, x, 0.1, 0.1, use_disc=True)["d_loss"].item() < 0.5 * first  # it learns
