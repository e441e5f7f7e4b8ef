"""Running an evaluation: the held-out data, generated images, every metric beside its real-image reference."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data import DataConfig, load_captioned_images
from ..device import pick_device, set_threads
from ..paths import EMOJI_DATA, cache_dir
from ..pipeline import noise_for_seeds
from ..text import TextEncoder, nearest_rows
from ..weights import load_pipeline, resolve_model
from .metrics import (
    frechet_distance,
    mean_over_concepts,
    mean_pairwise_cosine_distance,
    per_concept_means,
    r_precision,
    r_precision_by,
    r_precision_hits,
    standard_error,
)
from .network import N_DISTRACTORS, N_LOOK_ALIKES, Evaluator, _existing_evaluator, evaluator_path, load_evaluator

# (prompts, seeds) -> images [N, 3, H, W] in [-1, 1] (any H = W; resized to the evaluator's resolution)
GenerateFn = Callable[[Sequence[str], Sequence[int]], torch.Tensor]


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

    try:
        return encoder.encode_to_disk_cache(captions, cache_dir() / "captions")
    except OSError:  # read-only home: embed in memory
        return torch.cat([encoder.encode(captions[i : i + 256]) for i in range(0, len(captions), 256)])


def _text_encoder(text_encoder, evaluator: Evaluator):

    enc = text_encoder if isinstance(text_encoder, TextEncoder) else TextEncoder.from_pretrained(
        text_encoder or evaluator.config.text_encoder_id)
    if enc.dim != evaluator.config.embed_dim:
        raise ValueError(f"the text encoder gives {enc.dim}-d embeddings but the evaluator was trained for "
                         f"{evaluator.config.embed_dim}-d ({evaluator.config.text_encoder_id})")
    return enc


def pipeline_generate_fn(pipe, truncation: float | None = None) -> GenerateFn:
    """A T2IGANPipeline as a GenerateFn: image k of a call is (prompts[k], seeds[k]); output in [-1, 1]. Draws at
    `truncation`, or (None) at the model's own default, as `t2igan generate` and the app do."""

    def generate(prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        z = noise_for_seeds([int(s) for s in seeds], pipe.generator.config.z_dim)
        out = pipe(list(prompts), latents=z, truncation=truncation, output_type="pt").images
        return out.float() * 2 - 1

    return generate


def _as_generate_fn(model, truncation: float | None, device=None, threads=None) -> tuple[GenerateFn, str, object]:
    """(generate function, display name, the pipeline or None)."""
    if isinstance(model, (str, os.PathLike)) or model is None:

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

    def __init__(self, data_dir: str | os.PathLike = EMOJI_DATA, split: str = "test",
                 evaluator: str | os.PathLike | Evaluator | None = None, n_prompts: int | None = None,
                 seed: int = 0, diversity_prompts: int = 32, diversity_seeds: int = 8,
                 n_distractors: int = N_DISTRACTORS, text_encoder=None, device=None, other_split: bool = True,
                 max_prompts: int = 1000, by: str | None = None):

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


def evaluate_model(pipe_or_path=None, data_dir: str | os.PathLike = EMOJI_DATA, split: str = "test",
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


def compare_models(models: Sequence, seeds: Sequence[int] = (0, 1, 2), data_dir: str | os.PathLike = EMOJI_DATA,
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


def quick_metrics(generate, data_dir: str | os.PathLike = EMOJI_DATA, split: str = "test",
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
