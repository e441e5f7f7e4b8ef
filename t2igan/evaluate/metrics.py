"""Metric maths: Fréchet distance, R-precision, per-concept means, diversity."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


# ================================================================================================ metric maths
def _f64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def sqrtm_psd(a) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via eigendecomposition (float64, eigenvalues < 0
    from round-off clipped to 0). Returns the symmetric S with S @ S = a."""
    a = _f64(a)
    a = (a + a.T) / 2
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64, unbiased) of features [N, C]."""
    x = _f64(features)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 feature rows [N, C], got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½: the symmetric form, stable for singular covariances."""
    mu1, mu2, sigma1, sigma2 = _f64(mu1), _f64(mu2), _f64(sigma1), _f64(sigma2)
    root1 = sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    return max(fd, 0.0)


def frechet_distance(x, y) -> float:
    """Fréchet distance between Gaussian fits of two feature sets [N, C] and [M, C]."""
    return frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))


def r_precision_hits(image_emb: torch.Tensor, true_text: torch.Tensor, distractors: torch.Tensor) -> torch.Tensor:
    """Per image [N] (bool): its true caption scores strictly higher (cosine) than every distractor.

    image_emb [N, D], true_text [N, D], distractors [N, K, D] (all unit vectors, or they are normalised here).
    """
    img = F.normalize(image_emb.float(), dim=-1)
    true = (img * F.normalize(true_text.float(), dim=-1)).sum(-1)
    other = torch.einsum("nd,nkd->nk", img, F.normalize(distractors.float(), dim=-1))
    if other.shape[1] == 0:
        return torch.ones(len(img), dtype=torch.bool)
    return true > other.max(1).values


def r_precision(image_emb: torch.Tensor, true_text: torch.Tensor, distractors: torch.Tensor) -> float:
    """Fraction of images whose true caption scores strictly higher (cosine) than every distractor."""
    return float(r_precision_hits(image_emb, true_text, distractors).float().mean())


def per_concept_means(values: torch.Tensor, concepts: Sequence[str]) -> np.ndarray:
    """The mean of `values` within each concept, one entry per concept."""
    per: dict[str, list[float]] = {}
    for v, c in zip(values.float().tolist(), concepts):
        per.setdefault(c, []).append(v)
    return np.array([np.mean(v) for v in per.values()])


def mean_over_concepts(values: torch.Tensor, concepts: Sequence[str]) -> float:
    """Mean per concept, then over concepts: every concept counts once, however many images it has (emoji: a
    person with 5 skin tones × 2 styles weighs as much as an object with 2 styles)."""
    return float(per_concept_means(values, concepts).mean())


def standard_error(per_concept: np.ndarray) -> float | None:
    """How far the mean of per-concept values would move with another draw of concepts and noise (None for one)."""
    n = len(per_concept)
    return float(per_concept.std(ddof=1) / np.sqrt(n)) if n > 1 else None


def r_precision_by(hits: torch.Tensor, concepts: Sequence[str], values: Sequence[str]) -> dict[str, dict]:
    """Per value of a metadata field (emoji: category): {"r_precision": per-concept mean of `hits`, "se": its
    standard error over concepts, "concepts": n}. A category of 20 concepts reads ±0.1: without the error a single
    draw looks like a gain or a loss that another seed takes back."""
    rows: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        rows.setdefault(v, []).append(i)
    out = {}
    for v, idx in sorted(rows.items()):
        per = per_concept_means(hits[idx], [concepts[i] for i in idx])
        out[v] = {"r_precision": float(per.mean()), "se": standard_error(per), "concepts": len(per)}
    return out


def mean_pairwise_cosine_distance(features: torch.Tensor, centre: torch.Tensor | None = None) -> float:
    """Mean of 1 − cos over all distinct pairs of rows (rows centred by `centre` first when given)."""
    x = features.double()
    if centre is not None:
        x = x - centre.double()
    n = len(x)
    if n < 2:
        return float("nan")
    x = F.normalize(x, dim=-1)
    sim = x @ x.T
    return max(0.0, float((1 - (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))).item()))  # ≥ 0 despite round-off
