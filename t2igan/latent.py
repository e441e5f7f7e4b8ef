"""Latent: what a generator's levels read — the noise, plus one text condition per level.

    noise      [B, z_dim]             the noise as the generator reads it (truncation already applied)
    conditions [B, levels, cond_dim]  per level (4×4, 8×8, … the output size), the text code that level is
                                      modulated by: TextMap(sentence) of the level's prompt

A plain prompt is the case where every level holds the same condition. Levels are ordered coarse to fine: the first
ones decide the layout (where things are, their shapes), the last ones the details (colour, texture, outline), so
`Latent.mix(layout, details, split)` draws the first from one latent and the second from another (StyleGAN's style
mixing; the generator is trained for it, see training/losses.py `MixLevels`).

Unlike diffusers' `latents=` (a noise tensor), a Latent carries the conditions too: `pipe(latents=latent)` draws it
with no prompt, and inversion (image → Latent) fits it. Saved as safetensors with text metadata.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import write_file

FORMAT = "t2igan.latent.v1"


@dataclass
class Latent:
    noise: torch.Tensor       # [B, z_dim]
    conditions: torch.Tensor  # [B, levels, cond_dim]
    source: torch.Tensor | None = None  # [B, cond_dim]: for a fitted picture, the text code of what it shows
                                        # (the encoder's guess or the prompt given): edits move by target − source

    def __post_init__(self):
        if self.noise.dim() != 2 or self.conditions.dim() != 3 or self.noise.shape[0] != self.conditions.shape[0]:
            raise ValueError(f"a Latent is noise [B, z_dim] and conditions [B, levels, cond_dim] with the same B, got "
                             f"{tuple(self.noise.shape)} and {tuple(self.conditions.shape)}")
        if self.source is not None and tuple(self.source.shape) != (self.noise.shape[0], self.conditions.shape[2]):
            raise ValueError(f"a Latent's source is [B, cond_dim], got {tuple(self.source.shape)}")

    def __len__(self) -> int:
        return self.noise.shape[0]

    @property
    def levels(self) -> int:
        return self.conditions.shape[1]

    def __getitem__(self, rows) -> "Latent":
        rows = [rows] if isinstance(rows, int) else rows
        return Latent(self.noise[rows], self.conditions[rows], None if self.source is None else self.source[rows])

    def to(self, *args, **kwargs) -> "Latent":
        return Latent(self.noise.to(*args, **kwargs), self.conditions.to(*args, **kwargs),
                      None if self.source is None else self.source.to(*args, **kwargs))

    @staticmethod
    def cat(latents: list["Latent"]) -> "Latent":
        sources = [x.source for x in latents]
        return Latent(torch.cat([x.noise for x in latents]), torch.cat([x.conditions for x in latents]),
                      None if any(s is None for s in sources) else torch.cat(sources))

    def shifted(self, offset: torch.Tensor) -> "Latent":
        """Moved by `offset` [z_dim + cond_dim] (or one per row): the first z_dim numbers are added to the noise, the
        rest to every level's condition. This is how a direction slider moves a picture (directions.py)."""
        z_dim, cond_dim = self.noise.shape[1], self.conditions.shape[2]
        if offset.shape[-1] != z_dim + cond_dim:
            raise ValueError(f"an offset for this latent has {z_dim} + {cond_dim} numbers, got {offset.shape[-1]}")
        offset = offset.to(self.noise)
        return Latent(self.noise + offset[..., :z_dim], self.conditions + offset[..., None, z_dim:], self.source)

    @staticmethod
    def mix(layout: "Latent", details: "Latent", split: int) -> "Latent":
        """Levels below `split` from `layout` (noise included), the rest from `details`."""
        if layout.conditions.shape != details.conditions.shape:
            raise ValueError(f"cannot mix latents of shapes {tuple(layout.conditions.shape)} and "
                             f"{tuple(details.conditions.shape)}")
        if not 0 <= split <= layout.levels:
            raise ValueError(f"split must be a level from 0 to {layout.levels}, got {split}")
        return Latent(layout.noise, torch.cat([layout.conditions[:, :split], details.conditions[:, split:]], dim=1))

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
        """Write `path` (.safetensors) atomically; `metadata` (text) says which model it belongs to and why."""
        meta = {"format": FORMAT, **{str(k): str(v) for k, v in (metadata or {}).items()}}
        tensors = {"noise": self.noise, "conditions": self.conditions,
                   **({"source": self.source} if self.source is not None else {})}
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
        path = Path(path)
        return write_file(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))

    @staticmethod
    def load(path: str | Path) -> tuple["Latent", dict[str, str]]:
        """(Latent, metadata) from a file `save` wrote; a clear ValueError for anything else."""
        path = Path(path)
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{path.name} is not a readable latent file ({exc})") from None
        names = set(tensors)
        if meta.get("format") != FORMAT or not {"noise", "conditions"} <= names <= {"noise", "conditions", "source"}:
            raise ValueError(f"{path.name} is not a t2igan latent (it needs format={FORMAT} and the tensors 'noise' "
                             "and 'conditions')")
        try:
            return Latent(tensors["noise"], tensors["conditions"], tensors.get("source")), meta
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
