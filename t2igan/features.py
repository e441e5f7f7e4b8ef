"""A frozen in-domain feature network and a critic that judges images through it (Projected-GAN style).

    image ─► FeatureNet (frozen, pretrained to tell the dataset's concepts apart) ─► f16 (16×16), f8 (8×8), f4 (4×4)
    each f ─► trainable head (1×1 mix ─► strided convs to 4×4) ─► concat(t tiled) ─► logit  (+ projection ⟨pool, W t⟩)
    logit = Σ over the three scales

The feature network is trained once, in minutes, as a classifier of the dataset's concepts (emoji: the base emoji,
all vendors and skin tones together; other data: the first caption). It is a different network with a different
objective from the evaluator in weights/evaluator, which is never used for training.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .augment import diff_augment
from .data import DataConfig, load_captioned_images
from .device import resolve_precision
from .evaluate import concept_keys
from .model_lock import SerialBuild
from .models import TextMap, pair_logit


class FeatureNet(SerialBuild, ModelMixin, ConfigMixin):
    """64-px image → features at 16, 8 and 4 px (and class logits, used only while pretraining)."""
    @register_to_config
    def __init__(self, num_classes: int = 1, channels: tuple[int, ...] | list[int] = (32, 64, 128, 256),
                 concepts: list[str] | None = None):
        super().__init__()  # concepts: the class names, in order (None in folders written before they were saved)
        c = list(channels)
        layers, cin = [], 3
        for cout in c:  # 64 → 32 → 16 → 8 → 4
            layers.append(nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
                                        nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)))
            cin = cout
        self.stages = nn.ModuleList(layers)
        self.classify = nn.Linear(c[-1], num_classes)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[16×16, 8×8, 4×4] feature maps of images in [-1, 1] (64 px)."""
        out, h = [], images
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i >= 1:
                out.append(h)
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(images))

    def logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Class logits from `features(images)`, so a caller that has the features need not run the network again."""
        return self.classify(features[-1].mean((2, 3)))


class ProjectedCritic(SerialBuild, nn.Module):
    """Scores (image, sentence) pairs through the frozen FeatureNet; same call as models.Discriminator."""
    def __init__(self, features: FeatureNet, text_dim: int = 384, cond_dim: int = 192, width: int = 64):
        super().__init__()
        self.net = features.eval().requires_grad_(False)
        self.text_map = TextMap(text_dim, cond_dim)
        chans = list(features.config.channels)[1:]
        self.heads = nn.ModuleList()
        for k, c in enumerate(chans):  # 16 px: two ×2 downs, 8 px: one, 4 px: none
            down = [m for _ in range(len(chans) - 1 - k) for m in (nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2))]
            self.heads.append(nn.Sequential(nn.Conv2d(c, width, 1), nn.LeakyReLU(0.2), *down))
        self.joint = nn.ModuleList(nn.Sequential(nn.Conv2d(width + cond_dim, width, 3, padding=1), nn.LeakyReLU(0.2),
                                                 nn.Conv2d(width, 1, 4)) for _ in chans)
        self.project = nn.ModuleList(nn.Linear(cond_dim, width, bias=False) for _ in chans)

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()  # frozen, batch-norm statistics included
        return self

    def requires_grad_(self, requires_grad: bool = True):
        super().requires_grad_(requires_grad)
        self.net.requires_grad_(False)  # only the heads ever learn
        return self

    def _heads(self, images: torch.Tensor):
        """The frozen network's features of the images, and the heads' maps of them (computed once per batch)."""
        features = self.net.features(images)
        return features, [head(f) for head, f in zip(self.heads, features)]

    def score(self, hs: list[torch.Tensor], e: torch.Tensor) -> torch.Tensor:
        """Head maps + sentence embedding → one logit per pair (the sum over the feature levels)."""
        t = self.text_map(e)
        return sum(pair_logit(h, t, joint, project) for h, joint, project in zip(hs, self.joint, self.project))

    def scores(self, images: torch.Tensor, *texts: torch.Tensor):
        """Logits of each image with each set of sentences (one row per image), from one pass over the images."""
        _, hs = self._heads(images)
        return [self.score(hs, e) for e in texts]

    def forward(self, images: torch.Tensor, e: torch.Tensor, mismatched: torch.Tensor | None = None):
        """Scores. With `mismatched` (training): images = [real; fake], and the real images are also scored against
        the wrong sentences; returns (real, fake, mismatched) logits."""
        if mismatched is None:
            return self.scores(images, e)[0]
        n = mismatched.shape[0]
        _, hs = self._heads(images)
        out = self.score([torch.cat([h, h[:n]]) for h in hs], torch.cat([e, mismatched]))
        return out[:n], out[n : 2 * n], out[2 * n :]


def train_feature_net(data_dir: str | Path, out: str | Path, minutes: float = 6.0, batch_size: int = 64,
                      lr: float = 1e-3, seed: int = 0, log=print) -> FeatureNet:
    """Pretrain a FeatureNet to classify the dataset's concepts (translation-augmented) for `minutes`; save to `out`."""
    torch.manual_seed(seed)
    random.seed(seed)
    data, _ = load_captioned_images(data_dir, DataConfig(resolution=64))
    concepts = concept_keys(data, Path(data_dir))
    names = sorted(set(concepts))
    labels = torch.tensor([names.index(c) for c in concepts])
    net = FeatureNet(num_classes=len(names), concepts=names)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    images = data.images
    use_bf16 = resolve_precision("auto", "cpu") == "bf16"  # emulated (slow) bf16 on CPUs without AVX-512 BF16
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < minutes * 60:
        idx = torch.randint(0, len(images), (batch_size,))
        x = diff_augment(images[idx].float().div(127.5).sub(1), ("translation",))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            acc = (logits.argmax(1) == labels[idx]).float().mean().item()
            log(f"feature net step {step}: loss {loss.item():.3f}, batch accuracy {acc:.2f}, "
                f"{time.perf_counter() - t0:.0f} s")
    net.eval().save_pretrained(str(out))
    return net
