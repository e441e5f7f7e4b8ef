"""Offline evaluation: FD, R-precision and diversity measured with a small evaluator trained on the dataset itself.

No internet, no Inception weights: the feature space comes from `Evaluator`, a 0.75 M-parameter CNN (3 MB) for
64-px images, trained CLIP/DAMSM-style on the dataset's *train* split to match images with their captions' sentence
embeddings (the same frozen text encoder the generator uses, 'minilm' by default). Shipped in `weights/evaluator/`;
train one with `train_evaluator` / `t2igan evaluator`.

    image ─► [stride-2 conv stage] × 4 (32-64-128-256) ─► mean pool ─► f (256-d) ─► Linear ─► L2-norm ─► v (384-d)
                                                                                │                            │
                                                    Fréchet distance, diversity ┘       R-precision (cos v·text) ┘

**Never use the evaluator as a training loss** (not for the generator, not for a re-ranker during training): a
generator optimised against it learns to fool this particular small network, and every number below then stops
measuring image quality. It is a ruler, not a teacher. The trainer may only *report* `quick_metrics`.

Metrics (`evaluate_model`, `t2igan eval MODEL`), each beside a reference measured the same way on real images:

* **FD** — Fréchet distance between Gaussian fits of evaluator features `f` of generated images (one per real image
  of the split, from one of its captions, seed = `seed` + image index) and of the real images. FD is biased upward
  at small N, so each model number sits beside a reference at the same N: `fd` (all N generated vs all N real) beside
  `fd_other_split` (real train vs real test images at equal N: real quality, other concepts — roughly what a model
  that draws the training emoji perfectly but not the held-out ones would score), and `fd_halves` (images generated
  for a random half A of the captions vs the real images of the other half B) beside `fd_real_halves` (real A vs
  real B: the floor from sampling noise alone), with two quality anchors on that row: half A's real images blurred
  (down-sampled to 16 px / 8 px and back) vs real half B. The space is semantic (trained to match captions): it
  reacts strongly to wrong content, collapse and noise, less to blur, so it does not replace looking at samples.
* **R-precision** — for each generated image, is its caption ranked first (cosine in the evaluator's joint space)
  among the true caption and 99 random captions of *other* concepts (captions shared with the true concept are never
  used as distractors)? The *ceiling* is the same test on the real images with the same captions and distractors;
  chance is 1 / (1 + 99). Random distractors are mostly easy (a face caption against a flag's); **R-precision among
  look-alikes** ranks the same caption against the names of the 9 other concepts nearest to it in the evaluator's text
  space instead ("frowning face" against "angry face", "grimacing face", ...; chance 1 / 10), with its ceiling on
  the real images the same way: whether the image shows *which* of several similar things was asked for.
* **Diversity** — mean pairwise cosine distance between mean-centred features `f` of K seeds of one prompt (the
  concept's name, e.g. "nail polish"), averaged over prompts. The real reference is the same statistic over the
  real images that share that exact name: for the emoji set the Google and Twitter drawings of one emoji, i.e. the
  spread that one prompt legitimately covers. ratio = generated / real: ≈ 1 is healthy, ≪ 1 is mode collapse, ≫ 1
  means the image ignores the prompt (compare with "any two real images", the spread of the whole split).

A concept is the metadata field `base` where metadata.jsonl has one (emoji: all skin tones and vendors of an
emoji), else the image's first caption. Held-out (test) concepts are hard for a GAN trained on ~1.8 k concepts;
`split='train'` measures the same on a subsample of the training images (the evaluator saw those too, so its
ceiling there is optimistic).
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .model_lock import SerialBuild

# (prompts, seeds) -> images [N, 3, H, W] in [-1, 1] (any H = W; resized to the evaluator's resolution)
GenerateFn = Callable[[Sequence[str], Sequence[int]], torch.Tensor]

EVALUATOR_NAME = "evaluator"
TRAINING_INFO = "training.json"
N_DISTRACTORS = 99
N_LOOK_ALIKES = 9  # R-precision among look-alikes: the true caption against this many nearest other concepts' names


# ================================================================================================ the network
class Evaluator(SerialBuild, ModelMixin, ConfigMixin):
    """Image → pooled features `f` (for FD and diversity) and a unit vector in the text encoder's space (matching).

    Four stride-2 stages (3×3 conv, then a 3×3 conv — a 1×1 in the last stage to stay small), GroupNorm after every
    conv but the first (so absolute colour reaches the network unnormalised), ReLU, global mean pool, linear head.
    Deterministic per image: no batch statistics, so a batch's composition never changes an image's numbers.
    """

    @register_to_config
    def __init__(self, resolution: int = 64, widths: tuple[int, ...] | list[int] = (32, 64, 128, 256),
                 embed_dim: int = 384, groups: int = 8, text_encoder_id: str = "minilm"):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or resolution < 2 ** len(widths) or resolution & (resolution - 1):
            raise ValueError(f"Evaluator: resolution must be a power of two >= {2 ** len(widths)}, got {resolution}")
        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(widths):
            last = i == len(widths) - 1
            layers += [nn.Conv2d(cin, w, 3, stride=2, padding=1)]
            if i > 0:
                layers += [nn.GroupNorm(math.gcd(groups, w), w)]
            layers += [nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 1) if last else nn.Conv2d(w, w, 3, padding=1),
                       nn.GroupNorm(math.gcd(groups, w), w), nn.ReLU(inplace=True)]
            cin = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # learnable temperature (CLIP)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Float images in [-1, 1] (or uint8 0..255) of any square size → the evaluator's size, dtype and device."""
        if images.dtype == torch.uint8:
            images = images.float().div(127.5).sub(1.0)
        images = images.to(self.device, torch.float32)
        size = self.config.resolution
        if images.shape[-1] != size or images.shape[-2] != size:
            down = images.shape[-1] > size
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=down)
        return images

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features [B, feature_dim] (the space for Fréchet distance and diversity)."""
        return self.body(self.prepare(images)).mean((2, 3))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Features → unit vectors [B, embed_dim] comparable (cosine) with sentence embeddings."""
        return F.normalize(self.head(features), dim=-1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(images)
        return f, self.project(f)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, embeddings) on the CPU in float32, in batches, in eval mode."""
        was = self.training
        self.eval()
        fs, vs = [], []
        for i in range(0, len(images), batch_size):
            f, v = self(images[i : i + batch_size])
            fs.append(f.float().cpu()), vs.append(v.float().cpu())
        self.train(was)
        if not fs:
            return torch.zeros(0, self.feature_dim), torch.zeros(0, self.config.embed_dim)
        return torch.cat(fs), torch.cat(vs)


def evaluator_path(evaluator: str | os.PathLike | None = None) -> Path:
    """None → weights/evaluator (beside the models); a bare name → weights/<name>; anything else: a folder path."""
    from .weights import NAME_RE, weights_dir

    if evaluator is None or str(evaluator) == "":
        return weights_dir() / EVALUATOR_NAME
    text = str(evaluator)
    if NAME_RE.match(text) and not Path(text).exists():
        return weights_dir() / text
    return Path(text).expanduser()


def load_evaluator(evaluator: str | os.PathLike | Evaluator | None = None, device=None) -> Evaluator:
    """Load an evaluator folder (config.json + safetensors; never pickle), in eval mode."""
    if isinstance(evaluator, Evaluator):
        return evaluator.eval() if device is None else evaluator.to(device).eval()
    path = _existing_evaluator(evaluator)
    model = Evaluator.from_pretrained(str(path), use_safetensors=True)
    return model.to(device or "cpu").eval()


def _existing_evaluator(evaluator) -> Path:
    path = evaluator_path(evaluator)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no evaluator at {path}: train one with "
            "`t2igan evaluator --data data/emoji/train --val data/emoji/test --out weights/evaluator --minutes 12`")
    return path


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


# ================================================================================================ data helpers
def _resolve_split(data_dir: str | os.PathLike, split: str) -> tuple[Path, Path | None]:
    """(folder of the split, folder of the other split or None). A dataset root holds train/ and test/; a folder
    that is itself an image dataset is used as it is."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"no dataset at {root}: build it with `t2igan data emoji --out {root}`")
    if (root / split).exists():
        other = root / ("train" if split == "test" else "test")
        return root / split, other if other.exists() else None
    return root, None


def concept_keys(data, folder: Path) -> list[str]:
    """Concept key per image: metadata.jsonl's 'base' where present (emoji: every vendor and skin tone of one emoji),
    else the image's first caption."""
    base_of: dict[str, str] = {}
    meta = folder / "metadata.jsonl" if folder.is_dir() else None
    if meta is not None and meta.is_file():
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get("base") and row.get("file_name"):
                base_of[str(row["file_name"]).replace("\\", "/").lstrip("./")] = str(row["base"])
    return [base_of.get(f, caps[0]) for f, caps in zip(data.files, data.captions)]


def _caption_table(encoder, captions: list[str]) -> torch.Tensor:
    from .paths import cache_dir

    try:
        return encoder.encode_to_disk_cache(captions, cache_dir() / "captions")
    except OSError:  # read-only home: embed in memory
        return torch.cat([encoder.encode(captions[i : i + 256]) for i in range(0, len(captions), 256)])


def _text_encoder(text_encoder, evaluator: Evaluator):
    from .text import TextEncoder

    enc = text_encoder if isinstance(text_encoder, TextEncoder) else TextEncoder.from_pretrained(
        text_encoder or evaluator.config.text_encoder_id)
    if enc.dim != evaluator.config.embed_dim:
        raise ValueError(f"the text encoder gives {enc.dim}-d embeddings but the evaluator was trained for "
                         f"{evaluator.config.embed_dim}-d ({evaluator.config.text_encoder_id})")
    return enc


def pipeline_generate_fn(pipe, truncation: float | None = None) -> GenerateFn:
    """A T2IGANPipeline as a GenerateFn: image k of a call is (prompts[k], seeds[k]); output in [-1, 1]. Draws at
    `truncation`, or (None) at the model's own default, as `t2igan generate` and the app do."""
    from .pipeline import noise_for_seeds

    def generate(prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        z = noise_for_seeds([int(s) for s in seeds], pipe.generator.config.z_dim)
        out = pipe(list(prompts), latents=z, truncation=truncation, output_type="pt").images
        return out.float() * 2 - 1

    return generate


def _as_generate_fn(model, truncation: float | None, device=None, threads=None) -> tuple[GenerateFn, str, object]:
    """(generate function, display name, the pipeline or None)."""
    if isinstance(model, (str, os.PathLike)) or model is None:
        from .weights import load_pipeline, resolve_model

        name = str(resolve_model(model))
        pipe = load_pipeline(model, device=device, threads=threads)
        return pipeline_generate_fn(pipe, truncation), name, pipe
    if hasattr(model, "generator") and hasattr(model, "encode_prompt"):
        return pipeline_generate_fn(model, truncation), type(model).__name__, model
    if callable(model):
        return model, getattr(model, "__name__", "generate_fn"), None
    raise TypeError(f"evaluate: expected a model name/folder, a pipeline or a generate(prompts, seeds) callable, "
                    f"got {type(model).__name__}")


def _drawn_at(pipe, truncation: float | None) -> float | None:
    """The noise scale a model is evaluated at: the one asked for, else the pipeline's own default."""
    if pipe is None:  # a generate(prompts, seeds) callable draws its own noise
        return None
    return float(truncation if truncation is not None else pipe.config.get("default_truncation", 1.0))


def _generate_images(generate: GenerateFn, prompts: list[str], seeds: list[int], batch_size: int) -> list[torch.Tensor]:
    out = []
    for i in range(0, len(prompts), batch_size):
        with torch.no_grad():
            images = generate(prompts[i : i + batch_size], seeds[i : i + batch_size])
        images = torch.as_tensor(images).detach().float().cpu()
        if images.ndim != 4 or images.shape[0] != len(prompts[i : i + batch_size]) or images.shape[1] != 3:
            raise ValueError(f"generate() must return [N, 3, H, W] images in [-1, 1], got {tuple(images.shape)}")
        out.append(images.clamp(-1, 1))
    return out


# ================================================================================================ the evaluation
@dataclass
class _Group:
    prompt: str
    rows: list[int]


class EvalContext:
    """Everything about an evaluation that does not depend on the model: real images, their evaluator features,
    the caption each image is evaluated with, the distractor captions and the real-image references. Build it once,
    then `run(generate)` for any number of models or training steps (that is what `quick_metrics` caches)."""

    def __init__(self, data_dir: str | os.PathLike = "data/emoji", split: str = "test",
                 evaluator: str | os.PathLike | Evaluator | None = None, n_prompts: int | None = None,
                 seed: int = 0, diversity_prompts: int = 32, diversity_seeds: int = 8,
                 n_distractors: int = N_DISTRACTORS, text_encoder=None, device=None, other_split: bool = True,
                 max_prompts: int = 1000, by: str | None = None):
        from .data import DataConfig, load_captioned_images
        from .text import nearest_rows

        t0 = time.perf_counter()
        self.evaluator = load_evaluator(evaluator, device=device)
        self.evaluator_path = str(evaluator_path(evaluator)) if not isinstance(evaluator, Evaluator) else "(in memory)"
        self.split, self.seed = split, int(seed)
        self.diversity_seeds = int(diversity_seeds)
        folder, other = _resolve_split(data_dir, split)
        self.data_path = str(folder)
        res = self.evaluator.config.resolution
        data, _ = load_captioned_images(folder, DataConfig(resolution=res, min_pairs=2, group_by=by))
        concepts = concept_keys(data, folder)
        rng = np.random.RandomState(self.seed)
        n_all = len(data)
        n = min(n_all, int(n_prompts) if n_prompts else max_prompts)
        if n < 2:
            raise ValueError("evaluation needs at least 2 images")
        self.rows = sorted(rng.choice(n_all, n, replace=False).tolist()) if n < n_all else list(range(n_all))
        # one caption per evaluated image, fixed by the seed
        self.prompts = [data.captions[i][rng.randint(len(data.captions[i]))] for i in self.rows]
        # caption embeddings (the evaluator's text encoder; cached on disk per caption set)
        encoder = _text_encoder(text_encoder, self.evaluator)
        unique = data.unique_captions()
        index = {c: k for k, c in enumerate(unique)}
        table = _caption_table(encoder, unique)
        concept_captions: dict[str, set[int]] = {}
        for caps, c in zip(data.captions, concepts):
            concept_captions.setdefault(c, set()).update(index[x] for x in caps)
        # distractors: random captions never used for the true concept
        dis_rows = []
        for i in self.rows:
            banned = concept_captions[concepts[i]]
            k = min(n_distractors, len(unique) - len(banned))
            picked: list[int] = []
            for j in rng.permutation(len(unique)):
                if int(j) not in banned:
                    picked.append(int(j))
                    if len(picked) == k:
                        break
            dis_rows.append(picked)
        k_min = min(len(r) for r in dis_rows)
        self.n_candidates = 1 + k_min
        self.distractor_captions = [[unique[j] for j in r[:k_min]] for r in dis_rows]
        self.concepts = [concepts[i] for i in self.rows]
        self.true_text = table[torch.tensor([index[p] for p in self.prompts])]
        dis = torch.tensor([r[:k_min] for r in dis_rows], dtype=torch.long).reshape(len(self.rows), k_min)
        self.distractors = table[dis]
        # look-alike distractors: the names (first captions) of other concepts nearest to the evaluated caption
        names = sorted({index[caps[0]] for caps in data.captions})
        near = nearest_rows(self.true_text, table, names, [concept_captions[concepts[i]] for i in self.rows],
                            N_LOOK_ALIKES)
        self.n_look_alike_candidates = 1 + near.shape[1]
        self.look_alike_captions = [[unique[j] for j in r] for r in near.tolist()]
        self.look_alikes = table[near]
        # real features and the references
        self.real_f, self.real_v = self.evaluator.encode(data.images[self.rows])
        self.centre = self.real_f.mean(0)
        real_hits = r_precision_hits(self.real_v, self.true_text, self.distractors)
        self.refs: dict[str, float | int | None] = {
            "r_precision_real": float(real_hits.float().mean()),
            "r_precision_look_alikes_real": r_precision(self.real_v, self.true_text, self.look_alikes),
            "r_precision_concepts_real": mean_over_concepts(real_hits, self.concepts)}
        # --by FIELD: per-concept R-precision within each value of a metadata field (emoji: category)
        self.by = by
        self.by_values = [data.groups[i] if data.groups[i] != data.files[i] else f"(no {by})" for i in self.rows
                          ] if by else None
        if self.by_values:
            self.refs["r_precision_by_real"] = r_precision_by(real_hits, self.concepts, self.by_values)
        half = rng.permutation(len(self.rows))
        a, b = half[: len(half) // 2], half[len(half) // 2 : 2 * (len(half) // 2)]
        self.half_a, self.half_b = torch.as_tensor(a), torch.as_tensor(b)
        self.refs["fd_real_halves"] = frechet_distance(self.real_f[a], self.real_f[b]) if len(a) >= 2 else None
        self.refs["fd_real_halves_n"] = int(len(a))
        # quality anchors on the same row: half A's real images blurred (down to 16 / 8 px and back) vs real half B
        real_a = data.images[[self.rows[int(i)] for i in a]].float().div(127.5).sub(1.0)
        for px in (16, 8):
            key = f"fd_real_halves_blur{px}"
            self.refs[key] = None
            if len(a) >= 2 and res > px:
                small = F.interpolate(real_a, size=(px, px), mode="area")
                blurred = F.interpolate(small, size=(res, res), mode="bilinear", align_corners=False)
                self.refs[key] = frechet_distance(self.evaluator.encode(blurred)[0], self.real_f[b])
        self.refs["fd_other_split"], self.refs["fd_other_split_n"] = None, None
        self.refs["other_split"] = other.name if other_split and other is not None else None
        if other_split and other is not None:
            odata, _ = load_captioned_images(other, DataConfig(resolution=res, min_pairs=2))
            m = min(len(odata), len(self.rows))
            orows = np.random.RandomState(self.seed + 1).choice(len(odata), m, replace=False)
            of, _ = self.evaluator.encode(odata.images[torch.as_tensor(orows)])
            mine = np.random.RandomState(self.seed + 2).choice(len(self.rows), m, replace=False)
            self.refs["fd_other_split"] = frechet_distance(self.real_f[mine], of)
            self.refs["fd_other_split_n"] = int(m)
        # diversity: prompts = names shared by several real images (vendors of one emoji)
        by_name: dict[str, list[int]] = {}
        for i, caps in enumerate(data.captions):
            by_name.setdefault(caps[0], []).append(i)
        groups = [_Group(name, rows) for name, rows in by_name.items() if len(rows) >= 2]
        self.has_real_groups = bool(groups)
        if not groups:  # every name is unique: no same-prompt real spread to compare with (ratio is n/a)
            groups = [_Group(name, rows) for name, rows in by_name.items()]
        if len(groups) > diversity_prompts:
            pick = sorted(np.random.RandomState(self.seed + 3).choice(len(groups), diversity_prompts, replace=False))
            groups = [groups[i] for i in pick]
        self.groups = groups
        real_div = []
        for g in groups if self.has_real_groups else []:
            gf, _ = self.evaluator.encode(data.images[g.rows])
            real_div.append(mean_pairwise_cosine_distance(gf, self.centre))
        self.refs["diversity_real"] = float(np.mean(real_div)) if real_div else None
        self.refs["diversity_real_any"] = mean_pairwise_cosine_distance(self.real_f, self.centre)
        self.info = {"split": split, "data": self.data_path, "n": len(self.rows),
                     "concepts": len({concepts[i] for i in self.rows}),
                     "evaluator": self.evaluator_path, "seed": self.seed, "r_precision_candidates": self.n_candidates,
                     "r_precision_chance": 1.0 / self.n_candidates,
                     "r_precision_look_alikes_candidates": self.n_look_alike_candidates,
                     "diversity_prompts": len(groups),
                     "diversity_seeds": self.diversity_seeds, "setup_s": time.perf_counter() - t0}

    @torch.no_grad()
    def run(self, generate: GenerateFn, batch_size: int = 64) -> dict:
        """Generate (fixed prompts and seeds), embed with the evaluator, and return metrics + references."""
        t0 = time.perf_counter()
        seeds = [self.seed + i for i in self.rows]
        images = _generate_images(generate, self.prompts, seeds, batch_size)
        gen_f, gen_v = map(torch.cat, zip(*(self.evaluator.encode(x) for x in images)))
        out = dict(self.info)
        out["fd"] = frechet_distance(gen_f, self.real_f)
        out["fd_n"] = len(self.rows)
        # N-matched with fd_real_halves: images generated for half A's captions vs the real images of half B
        out["fd_halves"] = (frechet_distance(gen_f[self.half_a], self.real_f[self.half_b])
                            if len(self.half_a) >= 2 else None)
        hits = r_precision_hits(gen_v, self.true_text, self.distractors)
        out["r_precision"] = float(hits.float().mean())
        per = per_concept_means(hits, self.concepts)
        out["r_precision_concepts"], out["r_precision_concepts_se"] = float(per.mean()), standard_error(per)
        out["r_precision_look_alikes"] = r_precision(gen_v, self.true_text, self.look_alikes)
        if self.by_values:
            out["by"] = self.by
            out["r_precision_by"] = r_precision_by(hits, self.concepts, self.by_values)
        div = []
        if self.groups and self.diversity_seeds >= 2:
            k = self.diversity_seeds
            prompts = [g.prompt for g in self.groups for _ in range(k)]
            dseeds = [self.seed + j for _ in self.groups for j in range(k)]
            batches = _generate_images(generate, prompts, dseeds, batch_size)
            feats = torch.cat([self.evaluator.encode(x)[0] for x in batches])
            div = [mean_pairwise_cosine_distance(feats[i * k : (i + 1) * k], self.centre)
                   for i in range(len(self.groups))]
        out["diversity"] = float(np.mean(div)) if div else None
        out.update(self.refs)
        real = out["diversity_real"]
        out["diversity_ratio"] = out["diversity"] / real if out["diversity"] is not None and real else None
        out["eval_s"] = time.perf_counter() - t0
        return out


def evaluate_model(pipe_or_path=None, data_dir: str | os.PathLike = "data/emoji", split: str = "test",
                   evaluator: str | os.PathLike | Evaluator | None = None, n_prompts: int | None = None, seed: int = 0,
                   diversity_prompts: int = 32, diversity_seeds: int = 8, truncation: float | None = None,
                   device: str | None = None, threads: int | None = None, text_encoder=None,
                   by: str | None = None) -> dict:
    """Evaluate a model (name under weights/, folder, T2IGANPipeline, or generate(prompts, seeds) callable).

    Uses every image of the split up to 1000 (`n_prompts` to choose; subsampled deterministically by `seed`), the
    same prompts, seeds, distractors and halves on every call, so two models (or two checkpoints) evaluated with the
    same arguments on the same device are directly comparable. Returns a flat JSON-able dict:

    * model numbers: fd, fd_halves, r_precision, r_precision_concepts (each concept counted once) with
      r_precision_concepts_se (its standard error over concepts), diversity, diversity_ratio;
    * references: fd_other_split (beside fd, same N), fd_real_halves (+ fd_real_halves_blur16/_blur8; beside
      fd_halves), r_precision_real and r_precision_concepts_real (ceilings), r_precision_chance, diversity_real,
      diversity_real_any;
    * with `by` (a metadata field, e.g. "category"): by, and r_precision_by / r_precision_by_real, {value:
      {"r_precision": per-concept mean within the value, "se": its standard error, "concepts": n}}, to see where a
      model fails;
    * sizes and timings: n, concepts, fd_n, fd_real_halves_n, fd_other_split_n, r_precision_candidates,
      diversity_prompts, diversity_seeds, setup_s, eval_s, total_s.
    """
    t0 = time.perf_counter()
    result = compare_models([pipe_or_path], seeds=[seed], data_dir=data_dir, split=split, evaluator=evaluator,
                            n_prompts=n_prompts, diversity_prompts=diversity_prompts, diversity_seeds=diversity_seeds,
                            truncation=truncation, device=device, threads=threads, text_encoder=text_encoder,
                            by=by)["models"][0]["runs"][0]
    result["total_s"] = time.perf_counter() - t0
    return result


# the numbers that describe the model (the rest of a result describes the data, the references or the run)
MODEL_METRICS = ("fd", "fd_halves", "r_precision", "r_precision_concepts", "r_precision_look_alikes", "diversity",
                 "diversity_ratio")
REFERENCES = ("fd_other_split", "fd_real_halves", "r_precision_real", "r_precision_concepts_real",
              "r_precision_look_alikes_real", "diversity_real")


def compare_models(models: Sequence, seeds: Sequence[int] = (0, 1, 2), data_dir: str | os.PathLike = "data/emoji",
                   split: str = "test", evaluator: str | os.PathLike | Evaluator | None = None,
                   n_prompts: int | None = None, diversity_prompts: int = 32, diversity_seeds: int = 8,
                   truncation: float | None = None, device: str | None = None, threads: int | None = None,
                   text_encoder=None, by: str | None = None) -> dict:
    """`evaluate_model` for several models on several seeds: each seed is one set of images, captions, noise and
    distractors that every model is measured on, so the models meet on equal terms; each metric comes per seed and
    as the mean over seeds. A difference between two models that one seed shows and another does not is noise.
    `truncation` None: each pipeline draws at its own `default_truncation` (what its users see); a number: all do.

    Returns {"seeds", "split", "data", "n", "concepts", "truncation", "references": {name: mean over seeds},
    "models": [{"model", "truncation" (the noise scale it drew at; None for a callable), "mean": {metric: mean}, "per_seed": {metric: [one value per seed]}, "by": {value:
    per-concept R-precision, mean over seeds} (with `by`), "runs": [the full result of each seed]}]}.
    """
    from .device import pick_device, set_threads

    seeds = [int(x) for x in seeds]
    if not models or not seeds:
        raise ValueError("compare_models needs at least one model and one seed")
    set_threads(threads)
    if not isinstance(evaluator, Evaluator):
        _existing_evaluator(evaluator)  # fail before loading any model
    _resolve_split(data_dir, split)
    loaded = [_as_generate_fn(m, truncation, device=device, threads=threads) for m in models]
    labels = [str(m) if isinstance(m, (str, os.PathLike)) else Path(name).name
              for m, (_, name, _) in zip(models, loaded)]
    for _, _, pipe in loaded:  # the evaluator's encoder, borrowed from a model that has it (else each context loads it)
        if text_encoder is None and pipe is not None and hasattr(pipe, "text"):
            text_encoder = _shared_encoder(pipe, evaluator)
    runs: list[list[dict]] = [[] for _ in models]
    for seed in seeds:
        ctx = EvalContext(data_dir, split, evaluator=evaluator, n_prompts=n_prompts, seed=seed,
                          diversity_prompts=diversity_prompts, diversity_seeds=diversity_seeds,
                          text_encoder=text_encoder, device=pick_device(device), by=by)
        for (generate, name, pipe), model_runs in zip(loaded, runs):
            model_runs.append({"model": name, "truncation": _drawn_at(pipe, truncation), **ctx.run(generate)})

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    first = runs[0][0]
    out = {"seeds": seeds, "split": split, "data": first["data"], "n": first["n"], "concepts": first["concepts"],
           "truncation": None if truncation is None else float(truncation), "by": by,
           "references": {k: mean([r.get(k) for r in runs[0]]) for k in REFERENCES}, "models": []}
    for label, model_runs in zip(labels, runs):
        per_seed = {k: [r.get(k) for r in model_runs] for k in MODEL_METRICS}
        entry = {"model": label, "truncation": model_runs[0]["truncation"],
                 "mean": {k: mean(v) for k, v in per_seed.items()}, "per_seed": per_seed, "runs": model_runs}
        for key, field in (("by", "r_precision_by"), ("by_real", "r_precision_by_real")) if by else ():
            values = sorted({v for r in model_runs for v in r[field]})  # with --n, a seed may miss a rare value
            entry[key] = {v: mean([r[field].get(v, {}).get("r_precision") for r in model_runs]) for v in values}
        out["models"].append(entry)
    return out


def _num(v, fmt: str = ".3f") -> str:
    """A metric for a report ('n/a' where it was not measured)."""
    return "n/a" if v is None else format(v, fmt)


def format_comparison(c: dict) -> str:
    """The result of `compare_models` as a table: a column per model, each cell the mean over seeds and, in
    brackets, the value of each seed."""
    num = _num
    rows = [("FD ↓ all", "fd", ".2f"), ("FD ↓ halves", "fd_halves", ".2f"), ("R-precision ↑", "r_precision", ".3f"),
            ("R-precision per concept ↑", "r_precision_concepts", ".3f"),
            ("R-precision, look-alikes ↑", "r_precision_look_alikes", ".3f"), ("Diversity ratio", "diversity_ratio", ".2f")]
    seeds = ", ".join(map(str, c["seeds"]))
    lines = [f"t2igan eval: {len(c['models'])} model(s) × seeds {seeds} on {c['data']} ({c['split']}: {c['n']} images, "
             f"{c['concepts']} concepts)",
             "each cell: mean over seeds (each seed's value)", ""]
    table = [["metric"] + [m["model"] for m in c["models"]],
             ["truncation"] + [num(m.get("truncation"), "g") for m in c["models"]]]
    for label, key, fmt in rows:
        table.append([label] + [f"{num(m['mean'][key], fmt)} ({' '.join(num(v, fmt) for v in m['per_seed'][key])})"
                                for m in c["models"]])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    ref = c["references"]
    lines += ["", "references (real images, mean over seeds):",
              f"  FD all: real other split vs real {c['split']} {num(ref['fd_other_split'], '.2f')} · FD halves: real "
              f"half vs real half {num(ref['fd_real_halves'], '.2f')} (floor)",
              f"  R-precision {num(ref['r_precision_real'], '.3f')}, per concept "
              f"{num(ref['r_precision_concepts_real'], '.3f')}, among look-alikes "
              f"{num(ref.get('r_precision_look_alikes_real'), '.3f')} (ceilings)"]
    if c.get("by"):
        values = list(c["models"][0].get("by") or {})
        w = max([len(v) for v in values] + [len(c["by"])])
        lines += ["", f"R-precision per concept ↑ by {c['by']}, mean over seeds (real-image ceiling last):"]
        names = [Path(m["model"]).name for m in c["models"]]
        if len(set(names)) < len(names):  # two folders of one name: number the columns in the order given
            names = [f"{i}:{n}"[:12] for i, n in enumerate(names, 1)]
        else:
            names = [n[-12:] for n in names]
        lines.append(f"  {c['by']:<{w}}  " + "  ".join(f"{n:>12}" for n in names) + "  ceiling")
        for v in values:
            lines.append(f"  {v:<{w}}  " + "  ".join(f"{num(m['by'].get(v), '.3f'):>12}" for m in c["models"])
                         + f"  {num(c['models'][0]['by_real'].get(v), '.3f'):>7}")
    return "\n".join(lines)


def _shared_encoder(pipe, evaluator):
    """The pipeline's own text encoder when it is the one the evaluator was trained with (saves loading it twice)."""
    try:
        cfg = json.loads((evaluator_path(evaluator) / "config.json").read_text()) if not isinstance(
            evaluator, Evaluator) else dict(evaluator.config)
        wanted = str(cfg.get("text_encoder_id") or "minilm").lower()
        have = str(getattr(pipe.config, "text_encoder_id", "") or "").lower()
    except (OSError, ValueError):
        return None
    return pipe.text if have and have == wanted else None


_CONTEXTS: dict[tuple, EvalContext] = {}


def quick_metrics(generate, data_dir: str | os.PathLike = "data/emoji", split: str = "test",
                  evaluator: str | os.PathLike | None = None, n_prompts: int = 128, seed: int = 0,
                  diversity_prompts: int = 8, diversity_seeds: int = 4, text_encoder=None, device=None,
                  prefix: str = "eval_") -> dict[str, float]:
    """Light metrics for a training loop: a few seconds on a CPU, for *trends* (small N: FD is biased upward).

    `generate(prompts, seeds) -> images [N, 3, H, W] in [-1, 1]` (or a pipeline). The real side (data, features,
    captions, references) is built on the first call and cached per arguments. Returns flat floats with `prefix`:
    fd, fd_halves, fd_real_halves, r_precision(_real), r_precision_look_alikes(_real), diversity_ratio, s. Only
    report these: never optimise them.

    In `train()` (main process, e.g. every `eval_every` steps), with the EMA generator and the run's encoder:

        from t2igan.pipeline import noise_for_seeds
        def gen(prompts, seeds):
            return G_ema(noise_for_seeds(list(seeds), z_dim).to(dev), encoder.encode(list(prompts)).to(dev))

        with open(stats_file, "a") as f:
            f.write(json.dumps({"step": step, **quick_metrics(gen, text_encoder=encoder)}) + "\\n")
    """
    key = (str(data_dir), split, str(evaluator_path(evaluator)), n_prompts, seed, diversity_prompts, diversity_seeds,
           str(device))
    if hasattr(generate, "generator") and hasattr(generate, "encode_prompt"):
        text_encoder = text_encoder or _shared_encoder(generate, evaluator)
        generate = pipeline_generate_fn(generate)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = EvalContext(data_dir, split, evaluator=evaluator, n_prompts=n_prompts, seed=seed,
                                     diversity_prompts=diversity_prompts, diversity_seeds=diversity_seeds,
                                     text_encoder=text_encoder, device=device, other_split=False)
    r = _CONTEXTS[key].run(generate)
    keep = {"fd": r["fd"], "fd_halves": r["fd_halves"], "fd_real_halves": r["fd_real_halves"],
            "r_precision": r["r_precision"], "r_precision_real": r["r_precision_real"],
            "r_precision_look_alikes": r["r_precision_look_alikes"],
            "r_precision_look_alikes_real": r["r_precision_look_alikes_real"],
            "diversity_ratio": r["diversity_ratio"], "s": r["eval_s"]}
    return {prefix + k: (float(v) if v is not None else None) for k, v in keep.items()}


def format_report(r: dict) -> str:
    """The result of `evaluate_model` as a readable table."""
    num = _num

    def pm(se):  # a standard error beside its number
        return "" if se is None else f"±{se:.3f}"

    lines = [f"t2igan eval: {r.get('model', '?')} on {r['data']} "
             f"({r['split']}: {r['n']} images, {r['concepts']} concepts)",
             f"evaluator: {r['evaluator']}   seed {r['seed']}   truncation {_num(r.get('truncation'), 'g')}", ""]
    half = r["fd_real_halves_n"]
    other = (f"{num(r['fd_other_split'], '.2f')} real {r.get('other_split')} vs real {r['split']} "
             f"(N={r['fd_other_split_n']}: other concepts, real quality)"
             ) if r.get("fd_other_split") is not None else ""
    same_n = r.get("fd_other_split_n") == r["fd_n"]
    rows = [("metric", "model", "real-image reference (same protocol)"),
            (f"FD ↓ all: {r['fd_n']} generated vs {r['fd_n']} real", num(r["fd"], ".2f"), other if same_n else ""),
            (f"FD ↓ halves: {half} generated vs other {half} real", num(r.get("fd_halves"), ".2f"),
             f"{num(r['fd_real_halves'], '.2f')} real half vs other real half (floor)"
             + (f" · {num(r.get('fd_real_halves_blur16'), '.2f')} / {num(r.get('fd_real_halves_blur8'), '.2f')}"
                " same, blurred to 16 / 8 px" if r.get("fd_real_halves_blur16") is not None else "")),
            (f"R-precision ↑ (1 of {r['r_precision_candidates']})", num(r["r_precision"]),
             f"{num(r['r_precision_real'])} real images (ceiling) · {num(r['r_precision_chance'])} chance"),
            ("R-precision per concept ↑ (each concept once)",
             f"{num(r.get('r_precision_concepts'))} {pm(r.get('r_precision_concepts_se'))}".rstrip(),
             f"{num(r.get('r_precision_concepts_real'))} real images (ceiling)"),
            (f"R-precision among look-alikes ↑ (1 of {r.get('r_precision_look_alikes_candidates')})",
             num(r.get("r_precision_look_alikes")),
             f"{num(r.get('r_precision_look_alikes_real'))} real images (ceiling) · "
             f"{num(1 / r['r_precision_look_alikes_candidates'] if r.get('r_precision_look_alikes_candidates') else None)} chance"),
            (f"Diversity ({r['diversity_seeds']} seeds × {r['diversity_prompts']} prompts)", num(r["diversity"]),
             f"{num(r['diversity_real'])} same name, other vendor · {num(r['diversity_real_any'])} any two images"),
            ("Diversity ratio (≈1 good, ≪1 collapse)", num(r["diversity_ratio"], ".2f"), "")]
    if other and not same_n:  # not comparable with the model's FD at another N: a reference line of its own
        rows.insert(3, (f"FD, real vs real at N={r['fd_other_split_n']}", "", other))
    w0, w1 = max(len(a) for a, _, _ in rows), max(len(b) for _, b, _ in rows)
    for a, b, c in rows:
        lines.append(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip())
    if r.get("r_precision_by"):
        real = r.get("r_precision_by_real") or {}
        lines += ["", f"R-precision per concept ↑ by {r['by']}: "
                      "model ± standard error · real images (ceiling) · concepts",
                  "  (a difference within about two standard errors is noise: compare models on several --seed values)"]
        w = max(len(v) for v in r["r_precision_by"])
        for v, m in r["r_precision_by"].items():
            lines.append(f"  {v:<{w}}  {num(m['r_precision'])} {pm(m.get('se')):>6}  "
                         f"{num(real.get(v, {}).get('r_precision'))}  "
                         f"{m['concepts']:>4}")
    lines += ["", "FD is biased upward at small N: compare a model with the reference on its own row (equal N). "
                  f"{r.get('total_s', r['eval_s']):.1f} s."]
    return "\n".join(lines)


# ================================================================================================ training
def _translate(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by a random whole number of pixels in [-max_shift, max_shift], filling with white."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    iy = (dy[:, None] + torch.arange(h))[:, None, :, None]
    ix = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], iy, ix]


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                     false_negative: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of (image, caption) pairs; pairs where the caption also describes the other
    image (`false_negative[a, b]`: caption b is one of image a's captions, a ≠ b) are left out of the negatives."""
    logits = logit_scale.exp() * img @ txt.T
    if false_negative is not None:
        logits = logits.masked_fill(false_negative, float("-inf"))
    target = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train_evaluator(data_dir: str | os.PathLike, out_dir: str | os.PathLike, minutes: float | None = None,
                    steps: int | None = None, *, val_data: str | os.PathLike | None = None, batch_size: int = 128,
                    lr: float = 2e-3, weight_decay: float = 1e-4, max_shift: int | None = None, seed: int = 0,
                    resolution: int = 64, widths: Sequence[int] = (32, 64, 128, 256), text_encoder="minilm",
                    text_encoder_id: str | None = None, threads: int | None = None, device: str | None = None,
                    log_every: int = 50, progress: Callable[[dict], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> dict:
    """Train an `Evaluator` on a captioned-image folder/zip (the dataset's *train* split) and save it to `out_dir`.

    Stops after `steps` or `minutes` (whichever comes first; 2000 steps if neither is given). AdamW, linear warm-up
    then cosine decay over the budget, random caption per image per step, random ±max_shift-pixel translations
    (default resolution/16; no colour jitter: colour words matter). Writes config.json + safetensors and
    training.json (time, steps, real-image R-precision on the training data and on `val_data`). Returns that info.
    """
    from .data import DataConfig, load_captioned_images
    from .device import pick_device, set_threads
    from .pipeline import _replace_dir
    from .text import TextEncoder

    if steps is None and minutes is None:
        steps = 2000
    if steps is not None and (isinstance(steps, bool) or int(steps) < 1):
        raise ValueError(f"steps must be >= 1, got {steps}")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"minutes must be a positive number, got {minutes}")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (the other images in a batch are the negatives)")
    emit = progress or (lambda e: None)
    should_stop = should_stop or (lambda: False)
    set_threads(threads)
    dev = pick_device(device)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder = text_encoder if isinstance(text_encoder, TextEncoder) else TextEncoder.from_pretrained(text_encoder)
    # the name stored in config.json, by which `t2igan eval` loads the same encoder (give it with a loaded encoder)
    encoder_id = text_encoder_id or (text_encoder if isinstance(text_encoder, str) else "minilm")
    data, report = load_captioned_images(data_dir, DataConfig(resolution=resolution, min_pairs=2))
    emit({"type": "dataset", "summary": report.summary()})
    captions = data.unique_captions()
    row_of = {c: i for i, c in enumerate(captions)}
    caption_rows = [[row_of[c] for c in caps] for caps in data.captions]
    caption_sets = [set(r) for r in caption_rows]
    text_table = _caption_table(encoder, captions).to(dev)
    model = Evaluator(resolution=resolution, widths=tuple(widths), embed_dim=encoder.dim,
                      text_encoder_id=encoder_id).to(dev).train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    other = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    bs = min(batch_size, len(data))
    shift = resolution // 16 if max_shift is None else max_shift
    warmup = 100 if steps is None else min(100, max(1, steps // 10))
    budget_s = minutes * 60 if minutes is not None else None
    emit({"type": "log", "message": f"evaluator: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
                                    f"{len(data)} images, {len(captions)} captions, batch {bs}, device {dev}"})
    t0 = time.perf_counter()
    step, losses, order, pos = 0, [], [], 0
    while True:
        elapsed = time.perf_counter() - t0
        done = max(step / steps if steps else 0.0, elapsed / budget_s if budget_s else 0.0)
        if done >= 1 or should_stop():
            break
        if pos + bs > len(order):
            order, pos = torch.randperm(len(data), generator=gen).tolist(), 0
        idx = order[pos : pos + bs]
        pos += bs
        rows = [rng.choice(caption_rows[i]) for i in idx]
        fn = torch.tensor([[a != b and rows[b] in caption_sets[idx[a]] for b in range(bs)] for a in range(bs)],
                          device=dev)
        images = _translate(data.images[idx].float().div(127.5).sub(1.0), shift, gen)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        _, v = model(images)
        loss = contrastive_loss(v, text_table[torch.tensor(rows, device=dev)], model.logit_scale, fn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        losses.append(float(loss.detach()))
        if step % log_every == 0:
            mean = float(np.mean(losses[-log_every:]))
            temperature = float(1 / model.logit_scale.detach().exp())
            emit({"type": "step", "step": step, "loss": mean, "temperature": temperature,
                  "elapsed_s": time.perf_counter() - t0, "fraction": done})
    train_s = time.perf_counter() - t0
    model.eval()
    info = {"steps": step, "train_s": train_s, "images_seen": step * bs, "batch_size": bs,
            "loss": float(np.mean(losses[-log_every:])) if losses else None,
            "temperature": float(1 / model.logit_scale.detach().exp()), "data": str(data_dir),
            "data_fingerprint": data.fingerprint(),
            "parameters": sum(p.numel() for p in model.parameters()), "seed": seed, "lr": lr, "max_shift": shift}
    # real-image ceilings with the evaluation protocol (1 of 100), on the training data and on held-out data
    for name, path in (("train", data_dir), ("val", val_data)):
        if path is None:
            continue
        try:
            ctx = EvalContext(path, "test" if name == "val" else "train", evaluator=model, n_prompts=1000, seed=0,
                              diversity_prompts=0, text_encoder=encoder, device=dev, other_split=False)
            info[f"r_precision_real_{name}"] = ctx.refs["r_precision_real"]
            info[f"fd_real_halves_{name}"] = ctx.refs["fd_real_halves"]
        except (ValueError, OSError) as e:
            info[f"{name}_error"] = str(e)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.cpu().save_pretrained(str(tmp), safe_serialization=True)
        (tmp / TRAINING_INFO).write_text(json.dumps(info, indent=2))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700: a shipped weights folder should be readable like any other
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_dir(tmp, out)
    info["out"] = str(out)
    emit({"type": "done", **info})
    return info
