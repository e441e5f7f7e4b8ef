"""The text-conditioned generator and the matching-aware discriminator (DF-GAN family).

Generator (read top to bottom like the paper's figure):

    sentence e (unit norm) ──×√d──► TextMap ─► t ─┐
    noise z ~ N(0, I)·truncation ─────────────────┴─► c_k = [z, t_k]   for each level k (t_k = t for a plain prompt)
    c_0 ─► Linear ─► 4×4 ─► [up ×2 ─► Fuse(c_k) ─► conv ─► Fuse(c_k) ─► conv  (+ skip)] k = 1…n ─► LReLU ─► conv ─► tanh

Every Fuse is two per-channel affine modulations predicted from c_k (DF-GAN's DFBlock), so the prompt steers every
resolution; one condition per level (latent.py) lets the coarse levels follow one prompt and the fine ones another.
The sentence vector is scaled to unit variance per element before its learned map: a raw unit-norm 384-d vector
beside N(0, I) noise is drowned out and the generator learns to ignore the text.

Discriminator:

    image ─► conv ─► [DownBlock] × n ─► h (4×4) ──┬─► concat(h, t tiled) ─► conv ─► LReLU ─► conv4×4 ─► s_match
                                                  └─► ⟨pool(h), W t⟩ (projection) ──────────────────────────► + s_proj

One scalar per (image, sentence): high for real matching pairs, low for fakes and for real images with the wrong text.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .model_lock import SerialBuild

SIZES = (32, 64, 128)
# 'nearest' copies each low-resolution feature into a 2×2 block, and the 1×1 skips carry those blocks to the output
# (a faint 8×8 grid in early models); 'bilinear' does not. Folders without the field are 'nearest' (how they were trained).
UPSAMPLE = ("nearest", "bilinear")

# Default widths per resolution, from 4×4 upwards (generator) / from full size down to 4×4 (discriminator).
# Chosen by measured cost: the 64-px generator is ~0.38 GFLOP per image (DF-GAN nf=32: 0.9); see README "Models".
DEFAULT_G_CHANNELS = {32: (256, 160, 80, 40), 64: (256, 160, 80, 40, 20), 128: (256, 160, 80, 40, 20, 16)}
DEFAULT_D_CHANNELS = {32: (32, 64, 128, 256), 64: (16, 32, 64, 128, 256), 128: (16, 16, 32, 64, 128, 256)}


def _check_size(resolution: int, channels, name: str) -> tuple[int, ...]:
    if resolution not in SIZES:
        raise ValueError(f"{name}: resolution must be one of {SIZES}, got {resolution}")
    levels = int(math.log2(resolution)) - 1  # 4×4 up to resolution, inclusive
    channels = tuple(int(c) for c in channels) if channels else None
    if channels is None or len(channels) != levels:
        raise ValueError(f"{name}: {resolution}-px needs {levels} channel widths (4×4 … {resolution}²), got {channels}")
    return channels


class TextMap(nn.Module):
    """Unit-norm sentence vector → conditioning code t, rescaled so the text is as loud as the noise."""

    def __init__(self, text_dim: int, cond_dim: int):
        super().__init__()
        self.scale = math.sqrt(text_dim)
        self.fc = nn.Linear(text_dim, cond_dim)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.fc(e * self.scale), 0.2)


class Affine(nn.Module):
    """Per-channel scale and shift predicted from the condition; starts as the identity."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        hidden = min(channels, 128)
        self.scale = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.shift = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        for head, bias in ((self.scale[2], 1.0), (self.shift[2], 0.0)):
            nn.init.zeros_(head.weight)
            nn.init.constant_(head.bias, bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale(c), self.shift(c)
        if not torch.is_grad_enabled():  # drawing only: the row form's backward made training slower
            return modulate(x, scale, shift)
        return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])


def modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x · scale + shift per channel ([B, C] factors) in one pass over the feature map (not x · scale, then + shift:
    ~10 % of a CPU forward pass), in the faster of two forms for drawing."""
    if x.is_contiguous(memory_format=torch.channels_last) and (x.dtype == torch.bfloat16 or x.shape[1] < 32):
        return _affine_rows(x, scale, shift)
    return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])


def _affine_rows(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x · scale + shift for a channels-last x, broadcast over rows of W·C values instead of over pixels of C.
    CPU kernels vectorise the innermost dimension: with a [B, C, 1, 1] factor that is C alone, which at 20-80
    channels in bf16 falls to a scalar loop (a 2-core AVX-512 CPU: 1.09 ms against 0.13 for [16, 20, 64, 64])."""
    b, ch, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, h, w * ch)  # a view: channels-last memory is NHWC

    def tile(v):  # [B, C] → [B, 1, W·C], the factor repeated once per pixel of a row
        return v[:, None, None, :].expand(b, 1, w, ch).reshape(b, 1, w * ch)
    return torch.addcmul(tile(shift), rows, tile(scale)).view(b, h, w, ch).permute(0, 3, 1, 2)


class Fuse(nn.Module):
    """DF-GAN's deep text-image fusion: affine → LReLU → affine → LReLU."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.a1, self.a2 = Affine(cond_dim, channels), Affine(cond_dim, channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # in place: the affine's output is not needed again (its backward reads x and the scale)
        x = F.leaky_relu(self.a1(x, c), 0.2, inplace=True)
        return F.leaky_relu(self.a2(x, c), 0.2, inplace=True)


class UpBlock(nn.Module):
    """×2 up-sampling, then two condition-modulated 3×3 convolutions with a residual skip."""

    def __init__(self, cond_dim: int, cin: int, cout: int, upsample: str = "nearest"):
        super().__init__()
        self.upsample = upsample
        self.fuse1, self.conv1 = Fuse(cond_dim, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.fuse2, self.conv2 = Fuse(cond_dim, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode=self.upsample)
        h = self.conv1(self.fuse1(x, c))
        h = self.conv2(self.fuse2(h, c))
        return self.skip(x) + h


class Generator(SerialBuild, ModelMixin, ConfigMixin):
    """(noise z, sentence embedding e) → RGB image in [-1, 1] of size `resolution`."""

    @register_to_config
    def __init__(self, resolution: int = 64, z_dim: int = 64, text_dim: int = 384, cond_dim: int = 192,
                 channels: tuple[int, ...] | list[int] | None = None, upsample: str = "nearest"):
        super().__init__()
        channels = _check_size(resolution, channels or DEFAULT_G_CHANNELS.get(resolution), "Generator")
        if upsample not in UPSAMPLE:
            raise ValueError(f"Generator: upsample must be one of {UPSAMPLE}, got {upsample!r}")
        self.register_to_config(channels=list(channels))  # the folder says which widths it has
        c_dim = z_dim + cond_dim
        self.text_map = TextMap(text_dim, cond_dim)
        self.stem = nn.Linear(c_dim, channels[0] * 4 * 4)
        self.blocks = nn.ModuleList(UpBlock(c_dim, a, b, upsample) for a, b in zip(channels[:-1], channels[1:]))
        self.to_rgb = nn.Conv2d(channels[-1], 3, 3, padding=1)

    @property
    def levels(self) -> int:
        """How many levels read a condition: the 4×4 stem, then one per up-sampling block (coarse to fine)."""
        return len(self.blocks) + 1

    def conditions(self, e: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings [B, text_dim] → the per-level conditions [B, levels, cond_dim] of a plain prompt
        (every level reads the same text code)."""
        return self.text_map(e)[:, None, :].expand(-1, self.levels, -1)

    def synthesize(self, z: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(noise [B, z_dim], conditions [B, levels, cond_dim]) → image. Level k is modulated by [z, conditions[:, k]],
        so each level can follow its own prompt (latent.py)."""
        if conditions.dim() != 3 or conditions.shape[1] != self.levels:
            raise ValueError(f"this generator reads {self.levels} levels of conditions, got {tuple(conditions.shape)}")
        c = [torch.cat([z, conditions[:, k]], dim=1) for k in range(self.levels)]
        x = self.stem(c[0]).view(z.shape[0], -1, 4, 4)
        for block, c_k in zip(self.blocks, c[1:]):
            x = block(x, c_k)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))

    def forward(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """(noise, sentence embeddings) → image. e [B, text_dim]: every level reads the same prompt; e [B, levels,
        text_dim]: level k reads e[:, k] (training's mixing regularisation goes through here, so DDP sees it)."""
        return self.synthesize(z, self.text_map(e) if e.dim() == 3 else self.conditions(e))


class DownBlock(nn.Module):
    """Strided 4×4 conv → 3×3 conv, added to an average-pooled 1×1 skip through a learned gate (starts closed)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        return F.avg_pool2d(self.skip(x), 2) + self.gate * h


def pair_logit(h: torch.Tensor, t: torch.Tensor, joint: nn.Module, project: nn.Module | None) -> torch.Tensor:
    """One logit per (feature map, text code) pair: a conv over [h, t tiled] plus the projection ⟨pool(h), W t⟩/√C."""
    out = joint(torch.cat([h, t[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], dim=1)).flatten()
    if project is not None:
        out = out + (h.mean((2, 3)) * project(t)).sum(1) / math.sqrt(h.shape[1])
    return out


class Discriminator(SerialBuild, ModelMixin, ConfigMixin):
    """Scores (image, sentence) pairs: realism and image–text match in one logit (one-way output)."""

    @register_to_config
    def __init__(self, resolution: int = 64, text_dim: int = 384, cond_dim: int = 192,
                 channels: tuple[int, ...] | list[int] | None = None, projection: bool = True):
        super().__init__()
        channels = _check_size(resolution, channels or DEFAULT_D_CHANNELS.get(resolution), "Discriminator")
        self.register_to_config(channels=list(channels))
        self.from_rgb = nn.Conv2d(3, channels[0], 3, padding=1)
        self.blocks = nn.ModuleList(DownBlock(a, b) for a, b in zip(channels[:-1], channels[1:]))
        top = channels[-1]
        self.text_map = TextMap(text_dim, cond_dim)
        self.joint = nn.Sequential(
            nn.Conv2d(top + cond_dim, top // 2, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(top // 2, 1, 4)
        )
        self.project = nn.Linear(cond_dim, top, bias=False) if projection else None

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Image → the feature map after each down-sampling block, fine to coarse (inversion matches them all)."""
        h, maps = self.from_rgb(images), []
        for block in self.blocks:
            h = block(h)
            maps.append(h)
        return maps

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Image → 4×4 feature map; computed once per batch and reused for matching and mismatched texts."""
        return self.feature_maps(images)[-1]

    def score(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Feature map + sentence embedding → one logit per pair."""
        return pair_logit(h, self.text_map(e), self.joint, self.project)

    def scores(self, images: torch.Tensor, *texts: torch.Tensor) -> list[torch.Tensor]:
        """Logits of each image with each set of sentences (one row per image), from one pass over the images."""
        h = self.features(images)
        return [self.score(h, e) for e in texts]

    def forward(self, images: torch.Tensor, e: torch.Tensor, mismatched: torch.Tensor | None = None):
        """Logits for (images[i], e[i]). With `mismatched` (training): images = [real; fake], and the real images are
        also scored against the wrong sentences; returns (real, fake, mismatched) logits from one forward pass."""
        h = self.features(images)
        if mismatched is None:
            return self.score(h, e)
        n = mismatched.shape[0]
        out = self.score(torch.cat([h, h[:n]]), torch.cat([e, mismatched]))
        return out[:n], out[n : 2 * n], out[2 * n :]


@torch.no_grad()
def count_flops(module, *inputs: torch.Tensor) -> int:
    """Floating-point operations of one forward pass of a module or function (multiply-adds count as 2), measured by
    torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        module(*inputs)
    return int(counter.get_total_flops())
