"""T2IGANPipeline: prompt → sentence embedding (+ noise) → generator → images, in diffusers' conventions."""
from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.image_processor import VaeImageProcessor

from . import directions as sliders
from .atomic import new_folder, recover_interrupted_save
from .device import resolve_precision
from .drawing import Drawing
from .latent import Latent
from .model_lock import MODEL_LOCK
from .models import Discriminator, Generator
from .text import DEFAULT_ENCODER, TextEncoder, load_encoder_parts, portable_encoder_id

MAX_IMAGES = 256          # per call: keeps one request from exhausting memory
MAX_PROMPT_CHARS = 2000   # longer prompts are cut; the tokenizer keeps far fewer tokens anyway
SEED_MAX = 2**63 - 1
KEEP_ON_RESAVE = ("README.md", "prompt-sheet.png")
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}

Prompt = str | list[str] | dict[str, float]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation row-wise; falls back to linear when the vectors are (anti)parallel."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-8), b / b.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    lerp = (1 - t) * a + t * b
    out = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    return torch.where(so.abs() < 1e-4, lerp, out)


def noise_for_seeds(seeds: list[int], z_dim: int) -> torch.Tensor:
    """One noise row per seed, drawn on the CPU so a seed gives the same image on every device."""
    rows = []
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= SEED_MAX:
            raise ValueError(f"seed must be a whole number between 0 and {SEED_MAX}, got {s!r}")
        rows.append(torch.randn(z_dim, generator=torch.Generator("cpu").manual_seed(s)))
    return torch.stack(rows)


class T2IGANPipeline(DiffusionPipeline):
    """Text-to-image with a conditional GAN: one generator forward pass per image.

    Components: `generator` (the image network), `text_encoder` + `tokenizer` (transformers), and optionally the
    `discriminator`, kept so that fine-tuning starts from a trained critic. The text encoder is not copied into saved
    folders when it can be loaded by name (`text_encoder_id`, e.g. the bundled 'minilm'): a model folder stays small.
    `default_truncation` is the noise scale this model draws with when a call gives none (stored in model_index.json,
    so the app, the CLI and Python draw the same images for a model by default).
    """

    _optional_components = ["text_encoder", "tokenizer", "discriminator"]

    def __init__(self, generator: Generator, text_encoder=None, tokenizer=None,
                 discriminator: Discriminator | None = None, text_encoder_id: str | None = DEFAULT_ENCODER,
                 default_truncation: float = 1.0, styles: list[str] | None = None):
        super().__init__()
        default_truncation = finite_number(default_truncation, "default_truncation", 0.0, 4.0)
        styles = [str(s) for s in (styles or [])]
        if text_encoder is None or tokenizer is None:
            if not text_encoder_id:
                raise ValueError("T2IGANPipeline needs a text encoder: pass text_encoder + tokenizer or text_encoder_id")
            text_encoder, tokenizer = load_encoder_parts(text_encoder_id)
        self.register_modules(generator=generator, text_encoder=text_encoder, tokenizer=tokenizer,
                              discriminator=discriminator)
        self.register_to_config(text_encoder_id=portable_encoder_id(text_encoder_id),
                                default_truncation=default_truncation, styles=styles)
        self.image_processor = VaeImageProcessor(do_resize=False, do_normalize=True)
        self._text: TextEncoder | None = None
        self._drawings: dict[torch.dtype, tuple] = {}  # dtype → (the weights it was built from, Drawing)
        self.precision = "auto"
        self.directions: tuple[torch.Tensor, list[str], list[dict]] | None = None  # (vectors, names, report)
        dim = self.text.dim
        if dim != generator.config.text_dim:
            raise ValueError(f"the text encoder gives {dim}-d embeddings but the generator expects "
                             f"{generator.config.text_dim}-d (text_dim): they were not trained together")

    @property
    def precision(self) -> str:
        """The generator's arithmetic when drawing: 'auto' (bf16 where the device has it natively, see `render`),
        'bf16' or 'fp32'."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if not isinstance(value, str):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {value!r}")
        resolve_precision(value, "cpu")  # raises ValueError naming the choices
        self._precision = value.lower()

    @property
    def text(self) -> TextEncoder:
        """The pooling + caching wrapper around `text_encoder`/`tokenizer`."""
        if self._text is None or self._text.model is not self.text_encoder:
            self._text = TextEncoder(self.text_encoder, self.tokenizer)
        return self._text

    # ------------------------------------------------------------------ prompts and noise
    def styled(self, prompt: Prompt, style: str | None) -> Prompt:
        """The prompt in one of the drawing styles the model was trained on (`config.styles`): its captions said
        the style in words ("grinning face, google style"), so asking for it is adding those words. None or 'any':
        the prompt as it is, and seeds choose the style."""
        if style in (None, "", "any"):
            return prompt
        known = list(self.config.get("styles") or [])
        if style not in known:
            raise ValueError(f"style '{style}' is not one this model was trained on (it knows: "
                             f"{', '.join(['any', *known])})")
        words = f", {style} style"
        if isinstance(prompt, dict):
            return {f"{p}{words}": w for p, w in prompt.items()}
        return f"{prompt}{words}" if isinstance(prompt, str) else [f"{p}{words}" for p in prompt]

    def encode_prompt(self, prompt: Prompt) -> torch.Tensor:
        """Sentence embeddings [P, dim]; a dict {prompt: weight} is blended into one unit-norm embedding."""
        if isinstance(prompt, dict):
            if not prompt:
                raise ValueError("prompt mix is empty")
            texts = [self._clean(p) for p in prompt]
            weights = torch.tensor([float(w) for w in prompt.values()])
            if not torch.isfinite(weights).all() or weights.sum() <= 0 or (weights < 0).any():
                raise ValueError(f"prompt weights must be finite, non-negative and not all zero, got {list(prompt.values())}")
            mixed = (self.text.encode(texts) * weights[:, None]).sum(0, keepdim=True)
            return mixed / mixed.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("no prompt given")
        return self.text.encode([self._clean(p) for p in prompts])

    @staticmethod
    def _clean(prompt) -> str:
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be text, got {type(prompt).__name__}")
        prompt = " ".join(prompt.replace("\x00", " ").split())[:MAX_PROMPT_CHARS]
        if not prompt:
            raise ValueError("prompt is empty: type what the image should show")
        return prompt

    def prepare_latents(self, batch_size: int, generator=None, seed: int | None = None,
                        variation: float = 0.0) -> torch.Tensor:
        """Noise [batch, z_dim]: from `seed` (image k uses seed + k), a torch.Generator, or a list of them.

        With `seed` and `variation` > 0, image 0 is the seed's own image and the others are small moves around it.
        """
        z_dim = self.generator.config.z_dim
        if seed is not None and variation > 0:
            base = noise_for_seeds([int(seed)], z_dim)
            steps = torch.randn(batch_size, z_dim, generator=torch.Generator().manual_seed(int(seed) ^ 0x5EED))
            steps[0] = 0
            norm = torch.sqrt(1 + variation**2 * (torch.arange(batch_size) > 0).float())[:, None]
            return (base + variation * steps) / norm  # keeps the noise at unit variance
        if seed is not None:
            return noise_for_seeds([int(seed) + k for k in range(batch_size)] if isinstance(seed, int) else seed, z_dim)
        if isinstance(generator, (list, tuple)):
            if len(generator) != batch_size:
                raise ValueError(f"got {len(generator)} torch generators for {batch_size} images")
            return torch.stack([torch.randn(z_dim, generator=g, device=g.device).cpu() for g in generator])
        device = generator.device if generator is not None else torch.device("cpu")
        return torch.randn(batch_size, z_dim, generator=generator, device=device).cpu()

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(self, prompt: Prompt | None = None, num_images_per_prompt: int = 1, generator=None,
                 seed: int | None = None, truncation: float | None = None, variation: float = 0.0,
                 latents: torch.Tensor | Latent | None = None,
                 prompt_embeds: torch.Tensor | None = None, output_type: str = "pil", return_dict: bool = True,
                 style: str | None = None, fine_prompt: Prompt | None = None, split: int | None = None,
                 level_weights: list[float] | None = None, directions: list[float] | dict[int, float] | None = None,
                 strength: float = 1.0, source_prompt: Prompt | None = None):
        """Generate `num_images_per_prompt` images for each prompt.

        `truncation` scales the noise: below 1 trades variety for typical, cleaner images (None: the model's
        `default_truncation`). Same prompt, seed and
        device give the same image; with `seed`, image k uses seed + k, so a seed's image does not depend on n
        (or, with `variation` > 0, image 0 is the seed's image and the rest are variations of it). `style`: one of
        `config.styles` (see `styled`).

        `fine_prompt`: the fine levels follow this prompt and the coarse ones `prompt` ("a teddy bear" for the layout,
        "made of crochet" for colour and texture): levels from `split` on (default: the middle one), or one weight
        per level in `level_weights` (0 = `prompt`, 1 = `fine_prompt`, between: a blend of their conditions).

        `directions`: how far to move along the model's direction sliders (`self.directions`, from
        `t2igan directions`), in standard deviations (of the noise, or of real prompts' text codes): a list (one per
        slider) or {slider: amount}.

        `latents`: a noise tensor [images, z_dim] (diffusers' meaning: drawn with the prompt, scaled by truncation),
        or a `Latent` (noise + one condition per level, from `latent()`, `Latent.mix`, `invert` or a file): drawn
        as it is, or with a `prompt` edited toward it (see `edit`: `strength`, `source_prompt`, `split`,
        `level_weights`). A `truncation` given with a Latent scales its noise once more; `seed` with `variation` > 0
        and `num_images_per_prompt` > 1 gives variations of it.
        """
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        if isinstance(latents, Latent):
            latent = self._from_latent(latents, prompt, num_images_per_prompt, seed, truncation, variation, strength,
                                       source_prompt, split, level_weights, style)
        else:
            latent = self.latent(prompt, num_images_per_prompt, generator=generator, seed=seed, truncation=truncation,
                                 variation=variation, noise=latents, prompt_embeds=prompt_embeds, style=style,
                                 fine_prompt=fine_prompt, split=split, level_weights=level_weights)
        if directions:
            latent = latent.shifted(self.direction_offset(directions))
        return self._output(self.render(latent), output_type, return_dict)

    def _from_latent(self, latent: Latent, prompt, n, seed, truncation, variation, strength, source_prompt, split,
                     level_weights, style) -> Latent:
        n = whole_number(n, "num_images_per_prompt", 1, MAX_IMAGES)
        if len(latent) * n > MAX_IMAGES:
            raise ValueError(f"at most {MAX_IMAGES} images per call, asked for {len(latent) * n}")
        scale = 1.0 if truncation is None else finite_number(truncation, "truncation", 0.0, 4.0)
        latent = Latent(latent.noise.float() * scale, latent.conditions.float(), latent.source)
        if prompt is not None:
            latent = self.edit(latent, prompt, strength=strength, source_prompt=source_prompt, split=split,
                               level_weights=level_weights, style=style)
        elif source_prompt is not None or split is not None or level_weights is not None:
            raise ValueError("source_prompt, split and level_weights shape an edit: give the prompt to edit toward")
        if n == 1:
            return latent
        rows = latent[[k for k in range(len(latent)) for _ in range(n)]]
        variation = finite_number(variation, "variation", 0.0, 4.0)
        if variation == 0:
            return rows
        # as prepare_latents: the first image of each group is the latent itself, the others small moves around it
        g = torch.Generator().manual_seed((0 if seed is None else whole_number(seed, "seed", 0, SEED_MAX)) ^ 0x5EED)
        steps = torch.randn(rows.noise.shape, generator=g)
        steps[::n] = 0
        rms = rows.noise.pow(2).mean(1, keepdim=True).sqrt()
        norm = torch.sqrt(1 + variation**2 * (steps.abs().sum(1, keepdim=True) > 0).float())
        return Latent((rows.noise + variation * rms * steps) / norm, rows.conditions, rows.source)

    def edit(self, latent: Latent, prompt: Prompt, strength: float = 1.0, source_prompt: Prompt | None = None,
             split: int | None = None, level_weights: list[float] | None = None, style: str | None = None) -> Latent:
        """Move a Latent's conditions toward `prompt`, keeping its noise.

        A difference edit when the source is known — `source_prompt` ("a red apple" → "a green apple"), or, for a
        fitted picture, what it was fitted from (`Latent.source`: the encoder's guess or the prompt given to
        `invert`): every level moves by `strength` × (prompt − source), so what the picture has of its own stays.
        Otherwise every level moves `strength` of the way to the prompt's condition. `split` / `level_weights`
        limit the edit to some levels (e.g. split=2: the layout levels 4 and 8 px stay as they are)."""
        strength = finite_number(strength, "strength", -2.0, 2.0)
        target = self._conditions(self.encode_prompt(self.styled(prompt, style)))
        if target.shape[0] not in (1, len(latent)):
            raise ValueError(f"give one prompt, or one per latent ({len(latent)}), got {target.shape[0]}")
        if source_prompt is not None:
            source = self._conditions(self.encode_prompt(self.styled(source_prompt, style)))
            if source.shape[0] != target.shape[0]:
                raise ValueError("give as many source prompts as prompts")
            move = target - source
        elif latent.source is not None:
            move = target - latent.source[:, None, :]
        else:
            move = target - latent.conditions
        w = self.level_weights(0 if split is None and level_weights is None else split, level_weights)[None, :, None]
        return Latent(latent.noise, latent.conditions + strength * w * move, latent.source)

    def direction_offset(self, amounts: list[float] | dict[int, float]) -> torch.Tensor:
        """The offset [z_dim + cond_dim] of the direction sliders at `amounts`, for `Latent.shifted`."""
        found = self.directions
        count = 0 if found is None else len(found[0])
        a = sliders.amounts_vector(amounts, count)
        config = self.generator.config
        return a @ found[0] if count else torch.zeros(config.z_dim + config.cond_dim)

    @torch.no_grad()
    def latent(self, prompt: Prompt | None = None, num_images_per_prompt: int = 1, generator=None,
               seed: int | None = None, truncation: float | None = None, variation: float = 0.0,
               noise: torch.Tensor | None = None, prompt_embeds: torch.Tensor | None = None,
               style: str | None = None, fine_prompt: Prompt | None = None, split: int | None = None,
               level_weights: list[float] | None = None) -> Latent:
        """The `Latent` that `__call__` with the same arguments draws: the noise (truncation applied) and the prompt's
        condition at every level (or, with `fine_prompt`, the fine levels' from it). Draw it with
        `pipe(latents=...)`; `Latent.mix` combines two."""
        n = whole_number(num_images_per_prompt, "num_images_per_prompt", 1, MAX_IMAGES)
        truncation = self._truncation(truncation)
        variation = finite_number(variation, "variation", 0.0, 4.0)
        if prompt_embeds is None:
            if prompt is None:
                raise ValueError("give a prompt (or prompt_embeds)")
            prompt_embeds = self.encode_prompt(self.styled(prompt, style))
        embeds = prompt_embeds.float().repeat_interleave(n, dim=0)
        if embeds.shape[0] > MAX_IMAGES:
            raise ValueError(f"at most {MAX_IMAGES} images per call, asked for {embeds.shape[0]}")
        z_dim = self.generator.config.z_dim
        if noise is None:
            noise = self.prepare_latents(embeds.shape[0], generator=generator, seed=seed, variation=variation)
        elif tuple(noise.shape) != (embeds.shape[0], z_dim):
            raise ValueError(f"latents must have shape {(embeds.shape[0], z_dim)}, got {tuple(noise.shape)}")
        conditions = self._conditions(embeds)
        if fine_prompt is not None or split is not None or level_weights is not None:
            if fine_prompt is None:
                raise ValueError("split and level_weights choose which levels follow fine_prompt: give fine_prompt")
            fine = self.encode_prompt(self.styled(fine_prompt, style))
            if fine.shape[0] not in (1, prompt_embeds.shape[0]):
                raise ValueError(f"give one fine prompt, or one per prompt ({prompt_embeds.shape[0]}), "
                                 f"got {fine.shape[0]}")
            fine = self._conditions(fine.expand(prompt_embeds.shape[0], -1).repeat_interleave(n, dim=0))
            w = self.level_weights(split, level_weights)[None, :, None]
            conditions = (1 - w) * conditions + w * fine
        return Latent(noise.float() * truncation, conditions)

    def level_weights(self, split: int | None = None, weights: list[float] | None = None) -> torch.Tensor:
        """Per level (coarse to fine), how much it follows the fine prompt: `weights` as given, or 0 below `split`
        and 1 from it on (default split: the middle level, where layout ends and detail begins)."""
        levels = self.generator.levels
        if weights is not None:
            if split is not None:
                raise ValueError("give split or level_weights, not both")
            if len(weights) != levels:
                raise ValueError(f"level_weights needs one weight per level ({levels}), got {len(weights)}")
            return torch.tensor([finite_number(w, "level weight", 0.0, 1.0) for w in weights])
        split = levels // 2 if split is None else whole_number(split, "split", 0, levels)
        return (torch.arange(levels) >= split).float()

    def _truncation(self, truncation: float | None) -> float:
        """The call's noise scale, or the model's default when the call gives none."""
        if truncation is None:
            truncation = self.config.get("default_truncation", 1.0)
        return finite_number(truncation, "truncation", 0.0, 4.0)

    def _conditions(self, embeds: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings → per-level conditions [B, levels, cond_dim] (on the CPU, in fp32)."""
        with self._eval():
            return self.generator.conditions(embeds.to(self.generator.device, self.generator.dtype)).float().cpu()

    @torch.no_grad()
    def render(self, latent: Latent) -> torch.Tensor:
        """A Latent → images in [-1, 1], [B, 3, H, W] on the CPU.

        With `precision` 'auto' the generator runs in bf16 where the device has native bf16 (CPUs with AVX-512 BF16
        or AMX, CUDA GPUs with bf16; device.fast_bf16) and in fp32 elsewhere; `pipe.precision = "fp32"` draws in
        fp32. On a CPU it draws through `drawing.Drawing`, the same network rearranged into fewer operations (same
        images to within rounding): emoji-64-v2 drew 1.36-1.38 ms per image at batch 16 in bf16 against 1.86 under
        bf16 autocast (2-core AVX-512 BF16 CPU, 2 threads, `t2igan bench --peer`), bf16 and fp32 images differing by
        under 1/255 on average."""
        if latent.levels != self.generator.levels or latent.noise.shape[1] != self.generator.config.z_dim:
            raise ValueError(f"this latent (noise {tuple(latent.noise.shape[1:])}, {latent.levels} levels) does not "
                             f"fit this model (noise ({self.generator.config.z_dim},), {self.generator.levels} levels)")
        latent = latent.to(self.generator.device, self.generator.dtype)
        drawing = self._drawing()
        if drawing is not None:
            return drawing.synthesize(latent.noise, latent.conditions).float().cpu()
        with self._eval(), self._autocast():
            return self.generator.synthesize(latent.noise, latent.conditions).float().cpu()

    def _drawing(self) -> Drawing | None:
        """The generator rearranged for drawing (drawing.py) in this call's precision, rebuilt when its weights
        change (a fine-tune steps them in place); None where it does not apply: off the CPU (not measured there),
        bilinear up-sampling."""
        g = self.generator
        if g.device.type != "cpu" or g.config.get("upsample", "nearest") != "nearest":
            return None
        bf16 = resolve_precision(self.precision, g.device) == "bf16" and g.dtype == torch.float32
        dtype = torch.bfloat16 if bf16 else g.dtype
        weights = (id(g), tuple((p.data_ptr(), p._version) for p in g.parameters()))
        cached = self._drawings.get(dtype)
        if cached is None or cached[0] != weights:
            cached = self._drawings[dtype] = (weights, Drawing.of(g, dtype))
        return cached[1]

    def _autocast(self):
        """bf16 autocast around a forward pass of the generator, when `precision` asks for it (see render)."""
        device = self.generator.device
        bf16 = (resolve_precision(self.precision, device) == "bf16" and device.type in ("cpu", "cuda")
                and self.generator.dtype == torch.float32)
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    @contextmanager
    def _eval(self):
        """The generator in eval mode for the block (a training job may hold it in train mode)."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            yield
        finally:
            self.generator.train(was_training)

    def _output(self, images: torch.Tensor, output_type: str, return_dict: bool):
        images = self.image_processor.postprocess(images.cpu(), output_type=output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def interpolate(self, prompt_a: Prompt, prompt_b: Prompt | None = None, seed_a: int = 0, seed_b: int | None = None,
                    num_frames: int = 8, truncation: float | None = None, output_type: str = "pil",
                    return_dict: bool = True):
        """Frames that walk from (prompt_a, seed_a) to (prompt_b, seed_b); omit either end to hold it fixed."""
        n = whole_number(num_frames, "num_frames", 2, MAX_IMAGES)
        truncation = self._truncation(truncation)
        if prompt_b is None and (seed_b is None or seed_b == seed_a):
            raise ValueError("interpolate needs another end: a second prompt, or a second seed other than the first")
        e_a = self.encode_prompt(prompt_a)[:1]
        e_b = self.encode_prompt(prompt_b)[:1] if prompt_b is not None else e_a
        z_a = noise_for_seeds([seed_a], self.generator.config.z_dim)
        z_b = noise_for_seeds([seed_b], self.generator.config.z_dim) if seed_b is not None else z_a
        ts = [k / (n - 1) for k in range(n)]
        e = torch.cat([slerp(e_a, e_b, t) for t in ts])
        z = torch.cat([slerp(z_a, z_b, t) for t in ts])
        return self._output(self.render(Latent(z * truncation, self._conditions(e))), output_type, return_dict)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory: str | os.PathLike, include_text_encoder: bool | None = None, **kwargs):
        """Write a model folder atomically (model_index.json + component folders, safetensors only).

        The text encoder is stored by name (`text_encoder_id`) unless `include_text_encoder` or the pipeline has no id
        (as when its encoder came from a local folder).
        """
        include = include_text_encoder if include_text_encoder is not None else not self.config.text_encoder_id
        target = Path(save_directory)
        te, tok = self.text_encoder, self.tokenizer
        with new_folder(target) as tmp:
            try:
                if not include:
                    self.register_modules(text_encoder=None, tokenizer=None)
                super().save_pretrained(str(tmp), safe_serialization=True, **kwargs)
            finally:
                self.register_modules(text_encoder=te, tokenizer=tok)
            # where it was loaded from is a path on this machine, not model data
            for config in [tmp / "model_index.json", *tmp.glob("*/config.json")]:
                data = json.loads(config.read_text())
                if data.pop("_name_or_path", None) is not None:
                    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            if self.directions is not None:
                sliders.save(tmp, *self.directions)
            for keep in KEEP_ON_RESAVE:  # a model card written by hand survives re-exports during training
                if (target / keep).is_file() and not (tmp / keep).exists():
                    shutil.copy2(target / keep, tmp / keep)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load a model folder; only safetensors weights are ever read (no pickle)."""
        kwargs["use_safetensors"] = True
        path = Path(pretrained_model_name_or_path)
        if not path.exists():
            recover_interrupted_save(path)  # a save killed between its two renames left the folder aside
        if path.exists() and not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"{path} is not a t2igan model folder: it has no model_index.json")
        if path.is_dir():
            pickles = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
            if pickles:
                warnings.warn(f"{path}: ignoring {', '.join(pickles)} — t2igan only loads safetensors (pickle files "
                              "can run code when loaded)", stacklevel=2)
        with MODEL_LOCK:  # diffusers patches process-wide torch state while it loads (model_lock.py)
            pipe = super().from_pretrained(str(pretrained_model_name_or_path), **kwargs)
        config = pipe.generator.config
        pipe.directions = sliders.load(path, config.z_dim, config.cond_dim) if path.is_dir() else None
        return pipe


def whole_number(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {int(value)}")
    return int(value)


def finite_number(value, name: str, lo: float, hi: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number between {lo} and {hi}, got {value}")
    return value
