"""TrainConfig: everything one training run needs, as one object (saved in every checkpoint and run folder)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..augment import parse_policy
from ..device import PRECISIONS
from ..models import UPSAMPLE

CHECKPOINT = "checkpoint.safetensors"
# fine-tuning's default keep weight: on 8 pictures of 4 new emoji, 300 steps, 30 learned them as closely as 10 with
# less forgetting, and 100 learned them less (benchmarks/fine_tune_keep.py, since renamed benchmarks/fine_tune.py)
KEEP = 30.0
KEEP_TOO_CLOSE = 0.85  # cosine of MiniLM sentence vectors: "a blue heart" vs "a red heart" is 0.78


@dataclass
class TrainConfig:
    """Everything one training run needs; saved in every checkpoint and in the run folder."""

    data: str                                   # folder or .zip of captioned images
    out: str                                    # the model folder the run writes (e.g. weights/my-model)
    run_dir: str | None = None                  # checkpoints, stats.jsonl, samples (default: runs/<name of out>)
    init: str | None = None                     # fine-tune from this model folder (G, D)
    resume: bool = False                        # continue from run_dir's checkpoint
    steps: int = 2000                           # total steps of this run (including resumed ones)
    batch_size: int = 32
    balance_by: str | None = None               # metadata field (emoji: 'base'): each of its values is drawn equally
                                                # often, however many images share it (None: each image equally often)
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    gp_weight: float = 2.0                      # MA-GP: weight · mean(‖∇(image, sentence) D‖^p)
    gp_power: float = 6.0
    gp_every: int = 4                           # lazy regularisation: every k D steps, weight × k
    augment: str = "translation,cutout"         # DiffAugment policy; add 'color' only if colours don't matter
    mode_seeking: float = 0.2                   # MSGAN weight: different noise → different images (0 = off); 1.0 traded text match for variety
    mixing: float = 0.25                        # share of G's images whose fine levels read another caption (StyleGAN's
                                                # mixing regularisation: coarse/fine prompts stay coherent); 0 = off
    ema_decay: float = 0.999
    ema_rampup: bool = True                     # decay ramps up from 0.1 over the first steps, so a new model's or a
                                                # small fine-tune's export shows this run's training; off: the init's
                                                # EMA keeps averaging over ≈ 1/(1 − decay) steps (continuing a long run)
    precision: str = "auto"                     # 'bf16' autocast, 'fp32', or 'auto': bf16 where it is fast (device.fast_bf16)
    channels_last: bool = True                  # convolutions in NHWC layout on CPU and CUDA (faster steps, same maths)
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    encoder: str = "minilm"                     # text encoder for a new model (fine-tuning uses the init's)
    resolution: int | None = None               # new model: 64 if unset; with init: grow it to this (2x, 4x)
    g_channels: list[int] | None = None         # default: models.DEFAULT_G_CHANNELS; with init: grow to these widths
    d_channels: list[int] | None = None         # new model: discriminator widths (default: models.DEFAULT_D_CHANNELS)
    z_dim: int = 64
    cond_dim: int = 192
    upsample: str = "nearest"                   # new model only: generator up-sampling, 'nearest' or 'bilinear'
    feature_critic: str | None = None           # a FeatureNet folder: add a critic that looks through it (features.py)
    feature_critic_weight: float = 1.0          # its share of G's adversarial loss
    keep: float | None = None                   # with init: L1 weight pulling G's images for prompts outside the data
                                                # towards the init's (same noise), so a fine-tune on a few pictures
                                                # does not redraw everything else; None: KEEP (30) with init unless the
                                                # model is grown (resolution, g_channels), else 0
    teacher: str | None = None                  # distillation: a model folder whose generator G learns to match (its
                                                # images and its critic's features, for the same noise and conditions).
                                                # G reads the teacher's conditions (its text map is copied and frozen),
                                                # so the teacher's sliders, latents and inversion encoder fit G
    distill: float = 1.0                        # with teacher: the weight of that match
    adversarial: float = 1.0                    # G's adversarial weight; 0 skips the critics (a distillation's match
                                                # stage: the teacher alone says what to draw)
    critic_real: str = "data"                   # what the critics see as real: "data" (the pictures), or "teacher":
                                                # its drawings for the same noise and captions, so that a student's
                                                # polish is judged against what it copies (sharpness included)
    keep_prompts: list[str] | None = None       # those prompts (default: sheet.SHEET_PROMPTS); near-paraphrases of the
                                                # data's captions are left out
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 200
    eval_every: int = 0                         # offline metrics (t2igan.evaluate) into stats.jsonl; 0 = off
    eval_data: str | None = None                # dataset root with a held-out split, e.g. data/emoji-v2
    evaluator: str | None = None                # evaluator folder (default: weights/evaluator)
    sample_prompts: list[str] | None = None     # default: 8 captions spread over the dataset
    sample_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    background: tuple[int, int, int] = (255, 255, 255)
    min_pairs: int = 4

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / Path(self.out).name


def validate(cfg: TrainConfig) -> None:
    """Raise ValueError naming the first setting that cannot work."""
    for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every", "gp_every"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
    for name in ("lr_g", "lr_d"):
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v < 1:
            raise ValueError(f"{name} must be a number between 0 and 1, got {v!r}")
    if not (isinstance(cfg.ema_decay, (int, float)) and 0 <= cfg.ema_decay < 1):
        raise ValueError(f"ema_decay must be a number from 0 (no averaging) up to but not including 1, got {cfg.ema_decay!r}")
    if not isinstance(cfg.channels_last, bool):
        raise ValueError(f"channels_last must be true or false, got {cfg.channels_last!r}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.keep is not None and not (isinstance(cfg.keep, (int, float)) and math.isfinite(cfg.keep) and cfg.keep >= 0):
        raise ValueError(f"keep must be a number >= 0, got {cfg.keep!r}")
    if cfg.keep and not cfg.init:
        raise ValueError("keep needs init: it holds the init model's images for prompts outside the data")
    if cfg.keep_prompts is not None and not [p for p in cfg.keep_prompts if isinstance(p, str) and p.strip()]:
        raise ValueError("keep_prompts is empty: give prompts, or leave it unset for the default sheet prompts")
    for name in ("distill", "adversarial"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a number >= 0, got {v!r}")
    if cfg.critic_real not in ("data", "teacher"):
        raise ValueError(f"critic_real must be 'data' or 'teacher', got {cfg.critic_real!r}")
    if cfg.critic_real == "teacher" and not cfg.teacher:
        raise ValueError("critic_real 'teacher' needs a teacher: set teacher to the model to distil")
    if cfg.adversarial == 0 and not (cfg.teacher and cfg.distill > 0):
        raise ValueError("adversarial 0 leaves nothing to learn from: set a teacher (distillation) with distill > 0")
    if not (isinstance(cfg.mixing, (int, float)) and 0 <= cfg.mixing <= 0.5):
        raise ValueError(f"mixing must be a share from 0 to 0.5 of the batch, got {cfg.mixing!r}")
    if cfg.upsample not in UPSAMPLE:
        raise ValueError(f"upsample must be one of {UPSAMPLE}, got {cfg.upsample!r}")
    if cfg.batch_size < 2:
        raise ValueError("batch_size must be at least 2 (mismatched pairs come from other images in the batch)")
    parse_policy(cfg.augment)


def keep_weight(cfg: TrainConfig, grown: bool = False) -> float:
    """The keep term's weight: as set, or by default KEEP for a fine-tune (init) and 0 for a new model or one grown
    in resolution or width (growing is for learning more, not for holding what it drew)."""
    return float(cfg.keep) if cfg.keep is not None else (KEEP if cfg.init and not grown else 0.0)
