"""Interpolate two generators of one lineage weight by weight, e.g. a model and a continuation of its training.

Why: a continuation that gains on what it trained on (drawing each emoji equally often lifted the objects) can lose
elsewhere (held-out emoji); a point between the two weight vectors often keeps most of the gain and little of the
loss (WiSE-FT: Wortsman et al., 2022, "Robust fine-tuning of zero-shot models"). This only makes sense for two
models where one was trained from the other (`--init`, `--resume`): unrelated networks do not share a weight space.
A continuation trained wider than its init (`--g-channels`) shares one with the init widened the way the trainer
widened it (Net2Net, same seed).
"""
from __future__ import annotations

import os

from .grow import widen_generator
from .models import Generator
from .pipeline import T2IGANPipeline
from .weights import resolve_model


class AverageError(ValueError):
    """The two models cannot be interpolated (different architectures) or the weight is out of range."""


def average_models(base: str | os.PathLike, tuned: str | os.PathLike, out: str | os.PathLike,
                   weight: float = 0.5, seed: int = 0) -> dict:
    """Write a model folder whose generator is (1 − weight)·base + weight·tuned; everything else (discriminator,
    text encoder, default truncation) is `tuned`'s. `base`, `tuned` and `out` may be the same folder names or
    paths; `out` is replaced atomically. If `tuned` was trained with wider generator widths than `base`
    (`t2igan train --init BASE --g-channels ...`), `base` is first widened as the trainer did it, with `seed` the
    run's `--seed` (the widening copies random channels; another seed pairs the wrong ones). Returns what was written."""

    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise AverageError(f"weight must be a number between 0 and 1 (the share of {tuned}), got {weight!r}")
    base_dir, tuned_dir = resolve_model(base), resolve_model(tuned)
    a = Generator.from_pretrained(base_dir, subfolder="generator", use_safetensors=True)  # BASE's text encoder: unused
    pipe = T2IGANPipeline.from_pretrained(tuned_dir)
    b = pipe.generator
    differ = sorted(k for k in set(a.config) | set(b.config)
                    if not k.startswith("_") and a.config.get(k) != b.config.get(k))
    widened = differ == ["channels"] and _narrower(a.config.channels, b.config.channels)
    if widened:
        try:
            # the hidden units widening adds are unused in BASE's images: TUNED's there, so only used weights mix
            a = widen_generator(a, b.config.channels, seed=seed, hidden_from=b)
        except ValueError as e:
            raise AverageError(f"{base_dir} cannot be widened to {tuned_dir}'s generator: {e}") from None
    elif differ:
        raise AverageError(f"{base_dir} and {tuned_dir} have different generators ({', '.join(differ)}): "
                           "only two models of one lineage can be averaged")
    sa, sb = a.state_dict(), b.state_dict()
    mixed = {k: ((1 - weight) * sa[k].double() + weight * v.double()).to(v.dtype) if v.is_floating_point() else v
             for k, v in sb.items()}
    b.load_state_dict(mixed)
    pipe.save_pretrained(out)
    return {"out": str(out), "base": str(base_dir), "tuned": str(tuned_dir), "weight": float(weight),
            "widened": list(a.config.channels) if widened else None,
            "parameters": sum(v.numel() for v in mixed.values() if v.is_floating_point())}


def _narrower(a, b) -> bool:
    """Widths `a` are `b`'s or narrower at every level (and differ somewhere)."""
    return len(a) == len(b) and list(a) != list(b) and all(x <= y for x, y in zip(a, b))

