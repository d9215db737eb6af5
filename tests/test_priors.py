"""The transformer and the priors built on it: losses, and samplers on toy problems whose answer is known."""

import math

import pytest
import torch

from vqgen import checkpoint, graphs
from vqgen.config import Diffusion
from vqgen.models.transformer import UNSPECIFIED, Transformer, TransformerConfig
from vqgen.priors import PRIORS, UNDECIDED, diffusion, guidance, masked, prefix_mask, restore, uniform_x0
from vqgen.priors.base import categorical

GRID = (4, 4)
K = 16
DATA = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]).view(GRID)
SETTINGS = {"ar": {}, "uniform": {"steps": 50}, "masked": {"steps": 6}, "uniform_x0": {"steps": 6}}


def tiny(name, **sizes):
    torch.manual_seed(0)
    return PRIORS[name].create(K, GRID, **{"n_layer": 2, "n_head": 2, "n_embd": 32, **sizes})


def perfect(name):
    """A prior whose transformer, set by hand, is sure of DATA at every position whatever its input:
    positions are one-hot embeddings, every block adds nothing, the head maps position i to DATA[i]."""
    t = GRID[0] * GRID[1]
    prior = tiny(name, n_layer=1, n_head=1, n_embd=t)
    with torch.no_grad():
        for p in prior.model.parameters():
            p.zero_()
        prior.model.pos_emb.weight[prior.prefix :].copy_(torch.eye(t))
        prior.model.ln_f.weight.fill_(1.0)
        prior.model.head.weight[DATA.flatten(), torch.arange(t)] = 100.0
    prior.model.eval()
    return prior


def train(prior, data, iters, lr=3e-3):
    opt = torch.optim.AdamW(prior.model.parameters(), lr=lr)
    first = prior.loss(data).item()
    for _ in range(iters):
        loss = prior.loss(data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    prior.model.eval()
    return first, loss.item()


def test_causal_logits_ignore_the_future():
    model = tiny("ar").model.eval()
    x = torch.randint(0, K, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % K
    a, _ = model(x)
    b, _ = model(y)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-5)
    assert not torch.allclose(a[0, 10:], b[0, 10:], atol=1e-5)


def test_cached_decoding_matches_the_full_forward():
    model = tiny("ar").model.eval()
    x = torch.randint(0, K + 1, (2, 16))
    full, _ = model(x)
    caches = model.new_caches()
    step = [model(x[:, :5], caches=caches)[0]]
    step += [model(x[:, t : t + 1], caches=caches, start=t)[0] for t in range(5, 16)]
    assert torch.allclose(full, torch.cat(step, 1), atol=1e-5)


@pytest.mark.parametrize("attributes", [0, 3])
def test_the_decoding_step_is_the_cached_forward_bit_for_bit(attributes):
    torch.manual_seed(0)
    model = PRIORS["ar"].create(K, GRID, attributes=["a", "b", "c"][:attributes], n_layer=2, n_head=2, n_embd=32).model
    if attributes:
        torch.nn.init.normal_(model.attr_emb.weight)  # trained embeddings: the request must count
    model.eval()
    x = torch.randint(0, K + 1, (3, 16))
    cond = model.condition(torch.tensor([[1, 0, UNSPECIFIED], [0, 1, 1], [UNSPECIFIED] * 3])) if attributes else None
    forward, decode = model.new_caches(), model.new_caches()
    step = model.decoder(decode, cond)  # one for every position, as the sampler takes it
    model(x[:, :4], caches=forward, cond=cond), model(x[:, :4], caches=decode, cond=cond)
    for t in range(4, 16):
        expected = model(x[:, t : t + 1], caches=forward, start=t, cond=cond)[0][:, -1]
        assert torch.equal(step(x[:, t], t), expected)


@pytest.mark.parametrize("attributes", [0, 3])
def test_the_step_at_a_tensor_position_reads_only_the_positions_before_it(attributes):
    # the form a CUDA graph replays: the whole cache, later positions masked (filled with garbage here)
    torch.manual_seed(0)
    model = PRIORS["ar"].create(K, GRID, attributes=["a", "b", "c"][:attributes], n_layer=2, n_head=2, n_embd=32).model
    if attributes:
        torch.nn.init.normal_(model.attr_emb.weight)
    model.eval()
    x = torch.randint(0, K + 1, (3, 16))
    cond = model.condition(torch.tensor([[1, 0, UNSPECIFIED], [0, 1, 1], [UNSPECIFIED] * 3])) if attributes else None
    exact, static = model.new_caches(), model.new_caches()
    model(x[:, :4], caches=exact, cond=cond), model(x[:, :4], caches=static, cond=cond)
    for cache in static:
        cache.k[:, :, 4 + model.prefix :], cache.v[:, :, 4 + model.prefix :] = 1e3, -1e3
    step = model.decoder(static, cond)
    for t in range(4, 16):
        expected = model.decode(x[:, t], exact, t, cond)
        got = step(x[:, t], torch.tensor(t))
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(got.argmax(-1), expected.argmax(-1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("name", ["ar", "masked"])
def test_a_captured_cuda_step_draws_the_eager_samplers_tokens(name):
    prior = tiny(name, attributes=["a", "b", "c"])
    torch.nn.init.normal_(prior.model.attr_emb.weight)
    prior.model.to("cuda").eval()
    request = torch.tensor([[1, 0, UNSPECIFIED]] * 4 + [[0, 1, 1]] * 4, device="cuda")
    settings = {**SETTINGS[name], "request": request, "guidance": 2.0}

    def draw():
        return prior.sample(8, generator=torch.Generator("cuda").manual_seed(0), **settings).tokens

    captured = draw()
    with graphs.disabled():
        eager = draw()
    assert torch.equal(captured, eager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_a_replayed_graph_computes_its_function_of_new_inputs():
    weight = torch.randn(8, 8, device="cuda")
    step = graphs.Replayed(lambda x, y: (x @ weight).relu() + y)
    for _ in range(3):
        x, y = torch.randn(4, 8, device="cuda"), torch.randn(4, 8, device="cuda")
        torch.testing.assert_close(step(x, y).clone(), (x @ weight).relu() + y)
    assert len(step.graphs) == 1
    step(torch.randn(2, 8, device="cuda"), torch.randn(2, 8, device="cuda"))
    assert len(step.graphs) == 2  # a new shape, a new capture


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_perfect_model_recovers_the_data_exactly(name):
    prior = perfect(name)
    for temperature in (0.5, 1.0, 1.5):
        draw = prior.sample(5, temperature=temperature, generator=torch.Generator().manual_seed(0), **SETTINGS[name])
        assert torch.equal(draw.tokens, DATA.expand(5, *GRID))
    if name == "uniform":  # random tokens are all replaced in one step, the next changes nothing, then clean-up
        assert draw.steps.tolist() == [3] * 5


@pytest.mark.parametrize("name", list(SETTINGS))
def test_completion_and_inpainting_never_change_given_tokens(name):
    prior = tiny(name)
    prior.model.eval()
    given = torch.randint(0, K, (6, *GRID))
    known = torch.rand(6, *GRID, generator=torch.Generator().manual_seed(1)) < 0.5
    known[0] = False  # nothing given: a sample from nothing
    known[1] = True  # everything given: nothing to draw
    draw = prior.sample(given=given, known=known, generator=torch.Generator().manual_seed(0), **SETTINGS[name])
    assert torch.equal(draw.tokens[known], given[known])
    assert draw.tokens.min() >= 0 and draw.tokens.max() < K
    assert draw.steps[1] == (1 if name == "uniform" else 0)  # nothing to draw: the uniform clean-up pass only


def test_the_masked_schedule_counts_are_known_before_sampling():
    # 64 x cos(pi/2 x k/4) = 59.1, 45.3, 24.5, 0; 3 tokens: at least one decided a step; none stays none
    assert masked.still_masked(torch.tensor([64, 3, 0]), 4).T.tolist() == [
        [64, 59, 45, 24, 0],
        [3, 2, 1, 0, 0],
        [0, 0, 0, 0, 0],
    ]


@pytest.mark.parametrize("order", masked.ORDERS)
def test_the_masked_sampler_fills_exactly_the_scheduled_number_of_tokens_per_step(order):
    prior = tiny("masked")
    steps = 5
    known = torch.zeros(3, *GRID, dtype=torch.bool)
    known[1, 0, 0] = True  # 15 to draw
    known[2, :3] = True  # 4 to draw: fewer than the steps at the end of the schedule
    draw = prior.sample(
        given=torch.zeros(3, *GRID, dtype=torch.long),
        known=known,
        steps=steps,
        order=order,
        trajectory=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(draw.trajectory) == steps + 1
    for row, unknown in enumerate((16, 15, 4)):
        left = [int((f[row] == UNDECIDED).sum()) for f in draw.trajectory]
        want = [unknown]
        for s in range(steps):
            want.append(max(0, min(want[-1] - 1, math.floor(unknown * math.cos(math.pi / 2 * (s + 1) / steps)))))
        assert left == want, row
        assert want[-1] == 0 and all(a > b for a, b in zip(want, want[1:]) if a)  # progress every step
    assert draw.steps.tolist() == [5, 5, 4]


def test_halton_turns_follow_the_halton_sequence_and_visit_every_cell_once():
    # points i = 1, 2, 3 of bases (2, 3): (1/2, 1/3), (1/4, 2/3), (3/4, 1/9) -> rows 2, 1, 3 and columns 1, 2, 0 of 4x4
    assert masked.halton_turns(4, 4).view(4, 4).tolist() == [
        [10, 3, 13, 7],
        [5, 9, 1, 11],
        [8, 0, 15, 4],
        [2, 12, 6, 14],
    ]
    for h, w in ((8, 8), (16, 16), (4, 8)):
        assert sorted(masked.halton_turns(h, w).tolist()) == list(range(h * w))


def test_in_halton_order_no_two_tokens_decided_in_one_default_step_share_an_edge():
    """8x8 grid, 12 steps: a random order would put about 10 pairs of neighbours in the same step."""
    turns = masked.halton_turns(8, 8)
    cell = {int(turn): (i // 8, i % 8) for i, turn in enumerate(turns)}
    left = [64] + [math.floor(64 * math.cos(math.pi / 2 * (s + 1) / 12)) for s in range(12)]
    for before, after in zip(left, left[1:]):
        decided = [cell[turn] for turn in range(64 - before, 64 - after)]
        pairs = [(a, b) for i, a in enumerate(decided) for b in decided[i + 1 :]]
        assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) > 1 for a, b in pairs)


def test_the_halton_sampler_decides_the_unknown_positions_in_their_halton_turns():
    prior = tiny("masked")
    known = torch.zeros(2, *GRID, dtype=torch.bool)
    known[1, 1:3] = True  # 8 given: the other 8 are decided in their turns among themselves
    draw = prior.sample(
        given=torch.zeros(2, *GRID, dtype=torch.long), known=known, steps=5, trajectory=True, order="halton"
    )
    turns = masked.halton_turns(*GRID).view(GRID)
    for row in range(2):
        for frame in draw.trajectory:
            decided = turns[(frame[row] != UNDECIDED) & ~known[row]]
            undecided = turns[frame[row] == UNDECIDED]
            assert len(undecided) == 0 or len(decided) == 0 or decided.max() < undecided.min()
    with pytest.raises(ValueError, match="order is 'raster'; use one of halton, confidence."):
        prior.sample(2, steps=2, order="raster")


def test_confidence_is_the_untempered_log_probability_and_its_noise_grows_as_the_temperature_falls():
    logits = torch.randn(3, 5, K, generator=torch.Generator().manual_seed(0))
    logits[..., 7] = 50.0  # every draw is code 7 at these temperatures
    logp = torch.log_softmax(logits, -1)[..., 7]
    for temperature in (0.5, 1.0, 2.0):
        draw, confidence = masked.confident_draws(logits, temperature, 0.0, torch.Generator().manual_seed(1))
        assert (draw == 7).all()
        assert torch.equal(confidence, logp)  # at a low temperature, not log(1): the order stays the model's
    cold = masked.confident_draws(logits, 0.5, 1.0, torch.Generator().manual_seed(1))[1]
    warm = masked.confident_draws(logits, 1.0, 2.0, torch.Generator().manual_seed(1))[1]
    assert torch.allclose(cold, warm) and not torch.allclose(cold, logp)


def test_decoding_starts_at_temperature_one_and_ends_at_the_temperature_asked_as_the_noise_dies():
    assert masked.annealed(0.5, 4.5, 1 / 12) == pytest.approx((1 - 0.5 / 12, 4.5 * 11 / 12))
    assert masked.annealed(0.5, 4.5, 0.5) == pytest.approx((0.75, 2.25))
    assert masked.annealed(0.5, 4.5, 1.0) == (0.5, 0.0)
    assert masked.annealed(1.0, 4.5, 0.25) == (1.0, 4.5 * 0.75)  # at temperature 1 only the noise moves


def test_the_masked_loss_hides_a_cosine_share_and_scores_only_hidden_tokens():
    prior = tiny("masked")
    torch.manual_seed(0)
    x = torch.randint(0, K, (4000, *GRID))
    idx, targets = prior.hide(x)
    hidden = idx == K
    assert hidden.any(1).all()  # at least one hidden token per grid
    t = GRID[0] * GRID[1]
    share = sum(math.ceil(t * math.cos(math.pi / 2 * (i + 0.5) / 10000)) for i in range(10000)) / 10000 / t
    assert hidden.float().mean().item() == pytest.approx(share, abs=0.01)  # E[ceil(T cos(pi/2 r))] / T, r ~ U(0, 1)
    assert torch.equal(targets[hidden], x.flatten(1)[hidden]) and (targets[~hidden] == -100).all()
    assert torch.equal(idx[~hidden], x.flatten(1)[~hidden])
    logits, _ = prior.model(idx)
    manual = torch.nn.functional.cross_entropy(logits[hidden], x.flatten(1)[hidden])
    torch.manual_seed(0)
    torch.randint(0, K, (4000, *GRID))
    assert prior.loss(x).item() == pytest.approx(manual.item(), rel=1e-5)  # the same hiding, scored where hidden


def test_ar_loss_decreases_and_sampling_follows_a_learned_sequence():
    prior = tiny("ar")
    data = torch.arange(16).view(1, *GRID).repeat(8, 1, 1)
    first, last = train(prior, data, 80, lr=1e-2)
    assert abs(first - math.log(K)) < 0.3 and last < 0.1 * first
    out = prior.sample(2, temperature=0.1).tokens
    assert torch.equal(out, data[:2])  # an off-by-one in sampling would shift the sequence


def test_ar_top_k_one_is_the_greedy_continuation():
    prior = tiny("ar")
    prior.model.eval()
    given = torch.randint(0, K, (3, *GRID))
    known = prefix_mask(3, GRID, 5)
    a, b = (
        prior.sample(
            given=given, known=known, top_k=1, temperature=2.0, generator=torch.Generator().manual_seed(seed)
        ).tokens
        for seed in (0, 1)
    )
    assert torch.equal(a, b)
    seq = given.flatten(1)[:, :5]
    for _ in range(11):  # greedy decoding by full forward passes
        start = torch.full((3, 1), K)
        logits, _ = prior.model(torch.cat([start, seq], 1))
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(a.flatten(1), seq)
    wide = prior.sample(given=given, known=known, top_k=0, temperature=2.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(wide.tokens, a)  # without the cut, a hot sampler leaves the greedy path


def test_corrupt_replaces_the_requested_fraction():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 10000, dtype=torch.long)
    y = diffusion.corrupt(x, torch.tensor([0.0, 0.25, 0.5, 1.0]), 1000, gen)
    changed = (y != x).float().mean(1)
    assert changed[0] == 0
    for got, want in zip(changed[1:], [0.25, 0.5, 1.0]):
        assert abs(got.item() - want * 0.999) < 0.02
    assert diffusion.corrupt(x[:1], 0.1, 1000, gen).ne(0).float().mean().item() == pytest.approx(0.1, abs=0.02)


def test_the_uniform_sampler_settles_at_a_low_temperature_instead_of_stalling():
    """The blog's objective mostly learns to copy its input (keeping a wrong token has probability ~0.8
    here); the sampler must still move towards the data at a low temperature, and settle."""
    prior = tiny("uniform")
    first, last = train(prior, DATA.expand(16, *GRID), 150)
    assert last < 0.5 * first
    for temperature in (0.3, 1.0):
        draw = prior.sample(
            32,
            temperature=temperature,
            steps=200,
            tolerance=0.02,
            generator=torch.Generator().manual_seed(0),
            trajectory=True,
        )
        start = (draw.trajectory[0] == DATA).float().mean().item()
        end = (draw.tokens == DATA).float().mean().item()
        assert start < 0.15 and end > 0.45, temperature
        assert draw.steps.max() < 200  # every grid settled before the cap
        assert len(draw.trajectory) == draw.steps.max() + 1


@pytest.mark.parametrize(
    "name, iters, order", [("masked", 300, "confidence"), ("masked", 300, "halton"), ("uniform_x0", 800, None)]
)
def test_a_parallel_decoded_prior_learns_a_toy_distribution_of_two_grids(name, iters, order):
    """Parallel decoding must commit to one mode: whole grids of the data, not a patchwork of both.
    Uniform noise takes longer to learn: the model must also tell which tokens are noise."""
    prior = tiny(name)
    other = (DATA + 1) % K  # differs from DATA at every position
    first, last = train(prior, torch.stack([DATA, other]).repeat(8, 1, 1), iters)
    assert last < 0.2 * first  # not 0: with most tokens noised either grid fits
    settings = {"order": order} if order else {}
    draw = prior.sample(40, steps=16, confidence_noise=1.0, generator=torch.Generator().manual_seed(0), **settings)
    a, b = (sum(torch.equal(g, mode) for g in draw.tokens) for mode in (DATA, other))
    assert a + b >= 32 and min(a, b) >= 3


def test_the_uniform_x0_loss_noises_a_cosine_share_tells_the_model_that_share_and_scores_every_position():
    prior = tiny("uniform_x0")
    with torch.no_grad():  # level ids far apart and a head far from uniform, so that a wrong level moves the loss
        prior.model.tok_emb.weight[K:].normal_(0, 1, generator=torch.Generator().manual_seed(2))
        prior.model.head.weight.normal_(0, 1, generator=torch.Generator().manual_seed(3))
    x = torch.randint(0, K, (20000, *GRID), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    noisy, share = prior.corrupt(x)
    t = GRID[0] * GRID[1]
    expected = sum(math.ceil(t * math.cos(math.pi / 2 * (i + 0.5) / 10000)) for i in range(10000)) / 10000 / t
    changed = (noisy != x.flatten(1)).float().mean(1)
    assert share.mean().item() == pytest.approx(expected, abs=0.005)
    assert changed.mean().item() == pytest.approx(expected * (1 - 1 / K), abs=0.006)  # a code is its old self 1 in K
    assert (changed <= share).all() and torch.equal(share * t, (share * t).round())  # the share noised, in tokens
    assert noisy.min() >= 0 and noisy.max() < K  # noise is codes, never a [MASK] id

    def scored(level):  # cross-entropy of the clean grid at every position, `level` the id before the grid
        logits, _ = prior.model(torch.cat([level[:, None], noisy], 1))
        return torch.nn.functional.cross_entropy(logits[:, 1:].reshape(-1, K), x.flatten()).item()

    torch.manual_seed(0)
    loss = prior.loss(x).item()  # the same noise
    assert loss == pytest.approx(scored(K + (share * 15).round().long()), abs=1e-5)
    assert abs(loss - scored(torch.full_like(share, K, dtype=torch.long))) > 1e-4  # 1e-3 here


def test_the_uniform_x0_sampler_leaves_the_scheduled_share_of_noise_after_each_step():
    """A model sure of DATA draws DATA everywhere; each step re-randomises the scheduled count of the
    least confident draws, so the tokens off DATA follow the cosine schedule down to none."""
    prior = perfect("uniform_x0")
    steps, n, t = 5, 400, GRID[0] * GRID[1]
    draw = prior.sample(n, steps=steps, trajectory=True, generator=torch.Generator().manual_seed(0))
    off = [(frame != DATA).sum((1, 2)).float().mean().item() for frame in draw.trajectory]
    want = [t] + [math.floor(t * math.cos(math.pi / 2 * (s + 1) / steps)) for s in range(steps)]
    assert off == pytest.approx([w * (1 - 1 / K) for w in want], abs=0.3)
    assert off[-1] == 0 and draw.steps.tolist() == [steps] * n


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_prior_survives_its_checkpoint(tmp_path, name):
    prior = (
        tiny(name, dropout=0.0)
        if name != "uniform"
        else PRIORS[name].create(K, GRID, {"extra_noise": 0.3}, n_layer=1, n_head=2, n_embd=16)
    )
    checkpoint.save(tmp_path / "p.safetensors", prior.model, prior.model.cfg, **prior.metadata())
    model, meta = checkpoint.load(tmp_path / "p.safetensors", Transformer, TransformerConfig)
    again = restore(model, meta)
    assert type(again) is type(prior) and again.grid == GRID and again.options() == prior.options()
    a, b = (p.sample(3, generator=torch.Generator().manual_seed(0), **SETTINGS[name]).tokens for p in (prior, again))
    assert torch.equal(a, b)


def test_every_diffusion_process_is_a_registered_prior():
    from vqgen import config

    assert set(config.PROCESSES) <= set(PRIORS)
    assert config.ORDERS == masked.ORDERS  # diffusion.order accepts what the masked sampler does
    assert {masked.MaskedDiffusion.name, uniform_x0.UniformX0Diffusion.name} <= set(config.PROCESSES)


def test_categorical_draws_each_code_at_its_probability_and_never_an_impossible_one():
    probs = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.2, 0.0])  # impossible codes first, between and last
    draw = categorical(probs.expand(400, 100, 6), torch.Generator().manual_seed(0))
    assert draw.shape == (400, 100)
    freq = torch.bincount(draw.flatten(), minlength=6).double() / draw.numel()
    assert freq[[0, 2, 5]].sum() == 0
    assert torch.allclose(freq, probs.double(), atol=0.0075)  # 40000 draws: 3 standard errors at most
    sure = categorical(torch.eye(6)[[5, 0, 3]], torch.Generator().manual_seed(1))
    assert sure.tolist() == [5, 0, 3]


def level_reader():
    """A uniform_x0 prior whose transformer, set by hand, predicts the code equal to its input noise level
    at every position, whatever the grid: level ids embed one-hot, codes as nothing; attention averages
    every position's value (queries and keys are zero), so each position sees the level; the head maps
    dimension i to code i."""
    prior = tiny("uniform_x0", n_layer=1, n_head=1, n_embd=K)
    levels = prior.levels
    assert levels == K  # one dimension per level and per code
    with torch.no_grad():
        for p in prior.model.parameters():
            p.zero_()
        prior.model.tok_emb.weight[K:].copy_(torch.eye(levels) * 10)
        block = prior.model.blocks[0]
        block.ln1.weight.fill_(1.0)
        block.attn.qkv.weight[2 * K :].copy_(torch.eye(K))  # values only
        block.attn.proj.weight.copy_(torch.eye(K))
        prior.model.ln_f.weight.fill_(1.0)
        prior.model.head.weight.copy_(torch.eye(K) * 100)
    prior.model.eval()
    return prior


def test_the_uniform_x0_sampler_tells_the_model_the_noise_left_before_each_step():
    """Every step draws the level it was given; the tokens kept after step s show the share of noise
    before it: all of the grid, then the cosine schedule's share, in sixteenths (t = 16)."""
    prior, steps, t = level_reader(), 4, GRID[0] * GRID[1]
    draw = prior.sample(3, steps=steps, trajectory=True, generator=torch.Generator().manual_seed(0))
    noise = [t] + [math.floor(t * math.cos(math.pi / 2 * s / steps)) for s in range(1, steps)]  # before each step
    levels = [round(n / t * 15) for n in noise]
    assert levels == [15, 13, 10, 6]
    for frame, level, left in zip(draw.trajectory[1:], levels, noise[1:] + [0]):
        assert ((frame == level).sum((1, 2)) >= t - left).all()  # the kept draws; the rest is noise
    assert torch.equal(draw.tokens, torch.full((3, *GRID), levels[-1]))
    given, known = torch.zeros(2, *GRID, dtype=torch.long), torch.zeros(2, *GRID, dtype=torch.bool)
    known[:, :2] = True  # 8 of 16 given: half the grid is noise at the start
    half = prior.sample(given=given, known=known, steps=1, generator=torch.Generator().manual_seed(0)).tokens
    assert (half[~known] == round(8 / 16 * 15)).all() and (half[known] == 0).all()


def test_each_samplers_keyword_defaults_are_params_yamls_defaults_and_its_checkpoint_records_them(tmp_path):
    import dataclasses

    from vqgen import config

    for name, cls in PRIORS.items():
        section = config.AR() if name == "ar" else config.Diffusion()
        assert set(cls.settings) <= {f.name for f in dataclasses.fields(section)}, name
        assert cls.defaults() == {key: getattr(section, key) for key in cls.settings}, name
    assert PRIORS["masked"].defaults()["temperature"] == 0.7 and PRIORS["uniform"].defaults()["steps"] == 4
    prior = tiny("masked")
    prior.sampling["temperature"] = 0.9  # what an older release's defaults would have been
    checkpoint.save(tmp_path / "p.safetensors", prior.model, prior.model.cfg, **prior.metadata())
    model, meta = checkpoint.load(tmp_path / "p.safetensors", Transformer, TransformerConfig)
    assert restore(model, meta).sampling == {**PRIORS["masked"].defaults(), "temperature": 0.9}


# Requests and classifier-free guidance.

A = 3  # attributes of the conditioned toy priors
REQUEST = torch.tensor([1, -1, 0])  # the first present, the second unspecified, the third absent


def conditioned(name, **sizes):
    """A toy prior on three attributes, whose attribute embeddings are set as if trained."""
    torch.manual_seed(0)
    sizes = {"n_layer": 2, "n_head": 2, "n_embd": 32, **sizes}
    prior = PRIORS[name].create(K, GRID, attributes=["a", "b", "c"], **sizes)
    with torch.no_grad():
        prior.model.attr_emb.weight.normal_(0, 0.5)
    return prior


def blind(name):
    """A conditioned prior, set by hand, whose logits depend on the request only. The token and
    position embeddings are zero (the request token's position too), so every position's input,
    the request token's included, is the request's sum alone (zero for the empty request), and the
    first block's attention is uniform (no queries, no keys); every other weight adds nothing. So c
    and u are the same at every position whatever the tokens, and the head is then set so that c - u
    is largest at code 0, leaving u."""
    prior, c = conditioned(name), 32
    model = prior.model
    with torch.no_grad():
        for key, p in model.named_parameters():
            if not key.startswith(("attr_emb", "head", "ln_f", "blocks.0.ln1", "blocks.0.attn")):
                p.zero_()
        attn = model.blocks[0].attn
        attn.qkv.weight[: 2 * c] = 0
        attn.qkv.weight[2 * c :].normal_(0, 1)
        attn.proj.weight.normal_(0, 10)  # large values: the layer norm's epsilon is negligible at every scale
        attn.qkv.bias.zero_(), attn.proj.bias.zero_()
        model.ln_f.bias.normal_(0, 0.3)
        model.head.weight.normal_(0, 0.7)
        h_c, h_u = hidden(model, REQUEST), hidden(model, None)
        d = model.head(h_c) - model.head(h_u)
        r = h_c - (h_c @ h_u) / (h_u @ h_u) * h_u  # raises code 0's c, leaves its u
        model.head.weight[0] += (1 + d.max() - d[0]) * r / (r @ h_c)
    model.eval()
    return prior


def hidden(model, request):
    """The input of the head at the last position, under `request` (or none)."""
    seen = []
    hook = model.ln_f.register_forward_hook(lambda m, i, out: seen.append(out[0, -1]))
    x = torch.zeros(1, model.cfg.block_size, dtype=torch.long)
    model(x, request=None if request is None else request[None])
    hook.remove()
    return seen[0]


def known_logits(prior, b):
    x = torch.zeros(b, prior.model.cfg.block_size, dtype=torch.long)
    c_all, u_all = prior.model(x, request=REQUEST.expand(b, A))[0], prior.model(x)[0]
    c, u = c_all[:, -1], u_all[:, -1]
    assert torch.allclose(c, c[:1].expand_as(c)) and (c - u).abs().max() > 0.5  # (c - u) is a known vector
    assert torch.allclose(c_all, c[:, None].expand_as(c_all), atol=1e-4)  # the same at every position
    assert torch.allclose(u_all, u[:, None].expand_as(u_all), atol=1e-4)
    return c[0], u[0]


def guided_by_hand(c, u, scale, min_p):
    """u + scale (c - u), -inf on the codes whose probability under c is below min_p times the largest."""
    p = torch.softmax(c, -1)
    return torch.where(p < min_p * p.max(), float("-inf"), u + scale * (c - u))


def drawn_by_hand(c, u, scale, min_p, guided):
    """The logits a sampler draws from: guided by hand, or c itself where it does not guide (s = 1)."""
    return guided_by_hand(c, u, scale, min_p) if guided else c


@pytest.mark.parametrize("min_p", [0.0, 0.2])
@pytest.mark.parametrize("schedule", ["constant", "linear"])
@pytest.mark.parametrize("s", [0.0, 1.0, 2.5])
def test_the_ar_sampler_draws_every_token_from_u_plus_s_times_c_minus_u(s, schedule, min_p):
    prior, b, t = blind("ar"), 5, GRID[0] * GRID[1]
    c, u = known_logits(prior, b)
    got = prior.sample(
        b,
        request=REQUEST,
        guidance=s,
        guidance_schedule=schedule,
        temperature=0.8,
        min_p=min_p,
        generator=torch.Generator().manual_seed(3),
    ).tokens.flatten(1)
    gen, want = torch.Generator().manual_seed(3), []
    for pos in range(t):  # the sampler draws one uniform per grid per position, in this order
        scale = s if schedule == "constant" else 1 + (s - 1) * (pos + 1) / t
        probs = torch.softmax(drawn_by_hand(c, u, scale, min_p, s != 1) / 0.8, -1).expand(b, K)
        want.append(categorical(probs, gen))
    assert torch.equal(got, torch.stack(want, 1))
    p = torch.softmax(c, -1)
    assert (p < min_p * p.max()).sum() >= 2 * (min_p > 0)  # the rule removes codes here
    if min_p and s != 1:  # and no guided draw is one of them
        assert (p[got] >= min_p * p.max()).all()


@pytest.mark.parametrize("min_p", [0.0, 0.2])
@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_the_masked_sampler_draws_each_step_from_u_plus_s_times_c_minus_u(schedule, min_p):
    prior, b, t, steps, s = blind("masked"), 4, GRID[0] * GRID[1], 5, 3.0
    c, u = known_logits(prior, b)
    draw = prior.sample(
        b,
        request=REQUEST,
        guidance=s,
        guidance_schedule=schedule,
        steps=steps,
        temperature=0.6,
        min_p=min_p,
        order="halton",
        generator=torch.Generator().manual_seed(5),
        trajectory=True,
    )
    gen = torch.Generator().manual_seed(5)
    for step in range(steps):  # each step draws every position, then one uniform each for the confidence noise
        scale = s if schedule == "constant" else 1 + (s - 1) * (step + 1) / steps
        heat, _ = masked.annealed(0.6, Diffusion.confidence_noise, (step + 1) / steps)
        guided = torch.log_softmax(guided_by_hand(c, u, scale, min_p), -1)  # s = 3: every step guided
        drawn = categorical(torch.softmax(guided / heat, -1).expand(b, t, K), gen)
        torch.rand((b, t), generator=gen)
        new = (draw.trajectory[step] == UNDECIDED) & (draw.trajectory[step + 1] != UNDECIDED)
        assert new.any() and torch.equal(draw.trajectory[step + 1][new], drawn.view(b, *GRID)[new])


@pytest.mark.parametrize("name", list(PRIORS))
def test_a_strong_guidance_draws_what_the_request_favours_and_none_means_unconditional(name):
    prior = blind(name)
    c, u = known_logits(prior, 1)
    favoured = int((c - u).argmax())
    assert favoured == 0
    settings = {**SETTINGS[name], "temperature": 1.0}
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    pushed = prior.sample(6, request=REQUEST, guidance=60.0, generator=gen(), **settings).tokens
    assert (pushed == favoured).float().mean() > 0.9
    free = prior.sample(6, generator=gen(), **settings).tokens
    open_request = prior.sample(6, request=torch.full((A,), -1), guidance=1.0, generator=gen(), **settings).tokens
    unguided = prior.sample(6, guidance=60.0, generator=gen(), **settings).tokens  # no request: nothing to guide
    assert torch.equal(free, open_request) and torch.equal(free, unguided)
    assert (free == favoured).float().mean() < 0.5


@pytest.mark.parametrize("name", list(PRIORS))
def test_guidance_one_is_the_conditional_sampler_token_for_token(name):
    prior, gen = conditioned(name), lambda: torch.Generator().manual_seed(1)  # noqa: E731
    prior.model.eval()
    settings = SETTINGS[name]
    one = prior.sample(6, request=REQUEST, guidance=1.0, generator=gen(), **settings).tokens
    again = prior.sample(
        6, request=REQUEST.expand(6, A), guidance=1.0, guidance_schedule="linear", generator=gen(), **settings
    ).tokens
    guided = prior.sample(6, request=REQUEST, guidance=4.0, generator=gen(), **settings).tokens
    assert torch.equal(one, again) and not torch.equal(one, guided)
    if "min_p" in prior.settings:  # min_p filters guided draws only: unguided ones are the model's own
        filtered = prior.sample(6, request=REQUEST, guidance=1.0, min_p=0.9, generator=gen(), **settings).tokens
        assert torch.equal(one, filtered)


def test_the_guided_ar_sampler_with_its_doubled_cache_equals_the_guided_recomputation():
    prior = conditioned("ar")
    prior.model.eval()
    request = torch.tensor([[1, 0, -1], [0, -1, 1], [-1, -1, -1]])
    kw = dict(request=request, guidance=2.5, guidance_schedule="linear")
    cached = prior.sample(3, generator=torch.Generator().manual_seed(2), **kw).tokens
    recomputed = prior.sample(3, generator=torch.Generator().manual_seed(2), cache=False, **kw).tokens
    assert torch.equal(cached, recomputed)
    given, known = DATA.expand(3, *GRID), prefix_mask(3, GRID, 5)
    done = prior.sample(given=given, known=known, generator=torch.Generator().manual_seed(2), **kw).tokens
    again = prior.sample(given=given, known=known, generator=torch.Generator().manual_seed(2), cache=False, **kw).tokens
    assert torch.equal(done, again) and torch.equal(done.flatten(1)[:, :5], given.flatten(1)[:, :5])


@pytest.mark.parametrize("grid", [(4, 4), (8, 8)])
@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("guided", [False, True])
def test_the_ar_sampler_with_its_preallocated_cache_draws_what_recomputation_draws(grid, batch, guided):
    torch.manual_seed(0)
    prior = PRIORS["ar"].create(K, grid, attributes=["a", "b", "c"], n_layer=2, n_head=2, n_embd=32)
    with torch.no_grad():
        prior.model.attr_emb.weight.normal_(0, 0.5)
    prior.model.eval()
    kw = dict(request=torch.tensor([1, -1, 0]), guidance=2.0) if guided else {}
    cached = prior.sample(batch, generator=torch.Generator().manual_seed(4), **kw).tokens
    recomputed = prior.sample(batch, generator=torch.Generator().manual_seed(4), cache=False, **kw).tokens
    assert torch.equal(cached, recomputed)
    assert len(cached.unique()) > K // 2  # random weights: many codes drawn, so an error would show
    again = prior.sample(batch, generator=torch.Generator().manual_seed(4), **kw).tokens
    assert torch.equal(cached, again)  # a fresh cache each time: nothing left over from the last call


def test_training_requests_drop_whole_requests_and_single_attributes_to_unspecified():
    torch.manual_seed(0)
    attrs = torch.randint(0, 2, (4000, 40))
    assert torch.equal(guidance.dropped(attrs, 0.0, 0.0), attrs)
    assert (guidance.dropped(attrs, 1.0, 0.0) == UNSPECIFIED).all()
    partial = guidance.dropped(attrs, 0.0, 1.0)
    kept = partial != UNSPECIFIED
    assert torch.equal(partial[kept], attrs[kept])
    assert abs(kept.float().mean() - 0.5) < 0.02  # each grid keeps a uniformly drawn share
    share = kept.float().mean(1)
    assert (share < 0.1).float().mean() > 0.05 and (share > 0.9).float().mean() > 0.05
    mixed = guidance.dropped(attrs, 0.1, 0.5)
    rows = mixed != UNSPECIFIED
    assert abs((~rows).all(1).float().mean() - 0.1) < 0.02 and abs(rows.all(1).float().mean() - 0.45) < 0.03
    model = conditioned("masked").model
    null = model.condition(torch.full((2, A), UNSPECIFIED))  # the empty request adds nothing to any input
    assert torch.equal(null, torch.zeros(2, 1, 32)) and model.condition(attrs[:2, :A]).abs().sum() > 0


def test_schedules_and_the_guided_mix_have_their_known_values():
    assert guidance.scale(3.0, "constant", 0.1) == 3.0
    assert guidance.scale(3.0, "linear", 0.25) == 1.5 and guidance.scale(3.0, "linear", 1.0) == 3.0
    c, u = torch.tensor([1.0, 4.0]), torch.tensor([2.0, 0.0])
    assert torch.equal(guidance.guide(c, u, 2.0), torch.tensor([0.0, 8.0]))


def test_min_p_keeps_guidance_from_lifting_a_code_neither_model_would_draw():
    c, u = torch.tensor([0.0, -1.0, -6.0]), torch.tensor([0.0, -1.5, -12.0])  # code 2: e^-6 under c, e^-12 under u
    inf = float("-inf")
    assert torch.equal(guidance.guide(c, u, 3.0), torch.tensor([0.0, 0.0, 6.0]))  # guided, it is the likeliest
    assert torch.equal(guidance.guide(c, u, 3.0, min_p=0.1), torch.tensor([0.0, 0.0, inf]))  # e^-1 > 0.1 > e^-6
    assert torch.equal(guidance.guide(c, u, 3.0, min_p=0.5), torch.tensor([0.0, inf, inf]))  # e^-1 < 0.5
    assert torch.equal(guidance.guide(c, u, 0.0, min_p=1.0), torch.tensor([0.0, inf, inf]))  # the likeliest under c


def test_an_unconditional_prior_refuses_a_request_in_one_sentence():
    with pytest.raises(ValueError, match="trained without attributes; it takes no request"):
        tiny("masked").sample(2, request=REQUEST, steps=2)


@pytest.mark.parametrize("count", [3, 8, 40])
def test_training_attributes_survive_the_checkpoint_packed_eight_to_a_byte(tmp_path, count):
    torch.manual_seed(0)
    attrs = torch.randint(0, 2, (301, count), dtype=torch.int8)
    prior = PRIORS["masked"].create(K, GRID, attributes=[f"a{i}" for i in range(count)], n_layer=1, n_embd=16)
    prior.data_attributes = attrs
    assert prior.extras()["data_attributes"].shape == (301, math.ceil(count / 8))
    path = tmp_path / "p.safetensors"
    checkpoint.save(path, prior.model, prior.model.cfg, prior.extras(), **prior.metadata())
    model, meta = checkpoint.load(path, Transformer, TransformerConfig)  # the weights alone
    again = restore(model, meta, checkpoint.extras(path))
    assert torch.equal(again.data_attributes, attrs)
    assert checkpoint.parameters(path) == sum(p.numel() for p in prior.model.parameters())
    plain = tiny("masked")
    assert plain.extras() == {} and plain.data_requests(4) is None


def test_data_requests_are_rows_of_the_training_attributes_drawn_uniformly_by_the_generator():
    prior = conditioned("masked")
    prior.data_attributes = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=torch.int8)
    drawn = prior.data_requests(3000, torch.Generator().manual_seed(0))
    rows = (drawn[:, None, :] == prior.data_attributes.long()[None]).all(-1)  # (N, 3): which row each draw is
    assert rows.sum(1).eq(1).all()
    assert rows.float().mean(0).sub(1 / 3).abs().max() < 0.03
    again = prior.data_requests(3000, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again) and not torch.equal(drawn, prior.data_requests(3000, torch.Generator()))
