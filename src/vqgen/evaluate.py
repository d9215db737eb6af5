"""Measures of quality: PSNR, codebook usage, Fréchet distance in the evaluator's feature space."""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg


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


@torch.no_grad()
def features(evaluator: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Penultimate evaluator features (N, F) of images (N, 3, S, S) in [-1, 1]."""
    device = next(evaluator.parameters()).device
    out = [evaluator.features(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017), in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # near-singular product: regularise both covariances
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
