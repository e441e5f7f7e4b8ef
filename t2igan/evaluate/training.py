"""Training the evaluator (CLIP/DAMSM-style image–caption matching on the dataset's train split)."""
from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import new_folder
from ..data import DataConfig, load_captioned_images
from ..device import pick_device, set_threads
from ..text import TextEncoder
from .evaluation import EvalContext, _caption_table
from .network import TRAINING_INFO, Evaluator


# ================================================================================================ training
def _translate(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by a random whole number of pixels in [-max_shift, max_shift], filling with white."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    iy = (dy[:, None] + torch.arange(h))[:, None, :, None]
    ix = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], iy, ix]


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                     false_negative: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of (image, caption) pairs; pairs where the caption also describes the other
    image (`false_negative[a, b]`: caption b is one of image a's captions, a ≠ b) are left out of the negatives."""
    logits = logit_scale.exp() * img @ txt.T
    if false_negative is not None:
        logits = logits.masked_fill(false_negative, float("-inf"))
    target = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train_evaluator(data_dir: str | os.PathLike, out_dir: str | os.PathLike, minutes: float | None = None,
                    steps: int | None = None, *, val_data: str | os.PathLike | None = None, batch_size: int = 128,
                    lr: float = 2e-3, weight_decay: float = 1e-4, max_shift: int | None = None, seed: int = 0,
                    resolution: int = 64, widths: Sequence[int] = (32, 64, 128, 256), text_encoder="minilm",
                    text_encoder_id: str | None = None, threads: int | None = None, device: str | None = None,
                    log_every: int = 50, progress: Callable[[dict], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> dict:
    """Train an `Evaluator` on a captioned-image folder/zip (the dataset's *train* split) and save it to `out_dir`.

    Stops after `steps` or `minutes` (whichever comes first; 2000 steps if neither is given). AdamW, linear warm-up
    then cosine decay over the budget, random caption per image per step, random ±max_shift-pixel translations
    (default resolution/16; no colour jitter: colour words matter). Writes config.json + safetensors and
    training.json (time, steps, real-image R-precision on the training data and on `val_data`). Returns that info.
    """

    if steps is None and minutes is None:
        steps = 2000
    if steps is not None and (isinstance(steps, bool) or int(steps) < 1):
        raise ValueError(f"steps must be >= 1, got {steps}")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"minutes must be a positive number, got {minutes}")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (the other images in a batch are the negatives)")
    emit = progress or (lambda e: None)
    should_stop = should_stop or (lambda: False)
    set_threads(threads)
    dev = pick_device(device)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder = text_encoder if isinstance(text_encoder, TextEncoder) else TextEncoder.from_pretrained(text_encoder)
    # the name stored in config.json, by which `t2igan eval` loads the same encoder (give it with a loaded encoder)
    encoder_id = text_encoder_id or (text_encoder if isinstance(text_encoder, str) else "minilm")
    data, report = load_captioned_images(data_dir, DataConfig(resolution=resolution, min_pairs=2))
    emit({"type": "dataset", "summary": report.summary()})
    captions = data.unique_captions()
    row_of = {c: i for i, c in enumerate(captions)}
    caption_rows = [[row_of[c] for c in caps] for caps in data.captions]
    caption_sets = [set(r) for r in caption_rows]
    text_table = _caption_table(encoder, captions).to(dev)
    model = Evaluator(resolution=resolution, widths=tuple(widths), embed_dim=encoder.dim,
                      text_encoder_id=encoder_id).to(dev).train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    other = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    bs = min(batch_size, len(data))
    shift = resolution // 16 if max_shift is None else max_shift
    warmup = 100 if steps is None else min(100, max(1, steps // 10))
    budget_s = minutes * 60 if minutes is not None else None
    emit({"type": "log", "message": f"evaluator: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
                                    f"{len(data)} images, {len(captions)} captions, batch {bs}, device {dev}"})
    t0 = time.perf_counter()
    step, losses, order, pos = 0, [], [], 0
    while True:
        elapsed = time.perf_counter() - t0
        done = max(step / steps if steps else 0.0, elapsed / budget_s if budget_s else 0.0)
        if done >= 1 or should_stop():
            break
        if pos + bs > len(order):
            order, pos = torch.randperm(len(data), generator=gen).tolist(), 0
        idx = order[pos : pos + bs]
        pos += bs
        rows = [rng.choice(caption_rows[i]) for i in idx]
        fn = torch.tensor([[a != b and rows[b] in caption_sets[idx[a]] for b in range(bs)] for a in range(bs)],
                          device=dev)
        images = _translate(data.images[idx].float().div(127.5).sub(1.0), shift, gen)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        _, v = model(images)
        loss = contrastive_loss(v, text_table[torch.tensor(rows, device=dev)], model.logit_scale, fn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        losses.append(float(loss.detach()))
        if step % log_every == 0:
            mean = float(np.mean(losses[-log_every:]))
            temperature = float(1 / model.logit_scale.detach().exp())
            emit({"type": "step", "step": step, "loss": mean, "temperature": temperature,
                  "elapsed_s": time.perf_counter() - t0, "fraction": done})
    train_s = time.perf_counter() - t0
    model.eval()
    info = {"steps": step, "train_s": train_s, "images_seen": step * bs, "batch_size": bs,
            "loss": float(np.mean(losses[-log_every:])) if losses else None,
            "temperature": float(1 / model.logit_scale.detach().exp()), "data": str(data_dir),
            "data_fingerprint": data.fingerprint(),
            "parameters": sum(p.numel() for p in model.parameters()), "seed": seed, "lr": lr, "max_shift": shift}
    # real-image ceilings with the evaluation protocol (1 of 100), on the training data and on held-out data
    for name, path in (("train", data_dir), ("val", val_data)):
        if path is None:
            continue
        try:
            ctx = EvalContext(path, "test" if name == "val" else "train", evaluator=model, n_prompts=1000, seed=0,
                              diversity_prompts=0, text_encoder=encoder, device=dev, other_split=False)
            info[f"r_precision_real_{name}"] = ctx.refs["r_precision_real"]
            info[f"fd_real_halves_{name}"] = ctx.refs["fd_real_halves"]
        except (ValueError, OSError) as e:
            info[f"{name}_error"] = str(e)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with new_folder(out) as tmp:
        model.cpu().save_pretrained(str(tmp), safe_serialization=True)
        (tmp / TRAINING_INFO).write_text(json.dumps(info, indent=2))
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
    info["out"] = str(out)
    emit({"type": "done", **info})
    return info
