"""Picture → Latent: put any picture into the model, so that every slider and prompt can then change it.

    picture ─► 64-px tensor (images.picture_tensor) ─► a start: the encoder's guess of (noise, condition), or
    with a prompt that prompt's condition ─► the best of a few noises ─► Adam on the noise and one condition per
    level, minimising LPIPS + pixel error + the distance in the model's own discriminator features, with the
    conditions held near the start ─► Latent

The encoder (e4e / ReStyle's idea, much smaller) is trained per model on the generator's own pictures of captions:
it learns which (noise, text code) draws a picture, so a projection starts near a drawable answer and needs few
steps. The pull toward the start keeps the fitted conditions close to a real prompt's, where edits with words work.
LPIPS (ImageNet features) matches edges and textures; the discriminator, trained on the model's own data, knows which
details tell one emoji from another, so matching its features makes the redrawing show the same thing
(`benchmarks/invert.py`, 50 held-out pictures: the same top-1 emoji 0.52 → 0.64 at weight 0.3, 0.70 at 1, where
the redrawings drift further from real prompts and take edits less well).
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .atomic import new_folder
from .device import resolve_precision
from .images import picture_tensor
from .latent import Latent
from .model_lock import SerialBuild
from .paths import cache_dir
from .perceptual import LPIPS

ENCODER = "inversion_encoder"  # its folder inside a model folder


class InversionEncoder(SerialBuild, ModelMixin, ConfigMixin):
    """Image in [-1, 1] → (noise [z_dim], text code [cond_dim]) that the generator would draw it from."""

    @register_to_config
    def __init__(self, resolution: int = 64, z_dim: int = 64, cond_dim: int = 192,
                 widths: tuple[int, ...] | list[int] = (32, 64, 128, 128), bottleneck: int = 32):
        super().__init__()
        layers, cin = [], 3
        for w in widths:  # 64 → 32 → 16 → 8 → 4
            layers += [nn.Conv2d(cin, w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, w, 3, 1, 1), nn.LeakyReLU(0.2)]
            cin = w
        layers += [nn.Conv2d(cin, bottleneck, 1), nn.LeakyReLU(0.2)]  # keeps where things are, in few numbers
        self.body = nn.Sequential(*layers)
        side = resolution // 2 ** len(widths)
        self.head = nn.Linear(bottleneck * side * side, z_dim + cond_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.body(images).flatten(1))
        return out[:, : self.config.z_dim], out[:, self.config.z_dim :]


def load_encoder(folder: str | Path) -> InversionEncoder | None:
    """A model folder's inversion encoder, or None when it has none."""
    path = Path(folder) / ENCODER
    return InversionEncoder.from_pretrained(str(path)).eval() if (path / "config.json").is_file() else None


def train_encoder(pipe, captions: list[str], folder: str | Path, minutes: float = 10.0, batch_size: int = 64,
                  lr: float = 1e-3, seed: int = 0, log=print) -> InversionEncoder:
    """Train the encoder on the generator's own pictures of `captions` (random noise at the model's truncation)
    for `minutes`, then save it into the model folder `folder`."""
    torch.manual_seed(seed)
    random.seed(seed)
    G = pipe.generator.eval()
    config = G.config
    table = pipe.text.encode_to_disk_cache(sorted(set(captions)), cache_dir() / "captions")
    with torch.no_grad():
        codes = G.text_map(table.to(G.device, G.dtype)).float()
    scale = codes.std(0).mean().item()  # text codes and noise weigh alike in the loss
    truncation = pipe.config.get("default_truncation", 1.0)
    encoder = InversionEncoder(config.resolution, config.z_dim, config.cond_dim).to(G.device)
    opt = torch.optim.Adam(encoder.parameters(), lr=lr)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < minutes * 60:
        rows = torch.randint(len(table), (batch_size,))
        z = torch.randn(batch_size, config.z_dim, device=G.device) * truncation
        with torch.no_grad():
            images = G.synthesize(z, codes[rows][:, None].expand(-1, G.levels, -1))
        z_hat, t_hat = encoder(images)
        loss = F.mse_loss(t_hat, codes[rows]) / scale**2 + 0.1 * F.mse_loss(z_hat, z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            log(f"encoder step {step}: loss {loss.item():.4f}, {time.perf_counter() - t0:.0f} s")
    encoder.eval()
    with new_folder(Path(folder) / ENCODER) as tmp:
        encoder.save_pretrained(str(tmp))
    return encoder


@contextlib.contextmanager
def frozen(*modules):
    """Eval mode and no weight gradients for `modules` (None skipped), as they were afterwards: the pipeline's own
    modules, which the app goes on generating with."""
    modules = [m for m in modules if m is not None]
    saved = [(m.training, [p.requires_grad for p in m.parameters()]) for m in modules]
    for m in modules:
        m.eval().requires_grad_(False)
    try:
        yield
    finally:
        for m, (training, grads) in zip(modules, saved):
            for p, g in zip(m.parameters(), grads):
                p.requires_grad_(g)
            m.train(training)


def critic_features(critic, images: torch.Tensor) -> list[torch.Tensor]:
    """The discriminator's feature maps after each down-sampling block, unit-normalised over channels."""
    return [F.normalize(h.float(), dim=1) for h in critic.feature_maps(images)]


@dataclass
class Projection:
    latent: Latent
    lpips: float        # perceptual distance of the redrawn picture to the input (0 = the same)
    psnr: float         # dB, on the 64-px pictures in [0, 1]
    seconds: float
    start: str          # where the fit started: 'encoder', 'prompt' or 'mean'


class Projector:
    """Fits Latents to pictures for one pipeline; holds the perceptual network and the encoder between calls."""

    def __init__(self, pipe, lpips: LPIPS | None = None, encoder: InversionEncoder | None = None):
        self.pipe = pipe
        self.lpips = lpips or LPIPS.from_wheel()
        self.encoder = encoder

    @torch.enable_grad()
    def __call__(self, picture, prompt: str | None = None, steps: int = 60, lr: float = 0.05,
                 pixel_weight: float = 1.0, hold: float = 0.5, starts: int = 8, seed: int = 0,
                 critic_weight: float = 0.3, precision: str | None = None) -> Projection:
        t0 = time.perf_counter()
        pipe, G = self.pipe, self.pipe.generator
        # bf16 forward passes where the device runs them natively (device.fast_bf16); the fit itself stays fp32
        bf16 = resolve_precision(precision, G.device) == "bf16"
        autocast = lambda: torch.autocast(G.device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
        self.lpips.to(G.device)  # fitted in fp32 on the generator's device; the Latent comes back on the CPU
        target = picture_tensor(picture, G.config.resolution).to(G.device)
        z0, c0, where = self._start(target, prompt, starts, seed)
        z = z0.clone().requires_grad_(True)
        c = c0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z, c], lr=lr)
        goal = self.lpips.features(target)
        critic = pipe.discriminator if critic_weight > 0 else None  # a model saved without one fits without it
        scale = c0.detach().abs().mean().clamp_min(1e-3)
        with frozen(G, critic):  # gradients for the noise and the conditions only
            if critic is not None:
                critic.to(G.device)
                critic_goal = critic_features(critic, target)
            for _ in range(steps):
                with autocast():
                    image = G.synthesize(z, c).float()
                    perceptual = self.lpips.distance(self.lpips.features(image), goal).mean()
                    critic_term = 0.0 if critic is None else sum(
                        (a - b).pow(2).sum(1).mean() for a, b in zip(critic_features(critic, image), critic_goal))
                loss = (perceptual + pixel_weight * F.mse_loss(image, target) + critic_weight * critic_term
                        + hold * ((c - c0) / scale).pow(2).mean())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        latent = Latent(z.detach(), c.detach(), source=c0[:, 0].detach()).to("cpu")
        with torch.no_grad():
            image = pipe.render(latent).to(G.device)
            d = float(self.lpips(image, target))
            mse = F.mse_loss((image + 1) / 2, (target + 1) / 2).item()
        return Projection(latent, d, 10 * math.log10(1 / max(mse, 1e-10)), time.perf_counter() - t0, where)

    @torch.no_grad()
    def _start(self, target: torch.Tensor, prompt: str | None, starts: int, seed: int):
        """(noise, per-level conditions, where): the encoder's or the prompt's condition, with the best of
        `starts` noises (the encoder's own guess among them)."""
        pipe, G = self.pipe, self.pipe.generator
        if prompt is not None or self.encoder is None:  # without either: a prompt that names nothing in particular
            code, guess = pipe.latent(prompt or "a picture", seed=seed).conditions[:, 0].to(G.device), None
            where = "prompt" if prompt is not None else "mean"
        else:
            guess, code = self.encoder.to(G.device)(target)
            where = "encoder"
        truncation = pipe.config.get("default_truncation", 1.0)
        noise = pipe.prepare_latents(starts, seed=seed).to(G.device) * truncation
        if guess is not None:
            noise[0] = guess[0]
        conditions = code[:, None].expand(starts, G.levels, -1)
        images = G.synthesize(noise, conditions)
        d = self.lpips(images, target.expand(starts, -1, -1, -1)) + F.mse_loss(
            images, target.expand(starts, -1, -1, -1), reduction="none").mean((1, 2, 3))
        best = int(d.argmin())
        return noise[best : best + 1], conditions[best : best + 1].clone(), where
