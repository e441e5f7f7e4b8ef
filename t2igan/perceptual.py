"""LPIPS (Zhang et al. 2018) with the shift-tolerant AlexNet of Ghildyal & Liu (2022): a perceptual distance for
fitting a picture (invert.py), so that a one-pixel shift of an outline costs little and a wrong shape costs a lot.

    image ─► scale ─► AlexNet with blur-pool down-sampling ─► 5 feature maps ─► unit-normalise channels
          ─► (f(a) − f(b))² ─► learned 1×1 weights ─► spatial mean ─► sum over the 5 layers

Weights: the `stlpips-pytorch` wheel (BSD-2-Clause) ships them as a PyTorch file; they are read with torch's
weights-only loader (tensors, never code) and mapped onto this module. Its Python package is never imported (it
imports torchvision, which does not load beside the CPU torch wheel).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model_lock import MODEL_LOCK

CHANNELS = (64, 192, 384, 256, 256)


class BlurDown(nn.Module):
    """Anti-aliased ×2 down-sampling: reflect-pad, [1 2 1]ᵀ[1 2 1]/16 blur, stride 2 (blur-pool)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (a[:, None] * a[None, :] / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class ShiftTolerantAlexNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.down1 = nn.Conv2d(3, 64, 11, padding=2), BlurDown(64)
        self.down2, self.conv2 = BlurDown(64), nn.Conv2d(64, 192, 5, padding=2)
        self.down3, self.conv3 = BlurDown(192), nn.Conv2d(192, 384, 3, padding=1)
        self.conv4, self.conv5 = nn.Conv2d(384, 256, 3, padding=1), nn.Conv2d(256, 256, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h1 = F.relu(self.down1(self.conv1(x)))
        h2 = F.relu(self.conv2(self.down2(F.max_pool2d(h1, 3, 1))))
        h3 = F.relu(self.conv3(self.down3(F.max_pool2d(h2, 3, 1))))
        h4 = F.relu(self.conv4(h3))
        h5 = F.relu(self.conv5(h4))
        return [h1, h2, h3, h4, h5]


class LPIPS(nn.Module):
    """distance(a, b) per pair, for images in [-1, 1]; frozen."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.net = ShiftTolerantAlexNet()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.requires_grad_(False).eval()

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The unit-normalised feature maps of images (compute a target's once and reuse it)."""
        return [F.normalize(f, dim=1, eps=1e-10) for f in self.net((images - self.shift) / self.scale)]

    def distance(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
        return sum(lin((a - b) ** 2).mean((1, 2, 3)) for lin, a, b in zip(self.lins, feats_a, feats_b))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(a), self.features(b))

    @classmethod
    def from_wheel(cls) -> "LPIPS":
        """The shift-tolerant AlexNet LPIPS weights of the stlpips-pytorch wheel."""
        spec = importlib.util.find_spec("stlpips_pytorch")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError("the perceptual distance needs the PyPI package stlpips-pytorch (its weights only): "
                             "pip install --no-deps stlpips-pytorch")
        path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
        sd = torch.load(path, map_location="cpu", weights_only=True)
        names = {"net.slice1.0.": "net.conv1.", "net.slice1.1.": "net.down1.", "net.slice2.4.": "net.down2.",
                 "net.slice2.5.": "net.conv2.", "net.slice3.8.": "net.down3.", "net.slice3.9.": "net.conv3.",
                 "net.slice4.11.": "net.conv4.", "net.slice5.13.": "net.conv5.",
                 "scaling_layer.": ""}
        ours = {}
        for key, value in sd.items():
            for old, new in names.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            if key.startswith("lin"):
                key = f"lins.{key[3]}.weight"  # lin0.model.1.weight → lins.0.weight
            ours[key] = value
        with MODEL_LOCK:
            net = cls()
        missing, unexpected = net.load_state_dict(ours, strict=False)
        if missing or unexpected:
            raise ValueError(f"LPIPS weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return net
