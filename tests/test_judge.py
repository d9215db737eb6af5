"""The judge is sensitive: on the default (synthetic) data, with a briefly trained evaluator and
tokenizer, its measures rank real images, degraded real images, VQ reconstructions and decoded
random tokens in the expected order. If they don't, the judge cannot tell good models from bad."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from vqgen import evaluate, train
from vqgen.data import celeba, images, synthetic
from vqgen.models import evaluator, vqvae
from vqgen.models.evaluator import SEEN, Evaluator, EvaluatorConfig, augment


def fit(model, losses, iters, lr):
    train.fit(losses, [("loss", train.adamw(model, lr))], iters, lr)
    return model.eval()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("judge") / "raw"
    synthetic.write_synthetic(root, 1600, seed=1, workers=2)
    paths, attrs, _ = celeba.read_layout(root)
    faces = np.stack([images.load_face(p, 140, 64) for p in paths])
    labels = torch.tensor(attrs.to_numpy(), dtype=torch.float32)
    x = images.to_tensor(faces[:1200])
    gen = torch.Generator().manual_seed(0)
    stream = train.Batches(torch.arange(1200), 64, gen)

    judge_model = Evaluator(EvaluatorConfig(num_attributes=40, width=16))
    judge_model.balance(labels[:1200])

    def judge_loss(it):
        rows = next(stream)
        return {"loss": evaluator.loss(judge_model, augment(x[rows], generator=gen), labels[rows], gen)}

    fit(judge_model, judge_loss, 150, 2e-3)
    tok = vqvae.VQVAE(vqvae.VQVAEConfig(channels=16))
    disc = vqvae.Discriminator()
    batches = train.Batches(x, 32, gen)
    train.fit(
        lambda it: vqvae.losses(tok, disc, next(batches), 0.1, 0.0, use_disc=it >= 100),
        [("loss", train.adamw(tok, 1e-3)), ("d_loss", train.adamw(disc, 1e-3))],
        250,
        1e-3,
    )
    tok.eval()
    view = lambda t: evaluate.judge(judge_model, [t])  # noqa: E731
    real_a, real_b = images.to_tensor(faces[1200:1400]), images.to_tensor(faces[1400:])
    ref = view(real_a)
    seen = evaluate.balanced_accuracy(ref["attributes"], labels[1200:1400]) >= SEEN  # as the pipeline's attr_tv
    return view, ref, real_b, tok, seen


def test_measures_rank_degradations_reconstructions_and_noise(world):
    view, ref, real, tok, seen = world
    assert seen.sum() >= 5, seen  # attr_tv below is measured over these, as in the pipeline
    measure = lambda t: evaluate.compare(ref, view(t.clamp(-1, 1)), seen=seen)  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    floor = measure(real)
    blurred = [measure(TF.gaussian_blur(real, 9, sigma)) for sigma in (0.8, 1.6, 3.2)]
    noisy = [measure(real + s * torch.randn(real.shape, generator=gen)) for s in (0.1, 0.3, 0.6)]
    with torch.no_grad():
        recon = measure(tok.decode(tok.encode(real)))
        grid = tok.encode(real[:1]).shape[1:]
        random = measure(tok.decode(torch.randint(0, 256, (len(real), *grid), generator=gen)))
    one_image = 1 / len(real)  # precision and recall count images: a step of one image is a tie
    # attr_tv saturates once the judge calls at chance, and then moves by sampling noise: each rate of 200
    # images called at random has a standard deviation of up to 0.035, their mean over the seen attributes
    # about 0.02, the difference of two such means 0.03 (0.032 measured on a saturated blur ladder)
    chance = 0.06
    for series in (blurred, noisy):  # stronger degradation: farther, less precise, less recalled
        for key, order, tie in (
            ("fd", 1, 0),
            ("precision", -1, one_image),
            ("recall", -1, one_image),
            ("attr_tv", 1, chance),
        ):
            values = [order * m[key] for m in [floor, *series]]
            assert all(b >= a - tie - 1e-9 for a, b in zip(values, values[1:])), (key, values)
            assert values[0] < values[-1], (key, values)
    assert floor["fd"] < recon["fd"] < random["fd"]
    assert random["precision"] < recon["precision"] and random["precision"] < floor["precision"]
    assert floor["attr_tv"] < random["attr_tv"]
    assert floor["recall"] > 0.5
