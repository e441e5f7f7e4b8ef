"""A training run's state, and how it is set up from a TrainConfig: models (new, fine-tuned, grown), data, critics,
optimisers, a resumed checkpoint. The loop (loop.py) and its callbacks (callbacks.py) read and update one `Run`."""
from __future__ import annotations

import copy
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checkpoint import CheckpointError, load_checkpoint
from ..data import DataConfig, load_captioned_images
from ..device import allocator_hint, resolve_precision, set_threads
from ..features import FeatureNet, ProjectedCritic
from ..grow import deepen_to, narrow_generator, widen_generator
from ..models import Discriminator, Generator
from ..paths import cache_dir
from ..pipeline import T2IGANPipeline
from ..sheet import SHEET_PROMPTS
from ..text import DEFAULT_ENCODER, TextEncoder
from ..weights import resolve_model
from .config import CHECKPOINT, KEEP_TOO_CLOSE, TrainConfig, keep_weight, validate


@dataclass
class Run:
    """Everything the loop and the callbacks share. G, D and P are what accelerate prepared (wrapped under DDP);
    the `_plain` ones are the modules themselves."""

    cfg: TrainConfig
    acc: object
    emit: Callable[[dict], None]
    folder: Path
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: Generator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    encoder: TextEncoder
    encoder_id: str | None
    default_truncation: float
    data: object
    loader: object
    sampler: object
    caption_rows: list[list[int]]
    text_table: torch.Tensor
    sample_prompts: list[str]
    batch_size: int
    precision: str
    P: torch.nn.Module | None = None
    opt_p: torch.optim.Optimizer | None = None
    G_init: Generator | None = None
    keep: float = 0.0
    keep_table: torch.Tensor | None = None
    teacher: Generator | None = None
    teacher_critic: Discriminator | None = None
    styles: list[str] = field(default_factory=list)
    step: int = 0
    start_step: int = 0

    @property
    def main(self) -> bool:
        return self.acc.is_main_process

    @property
    def device(self) -> torch.device:
        return self.acc.device

    @property
    def D_plain(self):
        return self.acc.unwrap_model(self.D)

    @property
    def P_plain(self):
        return self.acc.unwrap_model(self.P) if self.P is not None else None

    @property
    def z_dim(self) -> int:
        return self.G_ema.config.z_dim

    def log(self, message: str) -> None:
        if self.main:
            self.emit({"type": "log", "message": message})

    def autocast(self):
        """bf16 autocast around the forward passes (CPU AVX-512 / GPU); losses and the penalty are taken in fp32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")


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


def prepare_run(cfg: TrainConfig, emit: Callable[[dict], None], accelerator=None) -> Run:
    """Validate the config, build or load the models, load the data, make the optimisers and resume if asked."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    validate(cfg)
    set_threads(cfg.threads)
    use_cpu = (cfg.device or os.environ.get("T2IGAN_DEVICE") or "auto") == "cpu" or not torch.cuda.is_available()
    try:
        acc = accelerator or Accelerator(cpu=use_cpu)
    except ValueError as e:  # accelerate keeps one device per process
        raise ValueError(f"this process already trained on another device ({e}); start a new process to train on "
                         "the CPU") from None
    main = acc.is_main_process
    log = (lambda msg: emit({"type": "log", "message": msg})) if main else (lambda msg: None)
    set_seed(cfg.seed + acc.process_index)
    folder = cfg.run_path()
    if not cfg.resume and (folder / CHECKPOINT).is_file():  # never overwrite a run by accident
        raise ValueError(f"{folder} already holds a training run ({CHECKPOINT}): continue it with --resume "
                         f"(resume=True), or train into another run folder (--run-dir)")
    teacher_pipe = T2IGANPipeline.from_pretrained(resolve_model(cfg.teacher)) if cfg.teacher else None  # loaded once
    G, D, encoder, encoder_id, default_truncation, grown, styles = _models(cfg, log, teacher_pipe)
    teacher, teacher_critic = _teacher(cfg, teacher_pipe, G, encoder_id, log) if cfg.teacher else (None, None)
    G.train(), D.train()
    if cfg.channels_last:
        _to_channels_last(acc.device, *[m for m in (G, D, teacher, teacher_critic) if m is not None])
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    keep = keep_weight(cfg, grown)
    G_init = copy.deepcopy(G).eval().requires_grad_(False) if keep > 0 else None  # what the init draws, before resume
    data, report = load_captioned_images(cfg.data, DataConfig(resolution=G.config.resolution,
                                                              background=tuple(cfg.background),
                                                              min_pairs=cfg.min_pairs, group_by=cfg.balance_by))
    emit({"type": "dataset", "report": report.to_dict(), "summary": report.summary()}) if main else None
    captions = data.unique_captions()
    # a fine-tune draws in its base's styles, and in any new ones its captions name (continuing on more emoji sets)
    styles = list(dict.fromkeys([*(styles if cfg.init else []), *styles_in(data.captions)]))
    row_of = {c: i for i, c in enumerate(captions)}
    caption_rows = [[row_of[c] for c in caps] for caps in data.captions]
    with acc.main_process_first():  # rank 0 fills the on-disk embedding cache, the others read it
        text_table = encoder.encode_to_disk_cache(captions, cache_dir() / "captions")
    precision = resolve_precision(cfg.precision, acc.device)
    log(f"{report.num_pairs} image–caption pairs, {len(captions)} distinct captions, {G.config.resolution}px, "
        f"{precision}")
    hint = allocator_hint(acc.device, cfg.batch_size)
    log(hint) if hint else None
    P = None  # optional second critic through a frozen in-domain feature network (Projected-GAN style)
    if cfg.feature_critic:

        if G.config.resolution != 64:
            raise ValueError(f"feature_critic: the feature network looks at 64-px images; this model is "
                             f"{G.config.resolution} px")
        P = ProjectedCritic(FeatureNet.from_pretrained(cfg.feature_critic), text_dim=encoder.dim,
                            cond_dim=D.config.cond_dim).train()
        if cfg.channels_last:
            _to_channels_last(acc.device, P)
    # a fine-tune's prompts outside its data (the sheet's, or keep_prompts): held by keep, shown in the samples
    others, keep_table, dropped = (_prompts_outside(encoder, cfg.keep_prompts, text_table) if cfg.init
                                   else ([], None, []))
    if G_init is not None:
        if not others:
            raise ValueError(f"keep: every keep prompt is a near-paraphrase of a caption in the data (cosine >= "
                             f"{KEEP_TOO_CLOSE}); give other keep_prompts or set keep to 0")
        log(f"keep {keep:g}: holding {len(others)} prompts (and blends of them) to what {cfg.init} draws (keep 0: off)"
            + (f"; left out as too close to the data's captions: {', '.join(dropped)}" if dropped else ""))
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas)
    opt_p = torch.optim.Adam([q for q in P.parameters() if q.requires_grad], lr=cfg.lr_d, betas=betas) if P else None
    step = _resume(cfg, folder, data, G, D, G_ema, opt_g, opt_d, P, opt_p, acc, log) if cfg.resume else 0
    sampler = EpochSampler(len(data), cfg.seed, _balance_weights(data.groups, cfg.balance_by, log))
    batch_size = min(cfg.batch_size, len(data))  # a few pictures: every batch holds all of them
    if batch_size < cfg.batch_size:
        log(f"batch size {cfg.batch_size} is more than the {len(data)} pairs of the data: using {batch_size}")
    # its own generator: creating an iterator must not draw from the global RNG (exact resume)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=True,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    G, D, opt_g, opt_d = acc.prepare(G, D, opt_g, opt_d)
    loader = acc.prepare_data_loader(loader, device_placement=False)  # sharded per process; batches moved by the loop
    if P is not None:
        P, opt_p = acc.prepare(P, opt_p)
    dev = acc.device
    G_ema.to(dev)  # accelerate moved G (and D, P) to the device; the EMA copy was made before that
    # 8 captions spread over the data; a fine-tune shows 2 prompts from outside it instead of the last two (forgetting)
    spread = [captions[i] for i in np.linspace(0, len(captions) - 1, 8 - len(others[:2])).astype(int)]
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        (folder / "samples").mkdir(exist_ok=True)
    return Run(cfg=cfg, acc=acc, emit=emit, folder=folder, G=G, D=D, G_ema=G_ema, opt_g=opt_g, opt_d=opt_d,
               encoder=encoder, encoder_id=encoder_id, default_truncation=default_truncation, data=data, loader=loader,
               sampler=sampler, caption_rows=caption_rows, text_table=text_table.to(dev),
               sample_prompts=cfg.sample_prompts or spread + others[:2], batch_size=batch_size, precision=precision,
               P=P, opt_p=opt_p, G_init=G_init.to(dev) if G_init is not None else None, keep=keep,
               keep_table=keep_table.to(dev) if keep_table is not None else None,
               teacher=teacher.to(dev) if teacher is not None else None,
               teacher_critic=teacher_critic.to(dev) if teacher_critic is not None else None, styles=styles, step=step,
               start_step=step)


def _models(cfg: TrainConfig, log, teacher_pipe=None):
    """(G, D, text encoder, its id, default truncation, grown): a fine-tune's from its init (grown in resolution or
    generator width if asked), a new model's built from the config."""
    if not cfg.init:
        encoder = TextEncoder.from_pretrained(cfg.encoder)
        size = cfg.resolution or 64
        G = Generator(resolution=size, z_dim=cfg.z_dim, text_dim=encoder.dim, cond_dim=cfg.cond_dim,
                      channels=cfg.g_channels, upsample=cfg.upsample)
        D = Discriminator(resolution=size, text_dim=encoder.dim, cond_dim=cfg.cond_dim, channels=cfg.d_channels)
        return G, D, encoder, cfg.encoder, 1.0, False, []  # a local encoder folder is stored in the model folder

    init = T2IGANPipeline.from_pretrained(resolve_model(cfg.init))
    G, D = init.generator, init.discriminator
    shape = (G.config.resolution, list(G.config.channels))
    if cfg.resolution and cfg.resolution != G.config.resolution:  # progressive training: add finer levels
        low, (G, D) = G.config.resolution, deepen_to(G, D, cfg.resolution)
        log(f"model grown from {low} px to {cfg.resolution} px (the new levels start by up-sampling its images)")
    if D is None and teacher_pipe is not None and teacher_pipe.discriminator is not None:
        # a distilled student saved without one: a copy of the teacher's critic judges its drawings (the teacher's
        # own stays frozen for the feature match)
        D = copy.deepcopy(teacher_pipe.discriminator)
        log(f"{cfg.init} has no discriminator: starting from {cfg.teacher}'s")
    if D is None:
        log(f"{cfg.init} has no discriminator: fine-tuning starts with a fresh one")
        D = Discriminator(resolution=G.config.resolution, text_dim=G.config.text_dim, cond_dim=G.config.cond_dim)
    encoder_id = init.config.text_encoder_id
    if cfg.encoder not in (DEFAULT_ENCODER, encoder_id):
        log(f"encoder {cfg.encoder} ignored: fine-tuning keeps the text encoder of {cfg.init} "
            f"({encoder_id or 'stored in its folder'})")
    if cfg.g_channels and list(cfg.g_channels) != list(G.config.channels):
        before, wanted = list(G.config.channels), list(cfg.g_channels)
        pairs = list(zip(wanted, before)) if len(wanted) == len(before) else []
        if not pairs or not (all(n <= o for n, o in pairs) or all(n >= o for n, o in pairs)):
            raise ValueError(f"g_channels {wanted}: {cfg.init} has generator widths {before}; give as many widths, "
                             "each at least the init's (to widen it) or each at most (a narrower student to distill)")
        if all(n <= o for n, o in pairs):
            G = narrow_generator(G, cfg.g_channels, *_probe(init.text, G.config.z_dim, cfg.seed))
            log(f"generator narrowed {before} -> {list(G.config.channels)} (each level keeps its most active "
                "channels on the sheet's prompts)")
        else:
            G = widen_generator(G, cfg.g_channels, seed=cfg.seed)
            log(f"generator widened {before} -> {list(G.config.channels)} (same images at step 0)")
    _report_ignored_architecture(cfg, G, D, log)
    grown = (G.config.resolution, list(G.config.channels)) != shape
    return (G, D, init.text, encoder_id, init.config.get("default_truncation", 1.0), grown,
            list(init.config.get("styles") or []))


def _probe(encoder: TextEncoder, z_dim: int, seed: int, per_prompt: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise, sentence embeddings): the sheet's prompts with a few seeds each, to rank a generator's channels."""
    e = encoder.encode(SHEET_PROMPTS).float().repeat(per_prompt, 1)
    return torch.randn(len(e), z_dim, generator=torch.Generator().manual_seed(seed)), e


def _teacher(cfg: TrainConfig, t: T2IGANPipeline, G: Generator, encoder_id: str | None, log):
    """A distillation run's frozen teacher generator and its critic (for feature matching; None if it has none),
    from the teacher's pipeline `t`. G is made to read the teacher's conditions: its text map becomes the teacher's,
    frozen."""
    T, critic = t.generator, t.discriminator
    for key in ("resolution", "z_dim", "text_dim", "cond_dim"):
        if T.config[key] != G.config[key]:
            raise ValueError(f"teacher {cfg.teacher}: its generator has {key} {T.config[key]}, this run's "
                             f"{G.config[key]}; a student reads the same inputs as its teacher")
    teacher_encoder = t.config.text_encoder_id
    if encoder_id and teacher_encoder and teacher_encoder != encoder_id:
        raise ValueError(f"teacher {cfg.teacher} reads text encoder {teacher_encoder}, this run {encoder_id}")
    G.text_map.load_state_dict(T.text_map.state_dict())
    G.text_map.requires_grad_(False)
    log(f"distilling {cfg.teacher} (generator {list(T.config.channels)}) into {list(G.config.channels)}, weight "
        f"{cfg.distill:g}; adversarial {cfg.adversarial:g}"
        + ("" if critic is not None else f"; {cfg.teacher} has no discriminator: matching pixels only"))
    frozen = lambda m: m.eval().requires_grad_(False) if m is not None else None  # noqa: E731
    return frozen(T), frozen(critic)


STYLE_CAPTION = re.compile(r".+, ([a-z][a-z ]{0,30}) style")


def styles_in(captions: list[list[str]], share: float = 0.01) -> list[str]:
    """The drawing styles the captions name ("grinning face, google style" → 'google'), each on at least `share`
    of the images: what `pipe(prompt, style=...)` can ask a model trained on them for."""
    count: dict[str, int] = {}
    for caps in captions:
        for style in {m.group(1) for c in caps for m in [STYLE_CAPTION.fullmatch(c)] if m}:
            count[style] = count.get(style, 0) + 1
    return sorted(s for s, n in count.items() if n >= max(1, share * len(captions)))


def _resume(cfg, folder, data, G, D, G_ema, opt_g, opt_d, P, opt_p, acc, log) -> int:
    """Load the run folder's checkpoint into the models and optimisers; the step to go on from (0 if none)."""
    if not (folder / CHECKPOINT).is_file():
        log(f"no checkpoint in {folder}: starting from step 0")
        return 0
    state = load_checkpoint(folder / CHECKPOINT)
    if state["data_fingerprint"] != data.fingerprint():
        log("warning: the data changed since this checkpoint was written; continuing with the new data")
    try:
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"]), G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        if P is not None and "P" in state:
            P.load_state_dict(state["P"]), opt_p.load_state_dict(state["opt_p"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e).splitlines()[0])
        raise CheckpointError(f"{folder / CHECKPOINT} is from a different model than this run builds "
                              f"({_changed_architecture(folder, cfg) or first}): resume it with the settings it was "
                              f"started with, or train into another --run-dir") from None
    step = int(state["step"])
    if P is not None and "P" not in state:
        log(f"the checkpoint has no feature critic: starting {cfg.feature_critic} heads fresh at step {step}")
    set_rng_state(state["rng"][min(acc.process_index, len(state["rng"]) - 1)])
    log(f"resumed from {folder / CHECKPOINT} at step {step}")
    # the optimiser states carry the old run's learning rates and betas: this run's config decides (lr decay on
    # resume, or a changed recipe)
    betas = (cfg.beta1, cfg.beta2)
    for opt, lr in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d), (opt_p, cfg.lr_d)):
        if opt is not None and opt.param_groups[0]["lr"] != lr:
            log(f"learning rate {opt.param_groups[0]['lr']:g} -> {lr:g} (this run's config)")
        if opt is not None and tuple(opt.param_groups[0]["betas"]) != betas:
            log(f"Adam betas {tuple(opt.param_groups[0]['betas'])} -> {betas} (this run's config)")
        for group in opt.param_groups if opt is not None else []:
            group["lr"], group["betas"] = lr, betas
    return step


def _to_channels_last(device: torch.device, *modules: torch.nn.Module) -> None:
    """NHWC layout for the convolutions (faster CPU and CUDA training steps, the same maths); MPS stays NCHW."""
    if device.type in ("cpu", "cuda"):
        for module in modules:
            module.to(memory_format=torch.channels_last)


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


def _changed_architecture(folder: Path, cfg: TrainConfig) -> str:
    """What a resumed run asks for differently from the run folder's config.json, in the model's shape."""
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return ""
    now = asdict(cfg)
    plain = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    keys = ("init", "resolution", "g_channels", "d_channels", "z_dim", "cond_dim", "encoder", "upsample")
    changed = [f"{k} {saved.get(k)!r}, now {now[k]!r}" for k in keys
               if k in saved and plain(saved.get(k)) != plain(now[k])]
    return ("it was started with " + "; ".join(changed)) if changed else ""


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


def _prompts_outside(encoder, prompts: list[str] | None, data_table: torch.Tensor):
    """Prompts (default: the sheet's) that are not near-paraphrases (cosine >= KEEP_TOO_CLOSE) of the data's captions,
    which a fine-tune is meant to change: (prompts, their sentence vectors, the prompts left out)."""
    prompts = [p.strip() for p in (prompts or SHEET_PROMPTS) if isinstance(p, str) and p.strip()]
    table = encoder.encode(prompts).float()
    far = ((table @ data_table.float().T).amax(1) < KEEP_TOO_CLOSE).tolist()
    return [p for p, f in zip(prompts, far) if f], table[torch.tensor(far)], [p for p, f in zip(prompts, far) if not f]


def rng_state() -> dict:
    """Every RNG the loop draws from, for an exact resume."""
    state = {"torch": torch.get_rng_state(), "numpy": json.dumps(np.random.get_state()[1].tolist()),
             "numpy_pos": int(np.random.get_state()[2]), "python": json.dumps(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(json.loads(state["numpy"]), dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(json.loads(state["python"])), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
