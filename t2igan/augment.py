"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for GAN training on small data.

The same random transforms are applied to real and generated images before the discriminator sees them, so the
discriminator cannot memorise the few real images while the generator still learns the un-augmented distribution.
Colour jitter is off by default: colour words ("red heart", "green apple") matter in prompts.
"""
from __future__ import annotations

import torch

POLICIES = ("translation", "cutout", "color")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """'translation,cutout' → ('translation', 'cutout'); '' / 'none' → ()."""
    if not policy or policy.strip().lower() in ("none", "off", "false"):
        return ()
    names = tuple(p.strip().lower() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}: choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the policy's transforms, each with fresh random parameters per image."""
    for name in policy:
        x = _OPS[name](x)
    return x.contiguous()


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = (gy + ty).clamp(0, h - 1)  # shifting in from the border repeats the border (the background)
    gx = (gx + tx).clamp(0, w - 1)
    return x.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - oy + ch // 2).clamp(0, h) < ch) & ((ys - oy + ch // 2) >= 0) & \
             ((xs - ox + cw // 2) >= 0) & ((xs - ox + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"translation": _translation, "cutout": _cutout, "color": _color}
