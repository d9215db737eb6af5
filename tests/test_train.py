"""The training loop's parts: learning-rate schedule, minibatches, and the two-optimizer GAN step."""

import math
from pathlib import Path

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
    assert train.cosine_lr(110, 110, 1.0, 10, floor=0.0) == 0.0 and train.cosine_lr(110, 110, 1.0, 10, 0.5) == 0.5


@pytest.mark.parametrize("n, batch_size", [(12, 4), (13, 4), (3, 8)])
def test_batches_cover_each_row_once_per_epoch(n, batch_size):
    data = torch.arange(n)
    stream = train.Batches(data, batch_size, torch.Generator().manual_seed(0))
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


def test_the_gan_step_applies_the_gradients_of_separate_passes_for_each_network():
    """The tokenizer's and the discriminator's losses share one pass over the reconstruction; each
    network still steps on the gradient it would get from its own pass (the critic's over a detached
    copy), and on nothing of the other's loss."""
    torch.manual_seed(0)
    model = vqvae.VQVAE(vqvae.VQVAEConfig(channels=8, downsample=4, codebook_size=16, code_dim=8))
    disc = vqvae.Discriminator(channels=8)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    model.train()(x)
    model.eval()  # the codebook stays put: both formulations see the same reconstruction
    out = vqvae.losses(model, disc, x, 0.1, 0.1, use_disc=True)
    want_g = torch.autograd.grad(out["loss"], list(model.parameters()), allow_unused=True)
    recon = model(x)[0].detach()
    want_d = torch.autograd.grad(vqvae.hinge_d_loss(disc(x)[0], disc(recon)[0]), list(disc.parameters()))
    before_g, before_d = ([p.detach().clone() for p in m.parameters()] for m in (model, disc))
    opt_g, opt_d = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(disc.parameters(), lr=0.1)
    losses = lambda it: vqvae.losses(model, disc, x, 0.1, 0.1, use_disc=True)  # noqa: E731
    train.fit(losses, [("loss", opt_g), ("d_loss", opt_d)], 1, 0.1, grad_clip=0.0)
    for p, p0, g in [*zip(model.parameters(), before_g, want_g), *zip(disc.parameters(), before_d, want_d)]:
        assert torch.allclose(p, p0 if g is None else p0 - 0.1 * g, rtol=0, atol=1e-6)
    assert any(not torch.equal(p, p0) for p, p0 in zip(disc.parameters(), before_d))


def gan_run(path, every, crash_at=None):
    """A tiny VQ-VAE and discriminator trained on a seeded stream of flipped batches, with dropout-like
    noise from torch's own generator; raises at step `crash_at` as a killed run would stop."""
    torch.manual_seed(0)
    model = vqvae.VQVAE(vqvae.VQVAEConfig(channels=8, downsample=4, codebook_size=16, code_dim=8))
    disc = vqvae.Discriminator(channels=8)
    opt_g, opt_d = train.adamw(model, 1e-3), train.adamw(disc, 1e-3)
    data = torch.rand(24, 3, 16, 16) * 2 - 1
    stream = train.Batches(torch.arange(24), 4, torch.Generator().manual_seed(1))
    mirror = torch.Generator().manual_seed(2)
    resume = train.Resume(path, every, {"model": model, "disc": disc}, {"mirror": mirror}, {"data": stream})
    logged = []

    def losses(it):
        if it == crash_at:
            raise KeyboardInterrupt
        x = data[next(stream)]
        x = torch.where(torch.rand(len(x), 1, 1, 1, generator=mirror) < 0.5, x.flip(3), x)
        x = x + 0.01 * torch.randn_like(x)  # torch's global generator
        return vqvae.losses(model, disc, x, 0.1, 0.1, use_disc=it >= 5)

    train.fit(
        losses, [("loss", opt_g), ("d_loss", opt_d)], 20, 1e-3, on_step=lambda it, m: logged.append(it), resume=resume
    )
    return {**model.state_dict(), **{f"disc.{k}": v for k, v in disc.state_dict().items()}}, logged


def test_a_run_killed_part_way_resumes_to_the_same_weights_bit_for_bit(tmp_path):
    whole, _ = gan_run(tmp_path / "whole.pt", every=0)
    with pytest.raises(KeyboardInterrupt):
        gan_run(tmp_path / "run.pt", every=4, crash_at=11)  # saved after steps 4 and 8, lost 9 and 10
    state = torch.load(tmp_path / "run.pt", weights_only=True)
    assert state["step"] == 8 and len(state["history"]) == 8
    resumed, logged = gan_run(tmp_path / "run.pt", every=4)
    assert logged == list(range(20))  # the 8 steps saved are logged again, then 12 new ones
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert not (tmp_path / "whole.pt").exists()  # every=0 never saves


def test_a_finished_run_leaves_its_last_save_behind_for_the_stage_to_clear(tmp_path):
    gan_run(tmp_path / "run.pt", every=8)
    assert torch.load(tmp_path / "run.pt", weights_only=True)["step"] == 16  # never the final step


def tiny_prior():
    from vqgen.priors import PRIORS

    torch.manual_seed(0)
    return PRIORS["ar"].create(16, (4, 4), n_layer=1, n_head=2, n_embd=16)


def test_bf16_autocast_runs_the_layers_in_bf16_and_keeps_the_weights_in_float32():
    prior, grids = tiny_prior(), torch.randint(0, 16, (8, 4, 4))
    seen = []
    next(m for m in prior.model.modules() if isinstance(m, torch.nn.Linear)).register_forward_hook(
        lambda module, args, out: seen.append(out.dtype)
    )
    before = [p.detach().clone() for p in prior.model.parameters()]
    opt = train.adamw(prior.model, 1e-2)
    last = train.fit(lambda it: {"loss": prior.loss(grids)}, [("loss", opt)], 3, 1e-2, autocast=torch.bfloat16)
    assert seen == [torch.bfloat16] * 3 and math.isfinite(last["loss"])
    assert all(p.dtype == torch.float32 and not torch.equal(p, b) for p, b in zip(prior.model.parameters(), before))


def test_auto_precision_is_bf16_where_the_cpu_has_bf16_instructions():
    cpu = torch.device("cpu")
    info = Path("/proc/cpuinfo")
    if info.is_file():  # the kernel's own word on the instructions
        flags = set(info.read_text().split())
        assert train.native_bf16(cpu) == bool(flags & {"avx512_bf16", "amx_tile"})
    native = torch.bfloat16 if train.native_bf16(cpu) else None
    assert train.pick_precision("auto", cpu) == native
    assert train.pick_precision("bf16", cpu) == torch.bfloat16  # asked for, it is used
    assert train.pick_precision("fp32", cpu) is None


def test_the_quantizer_searches_in_float32_under_bf16_autocast():
    q = vqvae.VectorQuantizer(vqvae.VQVAEConfig(codebook_size=64, code_dim=8)).train()
    z = torch.randn(4, 8, 8, 8)
    q(z)
    q.eval()
    with torch.autocast("cpu", torch.bfloat16):
        out, idx, _ = q(z)
    assert out.dtype == torch.float32 and torch.equal(idx, q(z)[1])


def test_a_compiled_model_trains_to_the_same_loss_as_the_eager_one():
    import shutil

    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("torch.compile needs a C compiler on a CPU")
    grids = torch.randint(0, 16, (8, 4, 4), generator=torch.Generator().manual_seed(1))
    runs = []
    for compile_it in (False, True):
        prior = tiny_prior()
        model = prior.model
        prior.model = torch.compile(model) if compile_it else model
        opt = train.adamw(model, 1e-2)
        runs.append(train.fit(lambda it: {"loss": prior.loss(grids)}, [("loss", opt)], 3, 1e-2)["loss"])
    assert runs[1] == pytest.approx(runs[0], rel=1e-4)


def test_previews_come_every_so_many_steps_and_after_the_last_but_not_for_replayed_steps(tmp_path):
    def run(previews, crash_at=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        opt = train.adamw(model, 1e-2)
        resume = train.Resume(tmp_path / "run.pt", 3, {"model": model})

        def losses(it):
            if it == crash_at:
                raise KeyboardInterrupt
            return {"loss": model(torch.randn(4, 3)).pow(2).mean()}

        def preview(step):
            torch.randn(5, generator=torch.Generator().manual_seed(step))  # its own generator only
            previews.append(step)

        train.fit(losses, [("loss", opt)], 7, 1e-2, resume=resume, preview=preview, preview_every=2)
        return model.weight.detach().clone()

    whole = []
    weights = run(whole)
    assert whole == [2, 4, 6, 7]
    (tmp_path / "run.pt").unlink(missing_ok=True)
    with pytest.raises(KeyboardInterrupt):
        run([], crash_at=5)  # saved after step 3
    resumed = []
    assert torch.equal(run(resumed), weights) and resumed == [4, 6, 7]
