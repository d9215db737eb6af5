"""The transformer and the two priors built on it."""

import pytest
import torch

from vqgen.priors import autoregressive, diffusion

GRID = (4, 4)


def tiny_ar():
    torch.manual_seed(0)
    return autoregressive.make_model(16, GRID, n_layer=2, n_head=2, n_embd=32)


def test_causal_logits_ignore_the_future():
    model = tiny_ar().eval()
    x = torch.randint(0, 16, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % 16
    a, _ = model(x)
    b, _ = model(y)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-5)
    assert not torch.allclose(a[0, 10:], b[0, 10:], atol=1e-5)


def test_cached_decoding_matches_the_full_forward():
    model = tiny_ar().eval()
    x = torch.randint(0, 17, (2, 16))
    full, _ = model(x)
    caches = model.new_caches()
    step = [model(x[:, :5], caches=caches)[0]]
    step += [model(x[:, t:t + 1], caches=caches, start=t)[0] for t in range(5, 16)]
    assert torch.allclose(full, torch.cat(step, 1), atol=1e-5)


def test_ar_loss_decreases_on_a_tiny_batch():
    model = tiny_ar()
    data = torch.randint(0, 16, (8, *GRID))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = autoregressive.loss(model, data).item()
    for _ in range(60):
        loss = autoregressive.loss(model, data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(first - torch.log(torch.tensor(16.0)).item()) < 0.3  # starts near uniform
    assert loss.item() < 0.5 * first


def test_ar_samples_and_completions_keep_their_prefix():
    model = tiny_ar().eval()
    gen = torch.Generator().manual_seed(0)
    out = autoregressive.sample(model, GRID, n=3, generator=gen)
    assert out.shape == (3, *GRID) and out.min() >= 0 and out.max() < 16
    prefix = torch.randint(0, 16, (2, 6))
    done = autoregressive.sample(model, GRID, prefix=prefix, top_k=3, generator=gen)
    assert torch.equal(done.flatten(1)[:, :6], prefix)
    full = torch.randint(0, 16, (2, 16))
    assert torch.equal(autoregressive.sample(model, GRID, prefix=full).flatten(1), full)


def test_ar_sampling_follows_a_learned_sequence():
    model = tiny_ar()
    data = torch.arange(16).view(1, *GRID).repeat(8, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = autoregressive.loss(model, data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = autoregressive.sample(model.eval(), GRID, n=2, temperature=0.1)
    assert torch.equal(out, data[:2])  # an off-by-one in sampling would shift the sequence


def test_corrupt_replaces_the_requested_fraction():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 10000, dtype=torch.long)
    y = diffusion.corrupt(x, torch.tensor([0.0, 0.25, 0.5, 1.0]), 1000, gen)
    changed = (y != x).float().mean(1)
    assert changed[0] == 0
    for got, want in zip(changed[1:], [0.25, 0.5, 1.0]):
        assert abs(got.item() - want * 0.999) < 0.02
    assert diffusion.corrupt(x[:1], 0.1, 1000, gen).ne(0).float().mean().item() == pytest.approx(0.1, abs=0.02)


def test_diffusion_loss_decreases_and_sampling_runs():
    torch.manual_seed(0)
    model = diffusion.make_model(16, GRID, n_layer=2, n_head=2, n_embd=32)
    data = torch.arange(16).view(1, *GRID).repeat(16, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = diffusion.loss(model, data).item()
    for _ in range(150):
        loss = diffusion.loss(model, data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    traj = diffusion.sample(model.eval(), GRID, n=8, steps=30, temperature=1.0,
                            generator=torch.Generator().manual_seed(0))
    assert len(traj) == 31 and traj[-1].shape == (8, *GRID)
    start, end = ((t == data[:8]).float().mean().item() for t in (traj[0], traj[-1]))
    assert start < 0.15 and end > 0.35  # reverse diffusion moves from noise towards the data
