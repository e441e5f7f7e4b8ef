"""DF-GAN's generator (Tao et al., CVPR 2022), the peer the speed benchmark measures against, written from the
paper's figure and its published configuration — nf 32, 100-d noise, 256-d sentence vector, 64 px — with random
weights (speed does not depend on them):

    z (100) ─► Linear ─► 8·nf × 4 × 4 ─► [UPBlock] × 4 ─► LReLU ─► conv3×3 ─► tanh        (4 → 64 px)
    UPBlock(x, c):  up ×2 ─► h = DFBlock(c) ─► conv3×3 ─► DFBlock(c) ─► conv3×3;  out = shortcut(up x) + h
    DFBlock(x, c):  two rounds of (γ(c) · x + β(c), LReLU), γ and β each Linear ─► ReLU ─► Linear of c = [z, s]

Widths per level: min(2^k, 8)·nf from the output back, so 64 px runs 8·nf → 8·nf → 4·nf → 2·nf → nf.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class _Affine(nn.Module):
    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(), nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.gamma(c)[:, :, None, None] * x + self.beta(c)[:, :, None, None]


class _DFBlock(nn.Module):
    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.affine0, self.affine1 = _Affine(cond_dim, channels), _Affine(cond_dim, channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.affine0(x, c), 0.2)
        return F.leaky_relu(self.affine1(x, c), 0.2)


class _UpBlock(nn.Module):
    def __init__(self, cond_dim: int, cin: int, cout: int):
        super().__init__()
        self.fuse0, self.conv0 = _DFBlock(cond_dim, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.fuse1, self.conv1 = _DFBlock(cond_dim, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2)
        h = self.conv1(self.fuse1(self.conv0(self.fuse0(x, c)), c))
        return self.shortcut(x) + h


class DFGANGenerator(nn.Module):
    """(noise [B, z_dim], sentence [B, text_dim]) → image [B, 3, size, size] in [-1, 1]."""

    def __init__(self, nf: int = 32, z_dim: int = 100, text_dim: int = 256, size: int = 64):
        super().__init__()
        levels = size.bit_length() - 2  # 64 px: 4×4 and four up-samplings
        widths = [nf * min(2**k, 8) for k in range(levels)][::-1]
        cond = z_dim + text_dim
        self.z_dim, self.text_dim = z_dim, text_dim
        self.fc = nn.Linear(z_dim, widths[0] * 4 * 4)
        self.blocks = nn.ModuleList(_UpBlock(cond, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        c = torch.cat([z, s], dim=1)
        x = self.fc(z).view(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            x = block(x, c)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))
