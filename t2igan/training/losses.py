"""The losses of the adversarial game, one small class each (NVlabs EDM style): the loop adds them up by name.

Critic (the discriminator, and the feature critic alike): DF-GAN's hinge on three kinds of pair, with the
matching-aware gradient penalty on real pairs. Generator: the adversarial term against every critic, plus the extra
terms a recipe turns on (mode seeking, keep, distillation from a teacher) and the mixing regularisation of per-level
conditions.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F


def hinge_up(logits: torch.Tensor) -> torch.Tensor:
    """max(0, 1 − logit): pushes a critic's logit up to at least 1 (real pairs)."""
    return F.relu(1.0 - logits).mean()


def hinge_down(logits: torch.Tensor) -> torch.Tensor:
    """max(0, 1 + logit): pushes a critic's logit down to at most −1 (fakes and mismatched pairs)."""
    return F.relu(1.0 + logits).mean()


class CriticLoss:
    """Real image + its caption up; generated image + its caption and real image + another image's caption down (half
    weight each). With `penalty`, the matching-aware gradient penalty (MA-GP): weight · mean ‖∇(image, sentence)‖^p on
    real pairs, every `every`-th step at `every` times the weight (lazy regularisation). The sentence gradient is taken
    in the critic's unit-variance text space (`text_scale`: how TextMap scales the unit-norm sentence)."""

    def __init__(self, weight: float = 2.0, power: float = 6.0, every: int = 4, autocast=nullcontext):
        self.weight, self.power, self.every, self.autocast = weight, power, every, autocast

    def penalty_due(self, step: int) -> bool:
        return self.weight > 0 and step % self.every == 0

    def __call__(self, critic, real: torch.Tensor, fake: torch.Tensor, e: torch.Tensor, e_wrong: torch.Tensor,
                 penalty: bool = False, text_scale: float = 1.0) -> dict[str, torch.Tensor]:
        real = real.requires_grad_(penalty)
        e_in = e.clone().requires_grad_(penalty)
        with self.autocast():
            out_real, out_fake, out_wrong = (o.float() for o in critic(
                torch.cat([real, fake]), torch.cat([e_in, e]), mismatched=e_wrong))
        terms = {"real": hinge_up(out_real), "fake": hinge_down(out_fake), "mismatch": hinge_down(out_wrong)}
        terms["total"] = terms["real"] + 0.5 * (terms["fake"] + terms["mismatch"])
        terms["penalty"] = torch.zeros((), device=real.device)
        if penalty:
            g_img, g_txt = torch.autograd.grad(out_real.sum(), (real, e_in), create_graph=True)
            grad = torch.cat([g_img.flatten(1), (g_txt / text_scale).flatten(1)], dim=1)
            terms["penalty"] = grad.norm(2, dim=1).pow(self.power).mean()
            terms["total"] = terms["total"] + self.weight * self.every * terms["penalty"]
        return terms


class Adversarial:
    """The generator's term: each critic, weighted, should score its images with their captions high."""

    def __call__(self, critics: list[tuple[float, object]], images: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return -sum(weight * critic.scores(images, e)[0].float().mean() for weight, critic in critics)


class ModeSeeking:
    """MSGAN: two noises for one caption should give two different images. The loss is the inverse of the image
    distance per unit of noise distance, so G gains by letting the noise change the drawing."""

    def __call__(self, image_a: torch.Tensor, image_b: torch.Tensor, z_a: torch.Tensor,
                 z_b: torch.Tensor) -> torch.Tensor:
        ratio = (image_a - image_b).float().abs().mean((1, 2, 3)) / (z_a - z_b).abs().mean(1)
        return 1.0 / (ratio.mean() + 1e-5)


class Keep:
    """A fine-tune should not redraw what it was not shown: L1 between G's images and the base model's images for the
    same noise and prompts from outside the data."""

    def __call__(self, images: torch.Tensor, base_images: torch.Tensor) -> torch.Tensor:
        return (images.float() - base_images.float()).abs().mean()


class Distill:
    """Knowledge distillation: G's images should be the teacher's for the same noise and conditions. L1 on the pixels
    plus, through a frozen critic (the teacher's discriminator), L1 between the feature maps of both, each relative to
    the teacher's mean |feature| there, so that outlines and parts count beside colours."""

    def __init__(self, critic=None):
        self.critic = critic

    def __call__(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = (images.float() - target.float()).abs().mean()
        if self.critic is not None:
            with torch.no_grad():
                wanted = [f.float() for f in self.critic.feature_maps(target)]
            drawn = self.critic.feature_maps(images)
            loss = loss + sum((a.float() - b).abs().mean() / b.abs().mean().clamp_min(1e-6)
                              for a, b in zip(drawn, wanted)) / len(wanted)
        return loss


class MixLevels:
    """StyleGAN's mixing regularisation, for text: on a share of the batch the coarse levels (below a random split)
    read the image's caption and the fine levels another image's caption, so that "layout from one prompt, details
    from another" (latent.py) draws a coherent picture. The critics have no notion of such a pair, so a mixed image is
    judged against the blend of its two captions, weighted by how many levels each drove."""

    def __init__(self, share: float):
        self.share = share

    def __call__(self, e: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions [B, dim] → (per-level captions [B, levels, dim] for G, the captions to judge G's images by)."""
        n, m = len(e), round(len(e) * self.share)
        per_level = e[:, None, :].repeat(1, levels, 1)
        if m == 0 or levels < 2:
            return per_level, e
        rows = torch.arange(n - m, n, device=e.device)  # the last rows: mode seeking uses the first ones
        other = e[(rows + torch.randint(1, n, (m,), device=e.device)) % n]
        split = torch.randint(1, levels, (m,), device=e.device)
        fine = torch.arange(levels, device=e.device)[None, :] >= split[:, None]
        per_level[rows] = torch.where(fine[..., None], other[:, None, :], e[rows][:, None, :])
        w = (split.float() / levels)[:, None]
        blend = w * e[rows] + (1 - w) * other
        judged = e.clone()
        judged[rows] = blend / blend.norm(dim=1, keepdim=True).clamp_min(1e-8)
        return per_level, judged


def blend_prompts(table: torch.Tensor, k: int) -> torch.Tensor:
    """k unit vectors, each a random blend of two rows of `table`: keep holds the space between the prompts too."""
    i, j = (torch.randint(len(table), (k,), device=table.device) for _ in range(2))
    w = torch.rand(k, 1, device=table.device)
    mixed = (1 - w) * table[i] + w * table[j]
    return mixed / mixed.norm(dim=1, keepdim=True).clamp_min(1e-8)
