"""Direction sliders: directions in what the generator reads — its noise and its text code — that change the pictures
the most, found once per model without labels and saved in its folder (`directions.safetensors`).

SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs"): a layer that reads a code x through a
weight A moves most when x moves along the top eigenvectors of AᵀA. In this generator every level reads
c_k = [z, t_k]: the 4×4 stem's linear layer and, in every block, the first layer of each Fuse's scale and shift
networks. Their columns, each layer scaled to unit norm so that all levels count, are stacked into A, and give two
kinds of candidates:

* noise directions: eigenvectors of the z columns, unit vectors (amount 1 = one standard deviation of the noise);
* text directions: eigenvectors of the t columns, scaled to one standard deviation of real prompts' codes along
  them, added to every level's condition (they change how a thing is drawn: eyes, shading, pose).

`measure` sweeps every candidate on the sheet's prompts and `choose` keeps the ones that change the pictures the most
while the evaluator still recognises the prompt, so a model whose noise does little gets text sliders and one whose
noise matters gets noise sliders. A slider is one vector [z_dim + cond_dim]; amount × vector moves a Latent
(`Latent.shifted`), so sliders combine with every other control and cost nothing.

`t2igan directions MODEL` finds, measures, keeps and saves them; the names come from looking at their sweeps
(`--sheet`, then `--names`). A model without the file simply has no sliders.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import write_file

FILE = "directions.safetensors"


def code_readers(generator) -> list[torch.Tensor]:
    """The weights of every linear layer that reads [z, condition]: the stem, then each Fuse's affine networks."""
    layers = [generator.stem]
    for block in generator.blocks:
        for fuse in (block.fuse1, block.fuse2):
            for affine in (fuse.a1, fuse.a2):
                layers += [affine.scale[0], affine.shift[0]]
    return [layer.weight.detach().float() for layer in layers]


def sefa(weights: list[torch.Tensor], count: int) -> torch.Tensor:
    """The `count` top eigenvectors [count, in] of AᵀA for the stacked, unit-norm `weights`, strongest first; each
    pointed so that its largest coordinate is positive (a direction and its negative are the same slider)."""
    a = torch.cat([w / w.norm().clamp_min(1e-12) for w in weights])
    values, vectors = torch.linalg.eigh(a.T @ a)  # ascending
    directions = vectors[:, values.argsort(descending=True)[: min(int(count), a.shape[1])]].T.contiguous()
    signs = torch.sign(directions.gather(1, directions.abs().argmax(1, keepdim=True)))
    return directions * signs


def discover(generator, count: int = 8, codes: torch.Tensor | None = None) -> torch.Tensor:
    """Candidates [≤ 2·count, z_dim + cond_dim]: `count` noise directions, then (with `codes`, real prompts' text
    codes [N, cond_dim] to measure one standard deviation by) `count` text directions."""
    z_dim = generator.config.z_dim
    readers = code_readers(generator)
    noise = sefa([w[:, :z_dim] for w in readers], count)
    found = [torch.cat([noise, noise.new_zeros(len(noise), readers[0].shape[1] - z_dim)], 1)]
    if codes is not None and len(codes) > 1:
        text = sefa([w[:, z_dim:] for w in readers], count)
        text = text * (codes.float().to(text) @ text.T).std(0)[:, None]  # amount 1 = one std of real prompts
        found.append(torch.cat([text.new_zeros(len(text), z_dim), text], 1))
    return torch.cat(found)


def kind(vector: torch.Tensor, z_dim: int) -> str:
    return "noise" if vector[z_dim:].abs().max() == 0 else "text" if vector[:z_dim].abs().max() == 0 else "mixed"


def choose(report: list[dict], count: int, max_drop: float = 0.05) -> list[int]:
    """Indices of the `count` measured candidates that change the pictures the most among those after whose sweep
    the evaluator still recognises the prompt (at most `max_drop` less often than before; all when unmeasured)."""
    kept = [r for r in report if r.get("recognised_at_sweep") is None
            or r["recognised_at_sweep"] >= r["recognised_at_0"] - max_drop]
    return [r["direction"] for r in sorted(kept, key=lambda r: -r["change"])[:count]]


def save(folder: str | Path, directions: torch.Tensor, names: list[str] | None = None,
         report: list[dict] | None = None) -> Path:
    """Write `folder`/directions.safetensors atomically: the vectors, their names and what each was measured to do."""
    names = names or [f"direction {k + 1}" for k in range(len(directions))]
    if len(names) != len(directions):
        raise ValueError(f"{len(directions)} directions need as many names, got {len(names)}")
    meta = {"names": json.dumps(names), "report": json.dumps(report or []), "method": "sefa noise+text"}
    tensors = {"directions": directions.detach().float().cpu().contiguous()}
    return write_file(Path(folder) / FILE, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def names(folder: str | Path) -> list[str]:
    """The slider names saved in a model folder, read without the vectors; [] when it has none, or one that `load`
    would refuse (unreadable, or sized for another generator: a file copied from another model)."""
    path = Path(folder) / FILE
    try:
        with safe_open(str(path), "pt") as f:  # most models have none: this fails first, before reading the config
            found = json.loads((f.metadata() or {}).get("names", "[]"))
            shape = f.get_slice("directions").get_shape()
        gen = json.loads((Path(folder) / "generator" / "config.json").read_text(encoding="utf-8"))
        sizes = int(gen["z_dim"]), int(gen["cond_dim"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(found, list) or not fits(shape, len(found), *sizes):
        return []
    return [str(n) for n in found]


def fits(shape, count: int, z_dim: int, cond_dim: int) -> bool:
    """Whether a directions tensor of `shape` with `count` names is for a generator with these sizes: [k, z_dim +
    cond_dim], or [k, z_dim] from before text directions."""
    return len(shape) == 2 and shape[0] == count and shape[1] in (z_dim, z_dim + cond_dim)


def load(folder: str | Path, z_dim: int, cond_dim: int) -> tuple[torch.Tensor, list[str], list[dict]] | None:
    """(directions [k, z_dim + cond_dim], names, report) from a model folder, or None when it has none (or one that is
    unreadable or for another generator). Files from before text directions hold noise directions [k, z_dim]."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            directions = f.get_tensor("directions")
        names = json.loads(meta.get("names", "[]"))
        report = json.loads(meta.get("report", "[]"))
    except (SafetensorError, OSError, ValueError, KeyError):
        return None
    if not fits(tuple(directions.shape), len(names), z_dim, cond_dim):
        return None
    if directions.shape[1] == z_dim:
        directions = torch.cat([directions, directions.new_zeros(len(directions), cond_dim)], 1)
    return directions, [str(n) for n in names], report


def amounts_vector(amounts, count: int) -> torch.Tensor:
    """A call's slider amounts — a list (one per direction, missing ones 0) or {index: amount} — as a vector."""
    out = torch.zeros(count)
    items = amounts.items() if isinstance(amounts, dict) else enumerate(amounts)
    for k, a in items:
        k = int(k)
        if not 0 <= k < count:
            raise ValueError(f"this model has {count} direction sliders (0 to {count - 1}), got direction {k}" if count
                             else "this model has no direction sliders: make them with `t2igan directions MODEL`")
        a = float(a)
        if not -10 <= a <= 10 or a != a:
            raise ValueError(f"a direction's amount must be a number from -10 to 10, got {a}")
        out[k] = a
    return out


@torch.no_grad()
def measure(pipe, directions: torch.Tensor, prompts: list[str], seeds=(0, 1), amount: float = 2.0,
            evaluator=None) -> list[dict]:
    """Per direction: how much a ±`amount` sweep changes the images (mean absolute pixel change, 0–1 scale, against
    amount 0) and, with an evaluator, how often it still picks the prompt among `prompts` (top-1) at 0 and at
    ±amount."""
    n_prompts, n_seeds = len(prompts), len(seeds)
    base = pipe.latent([p for p in prompts for _ in seeds], seed=None,
                       noise=torch.cat([pipe.prepare_latents(n_seeds, seed=list(seeds))] * n_prompts))
    truth = torch.arange(n_prompts).repeat_interleave(n_seeds)
    z_dim = base.noise.shape[1]
    text = None if evaluator is None else torch.nn.functional.normalize(pipe.encode_prompt(prompts).float(), dim=1)

    def recognised(images: torch.Tensor) -> float:
        _, v = evaluator.encode(images)  # images in [-1, 1]
        return float(((v @ text.T).argmax(1) == truth).float().mean())

    images0 = pipe.render(base)
    at_0 = None if evaluator is None else round(recognised(images0), 3)
    rows = []
    for k, d in enumerate(directions):
        moved = [pipe.render(base.shifted(a * d)) for a in (-amount, amount)]
        change = float(sum((m - images0).abs().mean() for m in moved) / 2 / 2)  # [-1, 1] → 0–1 scale
        row = {"direction": k, "kind": kind(d, z_dim), "change": round(change, 4)}
        if evaluator is not None:
            row["recognised_at_0"] = at_0
            row["recognised_at_sweep"] = round(sum(recognised(m) for m in moved) / 2, 3)
        rows.append(row)
    return rows


@torch.no_grad()
def find(pipe, prompts: list[str], count: int = 8, evaluator=None) -> tuple[torch.Tensor, list[dict]]:
    """A model's sliders: `count` noise and `count` text candidates (one standard deviation measured on `prompts`'
    codes), each measured on `prompts`, the `count` best kept (`choose`), strongest first: (vectors, report)."""
    codes = pipe.latent(prompts, seed=0).conditions[:, 0]
    candidates = discover(pipe.generator, count, codes=codes)
    report = measure(pipe, candidates, prompts, evaluator=evaluator)
    kept = choose(report, count)
    return candidates[kept], [{**report[k], "direction": i} for i, k in enumerate(kept)]
