"""The adversarial training loop, top to bottom (like nanoGPT's train.py).

Generator G and discriminator D play a hinge-loss game on (image, caption) pairs:
  D learns: real image + its caption → high;  G(z, caption) + caption → low;  real image + another caption → low.
  G learns: make D score G(z, caption) + caption high.
A matching-aware zero-centred gradient penalty (DF-GAN's MA-GP) on real pairs keeps D smooth in both the image and
the sentence, DiffAugment stops D memorising small data, and an EMA copy of G is what samples and exports use.

One function, `train(config, progress, should_stop)`, is called by the CLI (`t2igan train`), the background
`TrainingJob` and `accelerate launch` for several processes alike.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .augment import diff_augment, parse_policy
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataConfig, load_captioned_images
from .device import PRECISIONS
from .images import make_grid
from .models import UPSAMPLE, Discriminator, Generator

CHECKPOINT = "checkpoint.safetensors"


@dataclass
class TrainConfig:
    """Everything one training run needs; saved in every checkpoint and in the run folder."""

    data: str                                   # folder or .zip of captioned images
    out: str                                    # exported model folder (e.g. weights/my-model)
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
    keep_prompts: list[str] | None = None       # those prompts (default: sheet.SHEET_PROMPTS); near-paraphrases of the
                                                # data's captions are left out
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 200
    eval_every: int = 0                         # offline metrics (t2igan.evaluate) into stats.jsonl; 0 = off
    eval_data: str | None = None                # dataset root with a held-out split, e.g. data/emoji
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


def cache_dir() -> Path:
    """Per-user cache for caption embeddings and downloaded packages ($XDG_CACHE_HOME/t2igan)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "t2igan"


class EpochSampler(torch.utils.data.Sampler):
    """A fresh shuffle per epoch, fixed by (seed, epoch): resuming at any step replays the same batches. With
    `weights`, an epoch is n draws in proportion to them (with replacement) instead of a permutation."""

    def __init__(self, n: int, seed: int, weights: torch.Tensor | None = None):
        self.n, self.seed, self.epoch, self.weights = n, seed, 0, weights

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.n, generator=rng).tolist())
        return iter(torch.multinomial(self.weights, self.n, replacement=True, generator=rng).tolist())

    def __len__(self) -> int:
        return self.n


class TrainingDiverged(RuntimeError):
    """Losses or weights became NaN/inf: training stopped before anything broken was written."""


Progress = Callable[[dict], None]


def train(config: TrainConfig, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
          accelerator=None) -> dict:
    """Run (or resume) a training run; returns the final status. `should_stop` is polled once per step."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from .device import allocator_hint, resolve_precision, set_threads
    from .pipeline import T2IGANPipeline
    from .text import DEFAULT_ENCODER, TextEncoder

    emit = progress or (lambda event: None)
    should_stop = should_stop or (lambda: False)
    cfg = config
    _validate(cfg)
    set_threads(cfg.threads)
    # --------------------------------------------------------------------------------------------- engine
    use_cpu = (cfg.device or os.environ.get("T2IGAN_DEVICE") or "auto") == "cpu" or not torch.cuda.is_available()
    if accelerator is None and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(True)  # a new single-process run may differ in device from the last one
    acc = accelerator or Accelerator(cpu=use_cpu)
    precision = resolve_precision(cfg.precision, acc.device)
    # bf16 autocast around the forward passes (CPU AVX-512 / GPU); losses and the penalty are taken in fp32
    autocast = lambda: torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")  # noqa: E731
    main = acc.is_main_process
    log = (lambda msg: emit({"type": "log", "message": msg})) if main else (lambda msg: None)
    set_seed(cfg.seed + acc.process_index)
    run = cfg.run_path()
    if not cfg.resume and (run / CHECKPOINT).is_file():  # never overwrite a run by accident
        raise ValueError(f"{run} already holds a training run ({CHECKPOINT}): continue it with --resume "
                         f"(resume=True), or train into another run folder (--run-dir)")
    # --------------------------------------------------------------------------------------------- models
    if cfg.init:
        from .weights import resolve_model

        init_pipe = T2IGANPipeline.from_pretrained(resolve_model(cfg.init))
        G, D = init_pipe.generator, init_pipe.discriminator
        init_shape = (G.config.resolution, list(G.config.channels))
        if cfg.resolution and cfg.resolution != G.config.resolution:  # progressive training: add finer levels
            from .grow import deepen_to

            low, (G, D) = G.config.resolution, deepen_to(G, D, cfg.resolution)
            log(f"model grown from {low} px to {cfg.resolution} px (the new levels start by up-sampling its images)")
        if D is None:
            log(f"{cfg.init} has no discriminator: fine-tuning starts with a fresh one")
            D = Discriminator(resolution=G.config.resolution, text_dim=G.config.text_dim, cond_dim=G.config.cond_dim)
        encoder = init_pipe.text
        encoder_id = init_pipe.config.text_encoder_id
        if cfg.encoder not in (DEFAULT_ENCODER, encoder_id):
            log(f"encoder {cfg.encoder} ignored: fine-tuning keeps the text encoder of {cfg.init} "
                f"({encoder_id or 'stored in its folder'})")
        default_truncation = init_pipe.config.get("default_truncation", 1.0)  # the export draws as the init did
        if cfg.g_channels and list(cfg.g_channels) != list(G.config.channels):
            from .grow import widen_generator

            narrow, G = list(G.config.channels), widen_generator(G, cfg.g_channels, seed=cfg.seed)
            log(f"generator widened {narrow} -> {list(G.config.channels)} (same images at step 0)")
        _report_ignored_architecture(cfg, G, D, log)
        grown = (G.config.resolution, list(G.config.channels)) != init_shape
    else:
        encoder = TextEncoder.from_pretrained(cfg.encoder)
        encoder_id, default_truncation = cfg.encoder, 1.0  # the export stores one from a local folder in the model
        size = cfg.resolution or 64
        G = Generator(resolution=size, z_dim=cfg.z_dim, text_dim=encoder.dim, cond_dim=cfg.cond_dim,
                      channels=cfg.g_channels, upsample=cfg.upsample)
        D = Discriminator(resolution=size, text_dim=encoder.dim, cond_dim=cfg.cond_dim, channels=cfg.d_channels)
        grown = False
    G.train(), D.train()
    if cfg.channels_last:
        _to_channels_last(acc.device, G, D)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    keep = _keep_weight(cfg, grown)
    # frozen: what the init model draws (copied before a resume loads G)
    G_init = copy.deepcopy(G).eval().requires_grad_(False) if keep > 0 else None
    resolution = G.config.resolution
    # --------------------------------------------------------------------------------------------- data
    data, report = load_captioned_images(cfg.data, DataConfig(resolution=resolution, background=tuple(cfg.background),
                                                              min_pairs=cfg.min_pairs, group_by=cfg.balance_by))
    emit({"type": "dataset", "report": report.to_dict(), "summary": report.summary()}) if main else None
    captions = data.unique_captions()
    row_of = {c: i for i, c in enumerate(captions)}
    caption_rows = [[row_of[c] for c in caps] for caps in data.captions]
    with acc.main_process_first():  # rank 0 fills the on-disk embedding cache, the others read it
        text_table = encoder.encode_to_disk_cache(captions, cache_dir() / "captions")
    log(f"{report.num_pairs} image–caption pairs, {len(captions)} distinct captions, {resolution}px, {precision}")
    hint = allocator_hint(acc.device, cfg.batch_size)
    log(hint) if hint else None
    policy = parse_policy(cfg.augment)
    P = None  # optional second critic through a frozen in-domain feature network (Projected-GAN style)
    if cfg.feature_critic:
        from .features import FeatureNet, ProjectedCritic

        if resolution != 64:
            raise ValueError(f"feature_critic: the feature network looks at 64-px images; this model is {resolution} px")
        P = ProjectedCritic(FeatureNet.from_pretrained(cfg.feature_critic), text_dim=encoder.dim,
                            cond_dim=D.config.cond_dim).train()
        if cfg.channels_last:
            _to_channels_last(acc.device, P)
    # a fine-tune's prompts outside its data (the sheet's, or keep_prompts): held by the keep term, shown in the samples
    others, other_table, dropped = _prompts_outside(encoder, cfg.keep_prompts, text_table) if cfg.init else ([], None, [])
    keep_table = None  # sentence vectors of the prompts whose images the keep term holds
    if G_init is not None:
        if not others:
            raise ValueError(f"keep: every keep prompt is a near-paraphrase of a caption in the data (cosine >= "
                             f"{KEEP_TOO_CLOSE}); give other keep_prompts or set keep to 0")
        keep_table = other_table
        log(f"keep {keep:g}: holding {len(others)} prompts (and blends of them) to what {cfg.init} draws (keep 0: off)"
            + (f"; left out as too close to the data's captions: {', '.join(dropped)}" if dropped else ""))
    # --------------------------------------------------------------------------------------------- optimisers
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    opt_p = torch.optim.Adam([q for q in P.parameters() if q.requires_grad], lr=cfg.lr_d,
                             betas=(cfg.beta1, cfg.beta2)) if P is not None else None
    step = 0
    if cfg.resume and (run / CHECKPOINT).is_file():
        state = load_checkpoint(run / CHECKPOINT)
        if state["data_fingerprint"] != data.fingerprint():
            log("warning: the data changed since this checkpoint was written; continuing with the new data")
        try:
            G.load_state_dict(state["G"]), D.load_state_dict(state["D"]), G_ema.load_state_dict(state["G_ema"])
            opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
            if P is not None and "P" in state:
                P.load_state_dict(state["P"]), opt_p.load_state_dict(state["opt_p"])
        except (RuntimeError, ValueError, KeyError) as e:
            first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e).splitlines()[0])
            raise CheckpointError(f"{run / CHECKPOINT} is from a different model than this run builds "
                                  f"({_changed_architecture(run, cfg) or first}): resume it with the settings it was "
                                  f"started with, or train into another --run-dir") from None
        step = int(state["step"])
        if P is not None and "P" not in state:
            log(f"the checkpoint has no feature critic: starting {cfg.feature_critic} heads fresh at step {step}")
        _set_rng(state["rng"][min(acc.process_index, len(state["rng"]) - 1)])
        log(f"resumed from {run / CHECKPOINT} at step {step}")
        # the optimiser states carry the old run's learning rates: this run's config decides (lr decay on resume)
        for opt, lr in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d), (opt_p, cfg.lr_d)):
            if opt is not None and opt.param_groups[0]["lr"] != lr:
                log(f"learning rate {opt.param_groups[0]['lr']:g} -> {lr:g} (this run's config)")
                for group in opt.param_groups:
                    group["lr"] = lr
    elif cfg.resume:
        log(f"no checkpoint in {run}: starting from step 0")
    sampler = EpochSampler(len(data), cfg.seed, _balance_weights(data.groups, cfg.balance_by, log))
    batch_size = min(cfg.batch_size, len(data))  # a few pictures: every batch holds all of them
    if batch_size < cfg.batch_size:
        log(f"batch size {cfg.batch_size} is more than the {len(data)} pairs of the data: using {batch_size}")
    # its own generator: creating an iterator must not draw from the global RNG (exact resume)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=True,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    G, D, opt_g, opt_d = acc.prepare(G, D, opt_g, opt_d)
    loader = acc.prepare_data_loader(loader, device_placement=False)  # sharded per process; batches moved below
    if P is not None:
        P, opt_p = acc.prepare(P, opt_p)
    P_plain = acc.unwrap_model(P) if P is not None else None
    D_plain = acc.unwrap_model(D)
    critics = [D_plain] + ([P_plain] if P is not None else [])  # frozen during G's step
    dev = acc.device
    G_ema.to(dev)  # accelerate moved G (and D, P) to the device; the EMA copy was made before that
    G_init = G_init.to(dev) if G_init is not None else None
    keep_table = keep_table.to(dev) if keep_table is not None else None
    text_table = text_table.to(dev)
    z_dim = acc.unwrap_model(G).config.z_dim
    # 8 captions spread over the data; a fine-tune shows 2 prompts from outside it instead of the last two (forgetting)
    spread = [captions[i] for i in np.linspace(0, len(captions) - 1, 8 - len(others[:2])).astype(int)]
    sample_prompts = cfg.sample_prompts or spread + others[:2]
    if main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        (run / "samples").mkdir(exist_ok=True)

    def pick_captions(idx: torch.Tensor) -> torch.Tensor:
        """Rows of the caption table: one caption per image, drawn at random among its captions (a new draw every step)."""
        # idx stays on the CPU (the loader does not move batches), so this reads no GPU result and does not stall it
        return torch.tensor([random.choice(caption_rows[i]) for i in idx.tolist()]).to(dev, non_blocking=True)

    def checkpoint() -> None:
        _check_losses(window, step, run)  # the losses not yet read since the last log line: a diverged run writes none
        _check_finite(acc.unwrap_model(G), D_plain, step)
        if main:
            save_checkpoint(run / CHECKPOINT, {
                "G": acc.unwrap_model(G).state_dict(), "D": D_plain.state_dict(), "G_ema": G_ema.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step, "config": asdict(cfg),
                "data_fingerprint": data.fingerprint(), "rng": [_get_rng()],
                **({"P": P_plain.state_dict(), "opt_p": opt_p.state_dict()} if P is not None else {})})
            emit({"type": "checkpoint", "step": step, "path": str(run / CHECKPOINT)})
            # the exported model follows the checkpoints, so a long run always has a usable model folder
            export(acc.unwrap_model(G), G_ema, D_plain, encoder, encoder_id, cfg.out, default_truncation)
            emit({"type": "exported", "path": str(cfg.out), "step": step})
        acc.wait_for_everyone()

    def sample() -> None:
        if not main:
            return
        e = encoder.encode(sample_prompts).to(dev)
        z = torch.cat([_seed_noise(s, z_dim) for s in cfg.sample_seeds]).to(dev)
        with torch.no_grad():
            rows = [G_ema(z, e[i : i + 1].expand(len(z), -1)) for i in range(len(e))]
        images = [_to_pil(x) for x in torch.cat(rows)]
        path = run / "samples" / f"step-{step:07d}.png"
        make_grid(images, cols=len(cfg.sample_seeds) * 2).save(path)
        emit({"type": "sample", "step": step, "path": str(path), "prompts": sample_prompts})

    def evaluate() -> None:
        """Held-out metrics with the EMA generator — reported only, never a training signal."""
        if not (main and cfg.eval_every and cfg.eval_data):
            return
        from .evaluate import quick_metrics
        from .pipeline import noise_for_seeds

        def generate(prompts, seeds):
            with torch.no_grad():
                return G_ema(noise_for_seeds(list(seeds), z_dim).to(dev), encoder.encode(list(prompts)).to(dev))

        try:
            record = {"step": step, **quick_metrics(generate, data_dir=cfg.eval_data, evaluator=cfg.evaluator,
                                                        text_encoder=encoder)}
        except Exception as e:  # metrics are a report: a missing evaluator must not end hours of training
            log(f"warning: evaluation at step {step} failed and was skipped: {type(e).__name__}: {e}")
            return
        with open(stats_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        emit({"type": "eval", **record})

    # --------------------------------------------------------------------------------------------- the loop
    emit({"type": "start", "step": step, "total": cfg.steps}) if main else None
    window, t_window, t_start, start_step = [], time.perf_counter(), time.perf_counter(), step
    stats_file = run / "stats.jsonl"
    status = "completed"
    if step == 0 and main:
        sample()
    steps_per_epoch = len(loader)
    while step < cfg.steps:
        epoch, position = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)  # batch order is a function of the step, so a resumed run sees the same batches
        for real, idx in (acc.skip_first_batches(loader, position) if position else loader):
            if step >= cfg.steps:
                break
            if should_stop():
                status = "stopped"
                break
            real = real.to(dev, non_blocking=True)
            rows = pick_captions(idx)
            e = text_table[rows]
            e_wrong = torch.roll(e, shifts=1, dims=0)  # another image's caption: a mismatched pair
            z = torch.randn(real.shape[0], z_dim, device=dev)

            # ---- D step: real pairs up, fake and mismatched pairs down, MA-GP on real pairs every gp_every steps
            with_gp = cfg.gp_weight > 0 and step % cfg.gp_every == 0
            with torch.no_grad(), autocast():
                fake = G(z, e)
            real_in = diff_augment(real, policy).requires_grad_(with_gp)
            fake_in = diff_augment(fake.float(), policy)
            e_in = e.clone().requires_grad_(with_gp)
            with autocast():
                out_real, out_fake, out_wrong = (o.float() for o in D(
                    torch.cat([real_in, fake_in]), torch.cat([e_in, e]), mismatched=e_wrong))
            loss_real = F.relu(1.0 - out_real).mean()
            loss_fake = F.relu(1.0 + out_fake).mean()
            loss_wrong = F.relu(1.0 + out_wrong).mean()
            loss_d = loss_real + 0.5 * (loss_fake + loss_wrong)
            penalty = torch.zeros((), device=dev)
            if with_gp:
                g_img, g_txt = torch.autograd.grad(out_real.sum(), (real_in, e_in), create_graph=True)
                # the sentence enters D scaled by √d (TextMap): penalise the gradient in that unit-variance space
                g_txt = g_txt / D_plain.text_map.scale
                grad = torch.cat([g_img.flatten(1), g_txt.flatten(1)], dim=1)
                penalty = grad.norm(2, dim=1).pow(cfg.gp_power).mean()
                loss_d = loss_d + cfg.gp_weight * cfg.gp_every * penalty
            opt_d.zero_grad(set_to_none=True)
            acc.backward(loss_d)
            opt_d.step()
            loss_p = torch.zeros((), device=dev)
            if P is not None:  # the feature critic: same game on the same augmented pairs, no penalty
                with autocast():
                    p_real, p_fake, p_wrong = (o.float() for o in P(
                        torch.cat([real_in.detach(), fake_in]), torch.cat([e, e]), mismatched=e_wrong))
                loss_p = F.relu(1.0 - p_real).mean() + 0.5 * (F.relu(1.0 + p_fake).mean() + F.relu(1.0 + p_wrong).mean())
                opt_p.zero_grad(set_to_none=True)
                acc.backward(loss_p)
                opt_p.step()

            # ---- G step: fool D on (G(z, caption), caption)
            for critic in critics:
                critic.requires_grad_(False)
            # ---- and, on a quarter of the batch, a second noise for the same caption: mode seeking (MSGAN) pushes
            #      G to turn different noise into different images instead of one image per prompt
            q = real.shape[0] // 4 if cfg.mode_seeking > 0 else 0
            z2 = torch.randn(q, z_dim, device=dev)
            # ---- and, with keep, as many prompts from outside the data (blends of two of them), to be drawn as the
            #      init model draws them with the same noise
            k = real.shape[0] if G_init is not None else 0
            z_keep, e_keep = torch.randn(k, z_dim, device=dev), (_blend_prompts(keep_table, k) if k else e[:0])
            n, nq = real.shape[0], real.shape[0] + q
            with autocast():
                out = G(torch.cat([z, z2, z_keep]), torch.cat([e, e[:q], e_keep]))  # one forward pass (DDP-friendly)
                fake, fake2, kept = out[:n], out[n:nq], out[nq:]
                fake_in = diff_augment(fake.float(), policy)
                loss_g = -D_plain.scores(fake_in, e)[0].float().mean()
                if P is not None:
                    loss_g = loss_g - cfg.feature_critic_weight * P_plain.scores(fake_in, e)[0].float().mean()
            loss_ms = torch.zeros((), device=dev)
            if q:
                ratio = (fake[:q] - fake2).float().abs().mean((1, 2, 3)) / (z[:q] - z2).abs().mean(1)
                loss_ms = 1.0 / (ratio.mean() + 1e-5)
                loss_g = loss_g + cfg.mode_seeking * loss_ms
            loss_keep = torch.zeros((), device=dev)
            if k:
                with torch.no_grad(), autocast():
                    target = G_init(z_keep, e_keep)
                loss_keep = (kept.float() - target.float()).abs().mean()
                loss_g = loss_g + keep * loss_keep
            opt_g.zero_grad(set_to_none=True)
            acc.backward(loss_g)
            opt_g.step()
            for critic in critics:
                critic.requires_grad_(True)

            # ---- EMA of G (ramped up so early samples are not dominated by the random init or, in a fine-tune,
            #      by the init model; without the ramp a continued run keeps the init's long average)
            decay = min(cfg.ema_decay, (1 + step) / (10 + step)) if cfg.ema_rampup else cfg.ema_decay
            with torch.no_grad():  # one fused update over all tensors (a launch per tensor made GPU steps launch-bound)
                torch._foreach_lerp_(list(G_ema.parameters()), [p.detach() for p in acc.unwrap_model(G).parameters()],
                                     1 - decay)
            step += 1

            losses = torch.stack([loss_d, loss_real, loss_fake, loss_wrong, penalty, loss_g, loss_ms, loss_p,
                                  loss_keep]).detach().float()
            window.append(losses)  # read at log lines and checkpoints only: reading them every step stalls a GPU
            if step % cfg.log_every == 0 or step == cfg.steps:
                _check_losses(window, step, run)
                mean = acc.reduce(torch.stack(window).mean(0), reduction="mean").tolist()
                now = time.perf_counter()
                rate = len(window) / max(now - t_window, 1e-9)
                record = {"step": step, "d": mean[0], "d_real": mean[1], "d_fake": mean[2], "d_mismatch": mean[3],
                          "penalty": mean[4], "g": mean[5], "mode_seeking": mean[6], "d_feature": mean[7], "keep": mean[8], "it_s": rate, "img_s": rate * batch_size * acc.num_processes,
                          "eta_s": (cfg.steps - step) / max(rate, 1e-9), "elapsed_s": now - t_start}
                window, t_window = [], now
                if main:
                    with open(stats_file, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    emit({"type": "step", "total": cfg.steps, **record})
            if step % cfg.sample_every == 0:
                sample()
            if step % cfg.checkpoint_every == 0:
                checkpoint()
            if cfg.eval_every and step % cfg.eval_every == 0:
                evaluate()
        else:
            continue
        break
    # --------------------------------------------------------------------------------------------- finish
    if step > start_step and step % cfg.checkpoint_every:
        checkpoint()
    if step > start_step and step % cfg.sample_every:
        sample()
    if main and not (Path(cfg.out) / "model_index.json").is_file():
        export(acc.unwrap_model(G), G_ema, D_plain, encoder, encoder_id, cfg.out, default_truncation)
        emit({"type": "exported", "path": str(cfg.out), "step": step})
    acc.wait_for_everyone()
    result = {"status": status, "step": step, "run_dir": str(run), "out": str(cfg.out)}
    emit({"type": "done", **result}) if main else None
    return result


def _to_channels_last(device: torch.device, *modules: torch.nn.Module) -> None:
    """NHWC layout for the convolutions (measured faster in CPU training steps, below in README); MPS stays NCHW."""
    if device.type in ("cpu", "cuda"):
        for module in modules:
            module.to(memory_format=torch.channels_last)


def export(G: Generator, G_ema: Generator, D: Discriminator, encoder, encoder_id: str | None, out: str | os.PathLike,
           default_truncation: float = 1.0):
    """Write a pipeline folder (EMA generator for inference + the discriminator for later fine-tuning); a fine-tune
    keeps its init's default truncation."""
    from .pipeline import T2IGANPipeline

    gen = copy.deepcopy(G).cpu()
    gen.load_state_dict(G_ema.state_dict())
    pipe = T2IGANPipeline(generator=gen.eval(), discriminator=copy.deepcopy(D).cpu().eval(),
                          text_encoder=encoder.model, tokenizer=encoder.tokenizer, text_encoder_id=encoder_id,
                          default_truncation=default_truncation)
    pipe.save_pretrained(out)


def _validate(cfg: TrainConfig) -> None:
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
    if cfg.upsample not in UPSAMPLE:
        raise ValueError(f"upsample must be one of {UPSAMPLE}, got {cfg.upsample!r}")
    if cfg.batch_size < 2:
        raise ValueError("batch_size must be at least 2 (mismatched pairs come from other images in the batch)")
    parse_policy(cfg.augment)


# new-model-only settings and where a fine-tuned model has them instead
_ARCHITECTURE = {"z_dim": ("G", "z_dim"), "cond_dim": ("G", "cond_dim"),
                 "upsample": ("G", "upsample"), "g_channels": ("G", "channels"), "d_channels": ("D", "channels")}


def _report_ignored_architecture(cfg: TrainConfig, G, D, log) -> None:
    """Fine-tuning keeps the init model's architecture: say which requested settings that overrides."""
    nets, defaults = {"G": G, "D": D}, {f.name: f.default for f in fields(TrainConfig)}
    for name, (net, key) in _ARCHITECTURE.items():
        wanted, have = getattr(cfg, name), nets[net].config[key]
        wanted = list(wanted) if isinstance(wanted, tuple) else wanted
        if wanted not in (None, defaults[name]) and wanted != have:  # defaults were not asked for: nothing to report
            log(f"{name} {wanted} ignored: fine-tuning keeps the architecture of {cfg.init} ({name} = {have})")




# fine-tuning's default keep weight: on 8 pictures of 4 new emoji, 300 steps, 30 learned them as closely as 10 with less
# forgetting, and 100 learned them less (model card, "keep" pilot; benchmarks/fine_tune_keep.py)
KEEP = 30.0
KEEP_TOO_CLOSE = 0.85  # cosine of MiniLM sentence vectors: "a blue heart" vs "a red heart" is 0.78


def _changed_architecture(run: Path, cfg: TrainConfig) -> str:
    """What a resumed run asks for differently from the run folder's config.json, in the model's shape."""
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return ""
    now = asdict(cfg)
    keys = ("init", "resolution", "g_channels", "d_channels", "z_dim", "cond_dim", "encoder", "upsample")
    changed = [f"{k} {saved.get(k)!r}, now {now[k]!r}" for k in keys
               if k in saved and _plain(saved.get(k)) != _plain(now[k])]
    return ("it was started with " + "; ".join(changed)) if changed else ""


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def _balance_weights(groups: list[str] | None, field_name: str | None, log) -> torch.Tensor | None:
    """Sampling weight per image, 1 / (images in its group): every group is drawn equally often (None: no groups)."""
    if groups is None:
        return None
    count: dict[str, int] = {}
    for g in groups:
        count[g] = count.get(g, 0) + 1
    sizes = sorted(count.values())
    log(f"balanced by {field_name!r}: {len(count)} groups drawn equally often ({sizes[0]}–{sizes[-1]} images each, "
        f"median {sizes[len(sizes) // 2]})")
    return torch.tensor([1.0 / count[g] for g in groups], dtype=torch.double)


def _keep_weight(cfg: TrainConfig, grown: bool = False) -> float:
    """The keep term's weight: as set, or by default KEEP for a fine-tune (init) and 0 for a new model or one grown
    in resolution or width (growing is for learning more, not for holding what it drew)."""
    return float(cfg.keep) if cfg.keep is not None else (KEEP if cfg.init and not grown else 0.0)


def _prompts_outside(encoder, prompts: list[str] | None, data_table: torch.Tensor):
    """Prompts (default: the sheet's) that are not near-paraphrases (cosine >= KEEP_TOO_CLOSE) of the data's captions,
    which a fine-tune is meant to change: (prompts, their sentence vectors, the prompts left out)."""
    from .sheet import SHEET_PROMPTS

    prompts = [p.strip() for p in (prompts or SHEET_PROMPTS) if isinstance(p, str) and p.strip()]
    table = encoder.encode(prompts).float()
    far = ((table @ data_table.float().T).amax(1) < KEEP_TOO_CLOSE).tolist()
    return [p for p, f in zip(prompts, far) if f], table[torch.tensor(far)], [p for p, f in zip(prompts, far) if not f]


def _blend_prompts(table: torch.Tensor, k: int) -> torch.Tensor:
    """k unit vectors, each a random blend of two rows of `table`: the space between the prompts is held too."""
    i, j = (torch.randint(len(table), (k,), device=table.device) for _ in range(2))
    w = torch.rand(k, 1, device=table.device)
    mixed = (1 - w) * table[i] + w * table[j]
    return mixed / mixed.norm(dim=1, keepdim=True).clamp_min(1e-8)








def _check_losses(window: list[torch.Tensor], last_step: int, run: Path) -> None:
    """Raise TrainingDiverged naming the first step with a non-finite loss among `window`, the losses of the steps up
    to `last_step`."""
    if not window:
        return
    finite = torch.isfinite(torch.stack(window)).all(1).tolist()
    if all(finite):
        return
    bad = finite.index(False)
    losses, step = window[bad], last_step - len(window) + 1 + bad
    raise TrainingDiverged(
        f"non-finite loss at step {step} (D={losses[0]:.4g}, G={losses[5]:.4g}, penalty={losses[4]:.4g}); "
        f"training stopped and nothing was written — the last checkpoint in {run} is intact. "
        "Try lower learning rates or precision='fp32'.")


def _check_finite(G, D, step: int) -> None:
    for name, model in (("generator", G), ("discriminator", D)):
        for pname, p in model.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingDiverged(f"{name} weight {pname} is NaN/inf at step {step}: not writing a checkpoint")




def _seed_noise(seed: int, z_dim: int) -> torch.Tensor:
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(seed))


def _to_pil(x: torch.Tensor):
    from PIL import Image

    arr = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def _get_rng() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": json.dumps(np.random.get_state()[1].tolist()),
             "numpy_pos": int(np.random.get_state()[2]), "python": json.dumps(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(json.loads(state["numpy"]), dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(json.loads(state["python"])), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
