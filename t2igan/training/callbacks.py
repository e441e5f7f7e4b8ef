"""What a training run does besides training, as callbacks the loop calls after every step and at the end: stats
and progress events, the divergence guard, checkpoints (and the model folder), sample grids, held-out metrics.

The CLI and the background job both run the loop with `default_callbacks`; each reports through the run's `emit`.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..card import write_card
from ..checkpoint import save_checkpoint
from ..evaluate import quick_metrics
from ..images import make_grid, to_pil
from ..pipeline import T2IGANPipeline, noise_for_seeds
from ..weights import resolve_model
from .config import CHECKPOINT
from .state import Run, rng_state


class TrainingDiverged(RuntimeError):
    """Losses or weights became NaN/inf: training stopped before anything broken was written."""


class Callback:
    def on_start(self, run: Run) -> None: ...

    def on_step(self, run: Run, losses: dict[str, torch.Tensor]) -> None: ...

    def on_end(self, run: Run, status: str) -> None: ...


class Periodic(Callback):
    """Acts every `every` steps, and once more at the end for the steps since it last did."""

    def __init__(self, every: int):
        self.every = every

    def act(self, run: Run) -> None: ...

    def on_step(self, run: Run, losses) -> None:
        if run.step % self.every == 0:
            self.act(run)

    def on_end(self, run: Run, status: str) -> None:
        if run.step > run.start_step and run.step % self.every:
            self.act(run)


class Stats(Callback):
    """Keeps each step's losses (as tensors: reading them every step would stall a GPU) and, every `every` steps,
    checks them, averages them over the processes, appends them to stats.jsonl and emits a 'step' event."""

    def __init__(self, every: int):
        self.every = every
        self.window: list[dict[str, torch.Tensor]] = []

    def on_start(self, run: Run) -> None:
        self.t_window = self.t_start = time.perf_counter()

    def check(self, run: Run) -> None:
        """Raise TrainingDiverged naming the first step since the last check whose losses are not finite."""
        for k, losses in enumerate(self.window):
            if not all(torch.isfinite(v).item() for v in losses.values()):
                step = run.step - len(self.window) + 1 + k
                raise TrainingDiverged(
                    f"non-finite loss at step {step} (D={losses['d'].item():.4g}, G={losses['g'].item():.4g}, "
                    f"penalty={losses['penalty'].item():.4g}); training stopped and nothing was written — the last "
                    f"checkpoint in {run.folder} is intact. Try lower learning rates or precision='fp32'.")

    def on_step(self, run: Run, losses: dict[str, torch.Tensor]) -> None:
        self.window.append({k: v.detach().float() for k, v in losses.items()})
        if run.step % self.every and run.step != run.cfg.steps:
            return
        self.check(run)
        keys = list(self.window[0])
        mean = run.acc.reduce(torch.stack([torch.stack([w[k] for k in keys]) for w in self.window]).mean(0),
                              reduction="mean").tolist()
        now = time.perf_counter()
        rate = len(self.window) / max(now - self.t_window, 1e-9)
        record = {"step": run.step, **dict(zip(keys, mean)), "it_s": rate,
                  "img_s": rate * run.batch_size * run.acc.num_processes,
                  "eta_s": (run.cfg.steps - run.step) / max(rate, 1e-9), "elapsed_s": now - self.t_start}
        self.window, self.t_window = [], now
        if run.main:
            with open(run.folder / "stats.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            run.emit({"type": "step", "total": run.cfg.steps, **record})


class Checkpoints(Periodic):
    """Every `every` steps and at the end: the checkpoint (models, optimisers, step, config, RNG) and the model folder
    (`cfg.out`), so a long run always has a usable model. Nothing is written once the losses or weights diverged."""

    def __init__(self, every: int, stats: Stats):
        super().__init__(every)
        self.stats = stats

    def act(self, run: Run) -> None:
        self.stats.check(run)  # the losses not yet read since the last log line
        for name, model in (("generator", run.acc.unwrap_model(run.G)), ("discriminator", run.D_plain)):
            for pname, p in model.named_parameters():
                if not torch.isfinite(p).all():
                    raise TrainingDiverged(f"{name} weight {pname} is NaN/inf at step {run.step}: not writing a "
                                           "checkpoint")
        if run.main:
            extra = {"P": run.P_plain.state_dict(), "opt_p": run.opt_p.state_dict()} if run.P is not None else {}
            save_checkpoint(run.folder / CHECKPOINT, {
                "G": run.acc.unwrap_model(run.G).state_dict(), "D": run.D_plain.state_dict(),
                "G_ema": run.G_ema.state_dict(), "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
                "step": run.step, "config": asdict(run.cfg), "data_fingerprint": run.data.fingerprint(),
                "rng": [rng_state()], **extra})
            run.emit({"type": "checkpoint", "step": run.step, "path": str(run.folder / CHECKPOINT)})
            save_model(run)
        run.acc.wait_for_everyone()

    def on_end(self, run: Run, status: str) -> None:
        super().on_end(run, status)
        if run.main and not (Path(run.cfg.out) / "model_index.json").is_file():
            save_model(run)
        run.acc.wait_for_everyone()


def save_model(run: Run) -> None:
    """The model folder: the EMA generator for drawing, the discriminator for later fine-tunes, the text encoder by
    name (or stored, for one from a local folder); a fine-tune keeps its base's default truncation."""
    generator = copy.deepcopy(run.acc.unwrap_model(run.G)).cpu()
    generator.load_state_dict(run.G_ema.state_dict())
    T2IGANPipeline(generator=generator.eval(), discriminator=copy.deepcopy(run.D_plain).cpu().eval(),
                   text_encoder=run.encoder.model, tokenizer=run.encoder.tokenizer, text_encoder_id=run.encoder_id,
                   default_truncation=run.default_truncation, styles=run.styles).save_pretrained(run.cfg.out)
    write_card(run.cfg.out, base=resolve_model(run.cfg.init) if run.cfg.init else None, pairs=len(run.data),
               step=run.step, total=run.cfg.steps, batch_size=run.batch_size,
               resolution=generator.config.resolution, encoder=run.encoder_id)
    run.emit({"type": "saved", "path": str(run.cfg.out), "step": run.step})


class Samples(Periodic):
    """A grid of the EMA generator's images (each row: two prompts, each across the fixed seeds) at the start, every
    `every` steps and at the end, in the run folder's samples/."""

    def act(self, run: Run) -> None:
        if not run.main:
            return
        e = run.encoder.encode(run.sample_prompts).to(run.device)
        z = noise_for_seeds(list(run.cfg.sample_seeds), run.z_dim).to(run.device)
        with torch.no_grad():
            rows = [run.G_ema(z, e[i : i + 1].expand(len(z), -1)) for i in range(len(e))]
        path = run.folder / "samples" / f"step-{run.step:07d}.png"
        make_grid(to_pil(torch.cat(rows)), cols=len(run.cfg.sample_seeds) * 2).save(path)
        run.emit({"type": "sample", "step": run.step, "path": str(path), "prompts": run.sample_prompts})

    def on_start(self, run: Run) -> None:
        if run.step == 0:
            self.act(run)


class HeldOutMetrics(Callback):
    """Every `every` steps: held-out metrics of the EMA generator into stats.jsonl (a report, never a training
    signal; a missing evaluator is a warning, not the end of hours of training)."""

    def __init__(self, every: int, data_dir: str, evaluator: str | None):
        self.every, self.data_dir, self.evaluator = every, data_dir, evaluator

    def on_step(self, run: Run, losses) -> None:
        if not run.main or run.step % self.every:
            return

        def generate(prompts, seeds):
            with torch.no_grad():
                return run.G_ema(noise_for_seeds(list(seeds), run.z_dim).to(run.device),
                                 run.encoder.encode(list(prompts)).to(run.device))

        try:
            record = {"step": run.step, **quick_metrics(generate, data_dir=self.data_dir, evaluator=self.evaluator,
                                                        text_encoder=run.encoder)}
        except Exception as e:  # noqa: BLE001 - any failure of the report is reported, not raised
            run.log(f"warning: evaluation at step {run.step} failed and was skipped: {type(e).__name__}: {e}")
            return
        with open(run.folder / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        run.emit({"type": "eval", **record})


def default_callbacks(cfg) -> list[Callback]:
    """What every run does: stats and the divergence guard, checkpoints, sample grids, and metrics if asked."""
    stats = Stats(cfg.log_every)
    callbacks = [stats, Checkpoints(cfg.checkpoint_every, stats), Samples(cfg.sample_every)]
    if cfg.eval_every and cfg.eval_data:
        callbacks.append(HeldOutMetrics(cfg.eval_every, cfg.eval_data, cfg.evaluator))
    return callbacks
