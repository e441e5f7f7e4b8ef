"""Direction sliders: directions in the noise space that change the pictures the most, found once per model without
labels and saved in its folder (`directions.safetensors`).

SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs"): a layer that reads the noise z through
a weight A moves most when z moves along the top eigenvectors of AᵀA. In this generator every level reads
c_k = [z, t_k]: the 4×4 stem's linear layer and, in every block, the first layer of each Fuse's scale and shift
networks. Their z columns, each layer scaled to unit norm so that all levels count, are stacked into A; the k
eigenvectors of AᵀA with the largest eigenvalues are the directions (unit vectors: moving a picture by 2 along one is
two standard deviations of the noise along it). A slider adds amount × direction to the noise the generator reads,
so it combines with every other control and costs nothing.

`t2igan directions MODEL` writes the file and measures each direction on the sheet's 24 prompts; the names come
from looking at their sweeps (`--sheet`, then `--names`). A model without the file simply has no sliders.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import write_file
from .latent import Latent

FILE = "directions.safetensors"


def noise_readers(generator) -> list[torch.Tensor]:
    """The z columns of every linear layer that reads [z, condition]: the stem, then each Fuse's affine networks."""
    z_dim = generator.config.z_dim
    layers = [generator.stem]
    for block in generator.blocks:
        for fuse in (block.fuse1, block.fuse2):
            for affine in (fuse.a1, fuse.a2):
                layers += [affine.scale[0], affine.shift[0]]
    return [layer.weight.detach().float()[:, :z_dim] for layer in layers]


def discover(generator, count: int = 8) -> torch.Tensor:
    """The `count` SeFa directions [count, z_dim] (unit vectors), strongest first."""
    weights = [w / w.norm().clamp_min(1e-12) for w in noise_readers(generator)]
    a = torch.cat(weights)
    values, vectors = torch.linalg.eigh(a.T @ a)  # ascending
    count = min(int(count), a.shape[1])
    directions = vectors[:, values.argsort(descending=True)[:count]].T.contiguous()
    # a direction and its negative are the same slider: point each so that its largest coordinate is positive
    signs = torch.sign(directions.gather(1, directions.abs().argmax(1, keepdim=True)))
    return directions * signs


def save(folder: str | Path, directions: torch.Tensor, names: list[str] | None = None,
         report: list[dict] | None = None) -> Path:
    """Write `folder`/directions.safetensors atomically: the vectors, their names and what each was measured to do."""
    names = names or [f"direction {k + 1}" for k in range(len(directions))]
    if len(names) != len(directions):
        raise ValueError(f"{len(directions)} directions need as many names, got {len(names)}")
    meta = {"names": json.dumps(names), "report": json.dumps(report or []), "method": "sefa"}
    tensors = {"directions": directions.detach().float().cpu().contiguous()}
    return write_file(Path(folder) / FILE, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load(folder: str | Path) -> tuple[torch.Tensor, list[str], list[dict]] | None:
    """(directions [k, z_dim], names, report) from a model folder, or None when it has none (or an unreadable one)."""
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
    if directions.dim() != 2 or len(names) != len(directions):
        return None
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

    def recognised(images: torch.Tensor) -> float | None:
        if evaluator is None:
            return None
        _, v = evaluator.encode(images)  # images in [-1, 1]
        text = torch.nn.functional.normalize(pipe.encode_prompt(prompts).float(), dim=1)
        return float(((v @ text.T).argmax(1) == truth).float().mean())

    images0 = pipe.render(base)
    rows = []
    for k, d in enumerate(directions):
        moved = [pipe.render(Latent(base.noise + a * d, base.conditions)) for a in (-amount, amount)]
        change = float(sum((m - images0).abs().mean() for m in moved) / 2 / 2)  # [-1, 1] → 0–1 scale
        row = {"direction": k, "change": round(change, 4)}
        if evaluator is not None:
            row["recognised_at_0"] = round(recognised(images0), 3)
            row["recognised_at_sweep"] = round(sum(recognised(m) for m in moved) / 2, 3)
        rows.append(row)
    return rows
