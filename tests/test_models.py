"""The VQ-VAE, its quantizer and discriminator, and the evaluator."""

import pytest
import torch
import torch.nn.functional as F

from vqgen.models import perceptual, transformer, vqvae
from vqgen.models.evaluator import Evaluator, EvaluatorConfig, augment, rotate


def tiny(**kw) -> vqvae.VQVAEConfig:
    return vqvae.VQVAEConfig(channels=8, downsample=4, codebook_size=16, code_dim=8, **kw)


@pytest.mark.parametrize("ema_decay", [0.0, 0.99])
def test_quantizer_returns_codebook_rows(ema_decay):
    q = vqvae.VectorQuantizer(tiny(ema_decay=ema_decay)).train()
    z = torch.randn(2, 8, 4, 4)
    q(z)  # initialises (and, with EMA, updates) the codebook
    out, idx, loss = q.eval()(z)
    assert out.shape == z.shape and idx.shape == (2, 4, 4)
    assert torch.allclose(out.permute(0, 2, 3, 1), q.codebook[idx], atol=1e-6)
    gap = (z.permute(0, 2, 3, 1) - q.codebook[idx]).pow(2).mean()  # beta * ||z - sg(e)||^2 (+ ||sg(z) - e||^2)
    assert loss.item() == pytest.approx(gap.item() * (q.cfg.beta + (0 if ema_decay else 1)), rel=1e-5)
    dist = torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 8), q.codebook)  # every index names a nearest code
    assert torch.allclose(dist.gather(1, idx.view(-1, 1)).squeeze(1), dist.min(1).values, atol=1e-5)


@pytest.mark.parametrize("ema_decay", [0.0, 0.99])
def test_gradients_reach_the_encoder(ema_decay):
    model = vqvae.VQVAE(tiny(ema_decay=ema_decay))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    recon, idx, qloss = model(x)
    assert recon.shape == x.shape and idx.shape == (2, 4, 4)
    ((recon - x).pow(2).mean() + qloss).backward()
    grad = model.encoder.net[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_ema_restarts_dead_codes():
    q = vqvae.VectorQuantizer(tiny(ema_decay=0.5)).train()
    z = torch.randn(4, 8, 4, 4)
    q(z)
    q.codebook[3] = 1e6  # a code no input will ever pick
    q.cluster_size[3] = 0.0
    q(z)
    assert q.codebook[3].abs().max() < 1e3


def test_the_straight_through_estimator_passes_the_gradient_unchanged():
    q = vqvae.VectorQuantizer(tiny(ema_decay=0.99)).train()
    q(torch.randn(2, 8, 4, 4))
    z = torch.randn(2, 8, 4, 4, requires_grad=True)
    out, _, _ = q.eval()(z)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()  # the codes' gradient, without the commitment loss
    assert torch.equal(z.grad, upstream)


def test_ema_moves_each_code_to_the_mean_of_the_vectors_it_wins():
    q = vqvae.VectorQuantizer(vqvae.VQVAEConfig(codebook_size=2, code_dim=2, ema_decay=0.9)).train()
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0]])
    flat = (centres.repeat_interleave(50, 0) + torch.randn(100, 2, generator=torch.Generator().manual_seed(0))).t()
    z = flat.reshape(2, 10, 10).unsqueeze(0)  # (1, D, 10, 10): 50 vectors around each centre
    q(z)
    q.codebook.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))  # away from the means, each on its own side
    q.embed_sum.copy_(q.codebook * q.cluster_size[:, None])
    for _ in range(200):
        _, idx, _ = q(z)
    means = torch.stack([flat.t()[:50].mean(0), flat.t()[50:].mean(0)])
    assert torch.equal(idx.flatten(), torch.arange(2).repeat_interleave(50))
    assert torch.allclose(q.codebook, means, atol=1e-3)


def test_encode_and_decode_are_the_forward_pass_split_at_the_tokens():
    torch.manual_seed(0)
    model = vqvae.VQVAE(tiny())
    model.train()(torch.rand(3, 3, 32, 32) * 2 - 1)  # initialises the codebook from data
    model.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    recon, idx, _ = model(x)
    assert torch.equal(model.encode(x), idx) and idx.shape == (3, 8, 8)
    assert len(idx.unique()) > 1  # the tokens tell the inputs apart
    assert torch.allclose(model.decode(idx), recon.clamp(-1, 1), atol=1e-5)


def test_vqvae_losses_decrease_on_a_tiny_batch():
    torch.manual_seed(0)
    model, disc = vqvae.VQVAE(tiny()), vqvae.Discriminator(channels=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    first = None
    for it in range(40):
        losses = vqvae.losses(model, disc, x, 0.1, 0.01, use_disc=it >= 20)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        first = first if first is not None else losses["mse"].item()
    assert set(losses) >= {"mse", "quantizer", "perceptual", "adversarial", "d_loss", "loss"}
    assert losses["mse"].item() < 0.5 * first


def test_discriminator_features_and_perceptual_loss():
    disc = vqvae.Discriminator(channels=8, layers=3)
    x = torch.rand(2, 3, 32, 32)
    logits, feats = disc(x)
    assert logits.shape == (2, 1, 4, 4) and [f.shape[1:] for f in feats] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    assert perceptual.feature_distance(feats, disc(x)[1]).item() == 0.0
    scaled = [f * torch.rand(2, 1, *f.shape[2:]) * 10 for f in feats]  # each position's vector rescaled
    assert perceptual.feature_distance(feats, scaled).item() == pytest.approx(0.0, abs=1e-6)
    other = disc(-x)[1]
    n = perceptual.unit_normalise
    want = sum((n(a) - n(b)).pow(2).sum(1).mean() for a, b in zip(other, feats)) / 3
    assert perceptual.feature_distance(feats, other).item() == pytest.approx(want.item())


def test_the_perceptual_distance_of_unit_vectors_is_two_minus_twice_their_cosine():
    a = torch.zeros(1, 4, 1, 1)
    a[0, 0] = 3.0
    b, c = torch.zeros_like(a), -a
    b[0, 1] = 0.5
    assert perceptual.feature_distance([a], [b]).item() == pytest.approx(2.0)  # orthogonal
    assert perceptual.feature_distance([a], [c]).item() == pytest.approx(4.0)  # opposite


def test_the_adaptive_weight_is_the_ratio_of_the_gradient_norms_at_the_last_layer():
    torch.manual_seed(0)
    model, disc = vqvae.VQVAE(tiny()), vqvae.Discriminator(channels=8)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.train()(x)
    model.eval()
    out = vqvae.losses(model, disc, x, 0.0, 0.5, use_disc=True)
    last = model.decoder.net[-1].weight
    recon = model(x)[0]
    g_rec = torch.autograd.grad(torch.nn.functional.mse_loss(recon, x), last)[0]
    g_adv = torch.autograd.grad(-disc(model(x)[0])[0].mean(), last)[0]
    want = g_rec.norm() / (g_adv.norm() + 1e-4)
    assert out["adaptive_weight"].item() == pytest.approx(want.item(), rel=1e-4)
    assert not out["adaptive_weight"].requires_grad  # a constant, not a path for gradients
    assert out["loss"].item() == pytest.approx(
        (out["mse"] + out["quantizer"] + 0.5 * want * out["adversarial"]).item(), rel=1e-5
    )


def test_the_edge_weighted_pixel_loss_weighs_an_error_on_a_line_by_one_plus_four_times_the_edge_weight():
    x = -torch.ones(1, 3, 16, 16)
    x[..., 10] = 1.0  # a vertical line: contrast 6 on columns 8 to 11 once dilated, 0 elsewhere; mean 1.5
    on_line, off_line = x.clone(), x.clone()
    on_line[0, 0, 5, 10] -= 0.5
    off_line[0, 0, 5, 2] += 0.5
    n = x.numel()
    assert vqvae.pixel_loss(on_line, x, 0.0).item() == torch.nn.functional.mse_loss(on_line, x).item()
    assert vqvae.pixel_loss(on_line, x, 2.0).item() == pytest.approx(0.25 * (1 + 4 * 2.0) / (n * 3.0))
    assert vqvae.pixel_loss(off_line, x, 2.0).item() == pytest.approx(0.25 / (n * 3.0))
    flat = torch.zeros(1, 3, 8, 8)  # no edges anywhere: plain MSE, not a division by zero
    assert vqvae.pixel_loss(flat + 0.5, flat, 2.0).item() == pytest.approx(0.25)
    torch.manual_seed(0)
    model, disc = vqvae.VQVAE(tiny()), vqvae.Discriminator(channels=8)
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    model.eval()  # the codebook stays put, so the reconstruction can be made again below
    out = vqvae.losses(model, disc, image, 0.0, 0.0, use_disc=False, edge_weight=2.0)
    recon, _, qloss = model(image)
    assert out["loss"].item() == pytest.approx((vqvae.pixel_loss(recon, image, 2.0) + qloss).item(), rel=1e-6)
    assert out["mse"].item() == pytest.approx(torch.nn.functional.mse_loss(recon, image).item(), rel=1e-6)


@pytest.mark.parametrize("weights, passes", [((0.0, 0.0), 0), ((0.1, 0.0), 2), ((0.0, 0.1), 2), ((0.1, 0.1), 2)])
def test_the_discriminator_sees_each_image_once_and_rests_when_its_losses_weigh_nothing(weights, passes):
    torch.manual_seed(0)
    model, disc = vqvae.VQVAE(tiny()), vqvae.Discriminator(channels=8)
    seen = []
    disc.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.train()(x)
    model.eval()  # the codebook stays put, so the reconstruction can be made again below
    out = vqvae.losses(model, disc, x, *weights, use_disc=True)
    assert len(seen) == passes and ("d_loss" in out) == bool(passes)
    if passes:
        recon = model(x)[0]
        assert torch.equal(seen[0], x) and torch.allclose(seen[1], recon)
        assert seen[1].requires_grad  # one pass over the reconstruction serves the generator and the critic
        if weights[0]:
            distance = perceptual.feature_distance(disc(x)[1], disc(recon)[1])
            assert out["perceptual"].item() == pytest.approx(distance.item(), rel=1e-5)
        adversarial = weights[1] * out["adaptive_weight"] * out["adversarial"] if weights[1] else 0.0
        assert out["loss"].item() == pytest.approx(
            (out["mse"] + out["quantizer"] + weights[0] * out.get("perceptual", 0.0) + adversarial).item(), rel=1e-6
        )
        want_d = vqvae.hinge_d_loss(disc(x)[0], disc(recon)[0])
        assert out["d_loss"].item() == pytest.approx(want_d.item(), rel=1e-5)


@pytest.mark.parametrize("frozen", [False, True])
def test_one_pass_over_images_and_reconstructions_gives_the_two_passes_losses_and_gradients(frozen, tmp_path):
    from vqgen import weights

    torch.manual_seed(0)
    model, disc = vqvae.VQVAE(tiny()), vqvae.Discriminator(channels=8)
    features = weights.frozen_vgg(vgg_weights(tmp_path / "vgg16.safetensors")) if frozen else None
    batches = []
    for net in (disc, features) if frozen else (disc,):
        net.register_forward_hook(lambda module, args, out: batches.append(len(args[0])))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    model.train()(x)
    model.eval()  # the codebook stays put, so both calls reconstruct alike
    params = [*model.parameters(), *disc.parameters()]
    runs = []
    for one_pass in (False, True):
        out = vqvae.losses(model, disc, x, 0.1, 0.1, use_disc=True, features=features, one_pass=one_pass)
        runs.append((out, torch.autograd.grad(out["loss"] + out["d_loss"], params, allow_unused=True)))
    assert batches == [2, 2] * (2 if frozen else 1) + [4] * (2 if frozen else 1)
    (two, grads_two), (one, grads_one) = runs
    assert set(one) == set(two) >= {"perceptual", "adversarial", "d_loss"}
    for name in two:
        torch.testing.assert_close(one[name], two[name], rtol=1e-5, atol=1e-6, msg=name)
    assert sum(g is not None for g in grads_two) > len(list(disc.parameters()))  # both networks learn
    for a, b in zip(grads_one, grads_two):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_tokenizers_group_norm_is_torchs_and_keeps_channels_last_memory(dtype):
    torch.manual_seed(0)
    torchs, ours = torch.nn.GroupNorm(8, 16), vqvae.GroupNorm(8, 16)
    with torch.no_grad():
        torchs.weight.normal_(), torchs.bias.normal_()
    ours.load_state_dict(torchs.state_dict())
    x = torch.randn(2, 16, 8, 8).mul(3).add(1).to(dtype).contiguous(memory_format=torch.channels_last)
    y = ours(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    assert y.dtype == dtype
    torch.testing.assert_close(
        y.float(), torchs(x).float(), **({} if dtype == torch.float32 else dict(atol=0.05, rtol=0.02))
    )
    assert ours(x.contiguous()).is_contiguous()


def test_evaluator_features_and_loss():
    model = Evaluator(EvaluatorConfig(num_attributes=5, width=8, features=16))
    x = torch.rand(3, 3, 32, 32)
    logits, loss = model(x, torch.randint(0, 2, (3, 5)))
    assert logits.shape == (3, 5) and loss.item() > 0
    assert model.features(x).shape == (3, 16)


def test_rotate_turns_each_image_by_its_label_and_draws_every_label():
    x = torch.rand(64, 3, 16, 16)
    turned, k = rotate(x, torch.Generator().manual_seed(0))
    assert sorted(k.unique().tolist()) == [0, 1, 2, 3]
    for img, orig, r in zip(turned, x, k):
        assert torch.equal(img, torch.rot90(orig, int(r), dims=(1, 2)))
    model = Evaluator(EvaluatorConfig(num_attributes=0, width=8, features=16))
    logits, loss = model(turned, k)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, k).item())


def test_evaluator_learns_to_tell_rotations_apart():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16) * 0.5 - 0.25
    x[:, :, :3] = -1  # a dark band at the top: the image has an up
    model = Evaluator(EvaluatorConfig(num_attributes=0, width=8, features=16))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        turned, k = rotate(x, gen)
        loss = model(turned, k)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    turned, k = rotate(x, gen)
    assert (model.eval()(turned)[0].argmax(1) == k).float().mean() > 0.9


def test_augment_is_a_flip_and_a_shift_of_at_most_shift_pixels():
    import torch.nn.functional as F

    x = torch.rand(64, 3, 8, 8)
    out = augment(x, shift=2, generator=torch.Generator().manual_seed(0))
    seen = set()
    for img, orig in zip(out, x):
        padded = F.pad(orig[None], (2,) * 4, mode="reflect")[0]
        found = [
            (flip, dy - 2, dx - 2)
            for flip in (False, True)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(img, (padded.flip(2) if flip else padded)[:, dy : dy + 8, dx : dx + 8])
        ]
        assert found, "every output is a flipped or not, shifted crop within 2 pixels"
        seen.update(found)
    assert {flip for flip, _, _ in seen} == {False, True} and {dy for _, dy, _ in seen} == {-2, -1, 0, 1, 2}
    same = augment(x, shift=0, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(same, x))


def test_shuffle_patches_permutes_whole_tiles():
    from vqgen.models.evaluator import shuffle_patches

    x = torch.rand(3, 3, 16, 18)  # the 2 columns past the last whole tile stay put
    y = shuffle_patches(x, 4, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y) and torch.equal(x[..., 16:], y[..., 16:])
    tiles = lambda t: sorted(
        t[:, i : i + 4, j : j + 4].flatten().tolist()
        for i in range(0, 16, 4)  # noqa: E731
        for j in range(0, 16, 4)
    )
    for a, b in zip(x, y):
        assert tiles(a) == tiles(b)


@pytest.mark.parametrize("block", [1, 100, 16 * 300, 1 << 18])
def test_the_nearest_code_search_in_blocks_finds_the_nearest_code(block):
    torch.manual_seed(0)
    q = vqvae.VectorQuantizer(vqvae.VQVAEConfig(codebook_size=300, code_dim=8))
    flat = torch.randn(1001, 8)  # not a multiple of any block's rows
    exact = torch.cdist(flat.double(), q.codebook.detach().double()).argmin(1)
    assert torch.equal(q.indices(flat, block=block), exact)


@pytest.mark.parametrize("options", [{"factor_dim": 4}, {"l2_codes": True}, {"factor_dim": 4, "l2_codes": True}])
@pytest.mark.parametrize("ema_decay", [0.0, 0.99])
def test_factorised_and_l2_normalised_codes_round_trip(options, ema_decay, tmp_path):
    from vqgen import checkpoint

    torch.manual_seed(0)
    model = vqvae.VQVAE(tiny(ema_decay=ema_decay, **options))
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    model.train()(x)  # codebook initialised from the projected encoder vectors
    q = model.quantizer
    dim = options.get("factor_dim", 8)
    assert q.codebook.shape == (16, dim) and q.codes().shape == (16, dim)
    if options.get("l2_codes"):
        assert torch.allclose(q.codes().norm(dim=1), torch.ones(16), atol=1e-5)
    model.eval()
    recon, idx, _ = model(x)
    z = model.encoder(x).permute(0, 2, 3, 1).reshape(-1, 8)
    u = q.project(z)
    if options.get("l2_codes"):  # the nearest unit code is the most similar direction
        assert torch.equal(idx.flatten(), (u @ q.codes().t()).argmax(1))
    else:
        assert torch.equal(idx.flatten(), torch.cdist(u, q.codes()).argmin(1))
    assert torch.equal(model.encode(x), idx) and torch.allclose(model.decode(idx), recon.clamp(-1, 1), atol=1e-5)
    checkpoint.save(tmp_path / "t.safetensors", model, model.cfg)
    again, _ = checkpoint.load(tmp_path / "t.safetensors", vqvae.VQVAE, vqvae.VQVAEConfig)
    assert again.cfg == model.cfg and torch.equal(again.encode(x), idx)
    model.train()
    recon, _, loss = model(x)
    (recon.pow(2).mean() + loss).backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0  # straight through the projections
    if options.get("factor_dim"):
        assert q.project_in.weight.grad.abs().sum() > 0 and q.project_out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("grids", [2, 8])
def test_the_dead_code_threshold_scales_with_the_expected_use_per_code(grids):
    q = vqvae.VectorQuantizer(tiny(ema_decay=0.5, dead_code_fraction=0.25)).train()
    z = torch.randn(grids, 8, 4, 4)  # 16 vectors a grid for 16 codes: one expected use per code per grid
    q(z)
    threshold = q.dead_code_threshold(grids * 16)
    assert threshold == pytest.approx(0.25 * grids)
    for code in (3, 5):  # codes no input will pick: their use only decays, and they stay far away
        q.codebook[code], q.embed_sum[code] = 1e6, 1e6
    q.cluster_size[3], q.cluster_size[5] = 2.2 * threshold, 1.8 * threshold  # halved by the next step's decay
    q(z)
    assert q.codebook[3].abs().min() > 1e5  # 1.1 x the threshold: kept
    assert q.codebook[5].abs().max() < 1e3  # 0.9 x the threshold: restarted onto an encoder vector


def vgg_weights(path):
    """torchvision's VGG16 layout with random weights (the published ones are never downloaded)."""
    from safetensors.torch import save_file
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    save_file({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, path)
    return path


def test_a_frozen_vgg_gives_the_perceptual_loss_and_the_discriminator_rests(tmp_path):
    from vqgen import weights

    net = weights.frozen_vgg(vgg_weights(tmp_path / "vgg16.safetensors"))
    assert not any(p.requires_grad for p in net.parameters()) and not net.train().training
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert [f.shape[1:] for f in net(x)] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    torch.manual_seed(0)
    model, disc = vqvae.VQVAE(tiny()), vqvae.Discriminator(channels=8)
    seen = []
    disc.register_forward_hook(lambda module, args, out: seen.append(1))
    out = vqvae.losses(model, disc, x, 0.1, 0.0, use_disc=False, features=net)  # from the first step
    assert seen == [] and "d_loss" not in out
    assert out["loss"].item() == pytest.approx((out["mse"] + out["quantizer"] + 0.1 * out["perceptual"]).item())
    out["loss"].backward()
    assert model.decoder.net[-1].weight.grad.abs().sum() > 0 and all(p.grad is None for p in net.parameters())


def test_vgg_weights_of_another_layout_are_one_sentence(tmp_path):
    from safetensors.torch import save_file

    from vqgen import weights

    save_file({"features.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "small.safetensors")
    with pytest.raises(weights.WeightsError, match=r"small.safetensors does not hold VGG16 weights of the expected"):
        weights.frozen_vgg(tmp_path / "small.safetensors")


@pytest.mark.parametrize("how", ["all", "causal", "mask"])
def test_attention_in_bf16_on_a_cpu_is_written_out_and_equals_torchs_fused_attention(how):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in "qkv")
    mask = torch.rand(1, 5, generator=g) > 0.4 if how == "mask" else None  # keys some queries may not see
    if mask is not None:
        mask[0, 0] = True
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=how == "causal")
    low = [x.bfloat16() for x in (q, k, v)]
    got = transformer.attend(*low, mask=mask, causal=how == "causal")
    assert torch.equal(got, transformer.written_out(*low, mask=mask, causal=how == "causal"))
    assert not torch.equal(got, F.scaled_dot_product_attention(*low, attn_mask=mask, is_causal=how == "causal"))
    torch.testing.assert_close(got.float(), want, atol=0.03, rtol=0.02)
    written = transformer.written_out(q, k, v, mask=mask, causal=how == "causal")
    torch.testing.assert_close(written, want, atol=1e-6, rtol=1e-5)
    assert how == "all" or not torch.allclose(written, transformer.written_out(q, k, v), atol=1e-3)  # the mask matters
