"""A Generator rearranged for drawing: the same images from fewer operations (inference only).

Each up-sampling block of the generator (models.UpBlock) reads

    x ─► up×2 ─► Fuse ─► conv3×3 ─► Fuse ─► conv3×3 ─► + skip1×1(up×2(x))

With nearest up-sampling three rewrites, exact in real arithmetic, make it cheaper:

1. Fuse is per-channel (affine, LReLU, affine, LReLU) and nearest up-sampling copies pixels, so the first Fuse runs on
   the low-resolution map: a quarter of the work.
2. A 3×3 convolution of a nearest-up-sampled map is, at each of the four output phases (even/odd row × column), a 2×2
   convolution of the low-resolution map with the 3×3 taps summed where they read the same low-resolution pixel
   (sub-pixel convolution). All four phases run as one 2×2 convolution with 4·C outputs, interleaved by one strided
   copy: 4 multiply-adds per output pixel and input channel instead of 9.
3. The 1×1 skip commutes with up-sampling: it runs at low resolution and is added by broadcasting.

Besides, each block's eight affine heads (Fuse → Affine → scale, shift) run as three matrix products instead of
sixteen, and the weights are cast once to the drawing dtype (bf16 autocast casts them again on every call).

Built from a Generator by `Drawing.of`; the pipeline draws through it on CPUs (pipeline.render). In fp32 it draws the
generator's images to within 1e-4; in bf16 what bf16 autocast draws to within rounding (tests/test_drawing.py). At
batch 16 on 2 AVX-512 BF16 cores emoji-64-v2 took 1.36-1.38 ms per image in bf16 against 1.86 under autocast
(`t2igan bench --peer`: ours_bf16, ours_bf16_autocast). Bilinear generators are drawn as they are.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model_lock import MODEL_LOCK, SerialBuild
from .models import Fuse, Generator, UpBlock, modulate

# Rows (or columns) of a 3×3 kernel that read the same low-resolution pixel once the input is nearest-up-sampled:
# the even output phase reads low pixels (i-1, i) with taps (0, 1+2), the odd one (i, i+1) with taps (0+1, 2).
_PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
                            [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # [phase, 2×2 tap, 3×3 tap]


def phase_kernels(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3×3 conv's weights [C, Cin, 3, 3] → the 2×2 kernels of its four output phases [4·C, Cin, 2, 2] (phase-major:
    row phase, column phase, channel) and their bias [4·C]."""
    taps = _PHASE_TAPS.to(conv.weight.device, torch.float32)
    w = torch.einsum("atk,oikl,bsl->aboits", taps, conv.weight.float(), taps)
    out_channels = conv.weight.shape[0]
    bias = conv.bias.float() if conv.bias is not None else torch.zeros(out_channels, device=conv.weight.device)
    return w.reshape(4 * out_channels, conv.weight.shape[1], 2, 2), bias.repeat(4)


def interleave_phases(y: torch.Tensor) -> torch.Tensor:
    """[B, 4·C, h+1, w+1] from a 2×2 conv with padding 1 → [B, C, 2h, 2w]: output pixel (2i+a, 2j+b) is phase (a, b)
    at (i+a, j+b). One strided view of the channels-last map, copied once; channels-last out."""
    y = y.contiguous(memory_format=torch.channels_last)
    b, c4, h1, w1 = y.shape
    c, h, w = c4 // 4, h1 - 1, w1 - 1
    s_b, s_h, s_w = h1 * w1 * c4, w1 * c4, c4  # strides of the NHWC memory
    phases = y.as_strided((b, h, 2, w, 2, c), (s_b, s_h, s_h + 2 * c, s_w, s_w + c, 1), y.storage_offset())
    return phases.contiguous().view(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


def _add_upsampled(out: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """out += nearest-up×2(low), in place, without building the up-sampled map where both are channels-last."""
    if not (out.is_contiguous(memory_format=torch.channels_last) and low.is_contiguous(memory_format=torch.channels_last)):
        return out.add_(F.interpolate(low, scale_factor=2.0, mode="nearest"))
    b, c, h, w = low.shape
    rows = low.permute(0, 2, 3, 1).repeat_interleave(2, dim=2)  # [B, h, 2w, C]: columns doubled, rows not yet
    out.permute(0, 2, 3, 1).view(b, h, 2, 2 * w * c).add_(rows.reshape(b, h, 1, 2 * w * c))
    return out


class _Heads(nn.Module):
    """The affine heads of one block (each Affine's scale and shift MLPs) in three products: all first layers as one
    matrix, then the second layers of each Fuse as one batched product (its four heads have the same shapes).
    Returns one (scale, shift) pair per Affine, in order."""

    def __init__(self, fuses: list[Fuse]):
        super().__init__()
        heads = [[head for a in (f.a1, f.a2) for head in (a.scale, a.shift)] for f in fuses]
        firsts = [h[0] for group in heads for h in group]
        self.first = nn.Linear(firsts[0].in_features, sum(f.out_features for f in firsts))
        with torch.no_grad():
            self.first.weight.copy_(torch.cat([f.weight for f in firsts]))
            self.first.bias.copy_(torch.cat([f.bias for f in firsts]))
        # per Fuse: [4 heads, hidden, channels] and [4 heads, 1, channels]
        self.weights = nn.ParameterList(torch.stack([h[2].weight.t() for h in group]) for group in heads)
        self.biases = nn.ParameterList(torch.stack([h[2].bias[None] for h in group]) for group in heads)
        self.hidden = [group[0][0].out_features for group in heads]

    def forward(self, c: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        hidden = F.relu(self.first(c)).split([4 * h for h in self.hidden], dim=1)
        out = []
        for x, h, w, b in zip(hidden, self.hidden, self.weights, self.biases):
            m = torch.baddbmm(b, x.view(-1, 4, h).transpose(0, 1), w)  # [4, B, channels]
            out += [(m[0], m[1]), (m[2], m[3])]
        return out


def _fuse(x: torch.Tensor, first: tuple, second: tuple) -> torch.Tensor:
    """models.Fuse with its affine parameters given."""
    x = F.leaky_relu(modulate(x, *first), 0.2, inplace=True)
    return F.leaky_relu(modulate(x, *second), 0.2, inplace=True)


class _DrawBlock(nn.Module):
    """models.UpBlock (nearest) rewritten as in the module docstring."""

    def __init__(self, block: UpBlock):
        super().__init__()
        self.heads = _Heads([block.fuse1, block.fuse2])
        weight, bias = phase_kernels(block.conv1)
        self.phases = nn.Conv2d(weight.shape[1], weight.shape[0], 2, padding=1)
        with torch.no_grad():
            self.phases.weight.copy_(weight)
            self.phases.bias.copy_(bias)
        self.conv2, self.skip = block.conv2, block.skip

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        m = self.heads(c)
        h = interleave_phases(self.phases(_fuse(x, m[0], m[1])))  # = conv1(fuse1(up(x)))
        h = self.conv2(_fuse(h, m[2], m[3]))
        return _add_upsampled(h, self.skip(x))  # + skip(up(x))


class Drawing(SerialBuild, nn.Module):
    """Generator.synthesize for drawing, from fewer operations (module docstring). Build it with `Drawing.of` (a copy;
    rebuild it after the generator's weights change). Built under MODEL_LOCK like every network here: a module built
    while another thread loads a model would get meta tensors (model_lock.py)."""

    def __init__(self, generator: Generator):
        super().__init__()
        if generator.config.get("upsample", "nearest") != "nearest":
            raise ValueError("Drawing rewrites nearest up-sampling only; draw bilinear generators as they are")
        self.levels = generator.levels
        self.stem = generator.stem
        self.blocks = nn.ModuleList(_DrawBlock(b) for b in generator.blocks)
        self.to_rgb = generator.to_rgb

    @classmethod
    @torch.no_grad()
    def of(cls, generator: Generator, dtype: torch.dtype = torch.float32) -> Drawing:
        """A drawing copy of `generator` on its device, weights in `dtype`, channels-last."""
        import copy

        with MODEL_LOCK:
            source = copy.deepcopy(generator).float().eval()  # build from fp32 weights, then cast once
            drawing = cls(source)
        return drawing.to(generator.device, dtype).to(memory_format=torch.channels_last).eval()

    @property
    def dtype(self) -> torch.dtype:
        return self.stem.weight.dtype

    @torch.no_grad()
    def synthesize(self, z: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(noise [B, z_dim], conditions [B, levels, cond_dim]) → image in [-1, 1], as Generator.synthesize."""
        if conditions.dim() != 3 or conditions.shape[1] != self.levels:
            raise ValueError(f"this generator reads {self.levels} levels of conditions, got {tuple(conditions.shape)}")
        z, conditions = z.to(self.dtype), conditions.to(self.dtype)
        c = [torch.cat([z, conditions[:, k]], dim=1) for k in range(self.levels)]
        x = self.stem(c[0]).view(z.shape[0], -1, 4, 4).contiguous(memory_format=torch.channels_last)
        for block, c_k in zip(self.blocks, c[1:]):
            x = block(x, c_k)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2, inplace=True)))  # x is ours: in place is 6× faster here
