"""The evaluator network: image → features (FD, diversity) and a unit vector in the text encoder's space."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from ..model_lock import SerialBuild
from ..paths import EMOJI_DATA
from ..weights import NAME_RE, weights_dir

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
            f"`t2igan evaluator --data {EMOJI_DATA}/train --val {EMOJI_DATA}/test --steps 2500` (how the shipped one was made)")
    return path
