"""Measures of quality: PSNR and codebook usage of the tokenizer; Fréchet distance, k-NN precision
and recall, and attribute statistics of image sets in the feature space of the trained evaluator."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from vqgen.weights import checked, load_tensors


def psnr(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [-1, 1], averaged over images."""
    mse = (real - fake).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(4.0 / mse)).mean())


def codebook_usage(tokens: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Fraction of codes used at least once, and the perplexity of the code distribution."""
    counts = np.bincount(np.asarray(tokens).ravel().astype(np.int64), minlength=codebook_size)
    p = counts / max(1, counts.sum())
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    return {"codebook_usage": float((counts > 0).mean()), "codebook_perplexity": float(np.exp(entropy))}


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix, negative rounding errors clipped."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017), in float64.

    tr((S1 S2)^1/2) is computed as tr((S1^1/2 S2 S1^1/2)^1/2), a symmetric matrix whose eigenvalues
    are real: stable for singular covariances (fewer samples than dimensions, dead features)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(len(a), len(b)) < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 samples per set, got {len(a)} and {len(b)}")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = _sqrt_psd(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
    return float(max(0.0, ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """k-NN manifold precision and recall (Kynkäänniemi et al. 2019): the share of generated samples
    inside the union of real samples' k-NN balls, and the share of real samples inside the generated ones."""
    real, fake = torch.from_numpy(np.asarray(real, np.float64)), torch.from_numpy(np.asarray(fake, np.float64))
    if not 1 <= k < min(len(real), len(fake)) - 1:
        raise ValueError(
            f"k-NN precision and recall need 1 <= k < set size - 1; k is {k} for sets of {len(real)} and {len(fake)}."
        )

    def radii(x: torch.Tensor) -> torch.Tensor:  # distance of each point to its k-th nearest other point
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    def inside(ref: torch.Tensor, ref_radii: torch.Tensor, query: torch.Tensor) -> float:
        return float((torch.cdist(query, ref) <= ref_radii[None, :]).any(dim=1).double().mean())

    return {"precision": inside(real, radii(real), fake), "recall": inside(fake, radii(fake), real)}


def attribute_tv(p: np.ndarray, q: np.ndarray, seen: np.ndarray | None = None) -> float:
    """Mean over attributes (those where `seen` is True, if given) of the total-variation distance
    |p - q| between two sets of 0/1 frequencies."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if seen is not None:
        p, q = p[..., seen], q[..., seen]
    return float(np.abs(p - q).mean()) if p.size else 0.0


SURE = 3.0  # standard errors of a difference of rates beyond which sampling noise does not explain it


def _off(x, y, n: int, m: int, share: float, z: float):
    """Whether a rate x counted over n images is off a reachable rate y counted over m by more than
    `share` of y and, at z > 0, by more than z standard errors of the difference of the two (pooled)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    off = np.abs(x - y) > share * y
    if z > 0:
        pooled = (n * x + m * y) / (n + m)
        off &= np.abs(x - y) > z * np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return off


def rates_off(
    rates: dict[str, float],
    reachable: dict[str, float],
    share: float = 1 / 3,
    *,
    counts: tuple[int, int] | None = None,
    z: float = SURE,
) -> list[str]:
    """The attributes whose rate (the share of a set in which the judge calls them) is off the rate a
    prior can reach (that of the reconstructions) by more than `share` of it; given the `counts` = (n, m)
    of images the two rates are counted over, only those also off by more than z standard errors:
    the ones sampling noise does not explain."""
    n, m = counts or (1, 1)
    z = z if counts else 0.0
    return [name for name, r in reachable.items() if name in rates and _off(rates[name], r, n, m, share, z)]


def rates_off_by_chance(reachable: Iterable[float], n: int, m: int, share: float = 1 / 3, z: float = 0.0) -> float:
    """How many attributes `rates_off` names, on average, for a prior whose samples have exactly the
    reachable rates, its rates counted over n samples and the reachable ones over m images: the floor
    that sampling noise alone sets. Exact, over the two binomial counts of every attribute."""
    total = 0.0
    for r in reachable:
        px, py = (
            torch.distributions.Binomial(k, probs=torch.tensor(float(r), dtype=torch.float64))
            .log_prob(torch.arange(k + 1, dtype=torch.float64))
            .exp()
            .numpy()
            for k in (n, m)
        )
        off = _off(np.arange(n + 1)[:, None] / n, np.arange(m + 1)[None, :] / m, n, m, share, z)
        total += float((px[:, None] * py[None, :] * off).sum())
    return total


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(A,) the mean of the true-positive and true-negative rates of each column of 0/1 predictions
    (N, A) against 0/1 truth: 0.5 for a classifier that always gives the same answer, however rare
    the attribute. Where the truth holds one class only, the accuracy on that class."""
    predicted, truth = np.asarray(predicted) > 0, np.asarray(truth) > 0
    rates = []
    for cls in (truth, ~truth):
        count = cls.sum(0)
        hits = (predicted == truth) & cls
        rates.append(np.where(count > 0, hits.sum(0) / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(rates), 0)


@torch.no_grad()
def judge(evaluator: torch.nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, np.ndarray]:
    """The evaluator's view of a set of images: penultimate features (N, F) and, where it predicts
    attributes, its 0/1 call of each attribute of each image (N, A)."""
    device = next(evaluator.parameters()).device
    feats, hits = [], []
    for x in batches:
        f = evaluator.features(x.to(device))
        feats.append(f.cpu())
        hits.append((evaluator.head(f) > 0).cpu())
    out = {"features": torch.cat(feats).double().numpy()}
    if evaluator.cfg.num_attributes:
        out["attributes"] = torch.cat(hits).numpy().astype(np.uint8)
    return out


def compare(
    real: dict[str, np.ndarray], fake: dict[str, np.ndarray], k: int = 3, seen: np.ndarray | None = None
) -> dict[str, float]:
    """Every measure between two judged image sets: fd, precision, recall, and attr_tv (over the
    attributes `seen`, if given) and inception_fid where both sets have attribute predictions and
    Inception features."""
    out = {
        "fd": frechet_distance(real["features"], fake["features"]),
        **precision_recall(real["features"], fake["features"], k),
    }
    if "attributes" in real:
        out["attr_tv"] = attribute_tv(real["attributes"].mean(0), fake["attributes"].mean(0), seen)
    if "inception" in real:
        out["inception_fid"] = frechet_distance(real["inception"], fake["inception"])
    return out


TORCHVISION_WEIGHTS = "inception_v3_google-0cc3c7bd.pth"  # torchvision's ImageNet Inception-v3
FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's port of the TF original


def find_inception(path: str = "") -> Path | None:
    """Inception-v3 weights already on disk: `path` if given, else the file that torch-fidelity's or
    torchvision's own download would have left in the torch hub cache. Never downloads."""
    if path:
        return Path(path) if Path(path).is_file() else None
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    return next((cache / name for name in (FIDELITY_WEIGHTS, TORCHVISION_WEIGHTS) if (cache / name).is_file()), None)


class Inception:
    """Pool features (2048) of Inception-v3 for the true FID (Heusel et al. 2017): torch-fidelity's
    port of the original TensorFlow network (the standard) when given its weights file, else
    torchvision's ImageNet network."""

    def __init__(self, weights: Path, device: torch.device | str = "cpu"):
        self.device = device
        self.standard = weights.name.startswith("weights-inception-2015-12-05")
        state = load_tensors(weights)
        if self.standard:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

            # torch-fidelity unpickles whatever it is given (weights_only=False): hand it only our own
            # re-serialisation of tensors that were loaded safely, never the file itself.
            buffer = io.BytesIO()
            torch.save(state, buffer)
            buffer.seek(0)
            self.net = checked(
                weights,
                lambda: FeatureExtractorInceptionV3(
                    "inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer
                ),
            )
        else:
            from torchvision.models import inception_v3

            self.net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
            checked(weights, lambda: self.net.load_state_dict(state))
            self.net.fc = torch.nn.Identity()
        self.net.to(device).eval()

    @torch.no_grad()
    def __call__(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        """Features (N, 2048) of batches of images (B, 3, S, S) in [-1, 1]."""
        out = []
        for x in batches:
            x = x.to(self.device)
            if self.standard:  # it takes uint8 images and resizes them itself
                out.append(self.net(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))[0].cpu())
                continue
            x = torch.nn.functional.interpolate((x + 1) / 2, size=(299, 299), mode="bilinear", align_corners=False)
            mean = torch.tensor([0.485, 0.456, 0.406], device=self.device).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225], device=self.device).view(1, 3, 1, 1)
            out.append(self.net((x - mean) / std).cpu())
        return torch.cat(out).double().numpy()
