"""The adversarial training loop, top to bottom (like nanoGPT's train.py, with NVlabs EDM's callbacks).

Generator G and discriminator D play a hinge-loss game on (image, caption) pairs:
  D learns: real image + its caption → high;  G(z, caption) + caption → low;  real image + another caption → low.
  G learns: make D score G(z, caption) + caption high.
(With critic_real = "teacher" a distillation's "real image" is the teacher's drawing of the same noise and caption.)
A matching-aware zero-centred gradient penalty (DF-GAN's MA-GP) on real pairs keeps D smooth in both the image and
the sentence, DiffAugment stops D memorising small data, and an EMA copy of G is what samples and the model folder use.

`train(config, progress, should_stop)` is called by the CLI (`t2igan train`), the background `TrainingJob` and
`accelerate launch` for several processes alike. What happens besides training (stats, checkpoints, samples,
metrics) is in callbacks.py; the losses are in losses.py; setting a run up is in state.py.
"""
from __future__ import annotations

import random
from typing import Callable

import torch

from ..augment import diff_augment, parse_policy
from .callbacks import Callback, default_callbacks
from .config import TrainConfig
from .losses import Adversarial, CriticLoss, Distill, Keep, MixLevels, ModeSeeking, blend_prompts
from .state import prepare_run

Progress = Callable[[dict], None]


def train(config: TrainConfig, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
          accelerator=None, callbacks: list[Callback] | None = None) -> dict:
    """Run (or resume) a training run; returns the final status. `should_stop` is polled once per step; `progress`
    receives every event (dicts with a 'type'); `callbacks` default to `default_callbacks(config)`."""
    emit = progress or (lambda event: None)
    should_stop = should_stop or (lambda: False)
    cfg = config
    run = prepare_run(cfg, emit, accelerator)
    callbacks = default_callbacks(cfg) if callbacks is None else callbacks
    acc, dev, G, D, P = run.acc, run.device, run.G, run.D, run.P
    policy, z_dim = parse_policy(cfg.augment), run.z_dim
    critic_loss = CriticLoss(cfg.gp_weight, cfg.gp_power, cfg.gp_every, run.autocast)
    adversarial, mode_seeking, keep, mix_levels = Adversarial(), ModeSeeking(), Keep(), MixLevels(cfg.mixing)
    distill = Distill(run.teacher_critic)
    zero = torch.zeros((), device=dev)
    levels = acc.unwrap_model(G).levels
    critics = [(1.0, run.D_plain)] + ([(cfg.feature_critic_weight, run.P_plain)] if P is not None else [])

    def pick_captions(idx: torch.Tensor) -> torch.Tensor:
        """Rows of the caption table: one caption per image, drawn at random among its captions, anew every step."""
        # idx stays on the CPU (the loader does not move batches), so this reads no GPU result and does not stall it
        return torch.tensor([random.choice(run.caption_rows[i]) for i in idx.tolist()]).to(dev, non_blocking=True)

    run.emit({"type": "start", "step": run.step, "total": cfg.steps}) if run.main else None
    for callback in callbacks:
        callback.on_start(run)
    status = "completed"
    steps_per_epoch = len(run.loader)
    while run.step < cfg.steps:
        epoch, position = divmod(run.step, steps_per_epoch)
        run.sampler.set_epoch(epoch)  # batch order is a function of the step, so a resumed run sees the same batches
        for real, idx in (acc.skip_first_batches(run.loader, position) if position else run.loader):
            if run.step >= cfg.steps:
                break
            if should_stop():
                status = "stopped"
                break
            real = real.to(dev, non_blocking=True)
            e = run.text_table[pick_captions(idx)]
            e_wrong = torch.roll(e, shifts=1, dims=0)  # another image's caption: a mismatched pair
            z = torch.randn(real.shape[0], z_dim, device=dev)

            # ---- D step: real pairs up, fake and mismatched pairs down, MA-GP on real pairs every gp_every steps
            #      (none in a distillation's match stage, adversarial 0: the critics are not asked)
            d = dict.fromkeys(("total", "real", "fake", "mismatch", "penalty"), zero)
            p = {"total": zero}
            if cfg.adversarial > 0:
                with torch.no_grad(), run.autocast():
                    fake = G(z, e)
                    if cfg.critic_real == "teacher":  # the teacher's drawing of the same noise and caption as real
                        real = run.teacher(z, e).float()
                real_in, fake_in = diff_augment(real, policy), diff_augment(fake.float(), policy)
                d = critic_loss(D, real_in, fake_in, e, e_wrong, penalty=critic_loss.penalty_due(run.step),
                                text_scale=run.D_plain.text_map.scale)
                run.opt_d.zero_grad(set_to_none=True)
                acc.backward(d["total"])
                run.opt_d.step()
            if P is not None and cfg.adversarial > 0:  # the feature critic: the same game on the same augmented pairs
                p = critic_loss(P, real_in.detach(), fake_in, e, e_wrong)
                run.opt_p.zero_grad(set_to_none=True)
                acc.backward(p["total"])
                run.opt_p.step()

            # ---- G step: fool the critics on (G(z, caption), caption), in one forward pass (DDP-friendly) with
            #      - mode seeking: on a quarter of the batch a second noise for the same caption (MSGAN), so that
            #        different noise gives different images instead of one image per prompt;
            #      - keep (fine-tunes): as many prompts from outside the data (blends of two), drawn as the init did;
            #      - mixing: on the batch's last rows the fine levels read another caption (MixLevels);
            #      - distillation: every image as the teacher draws it for the same noise and per-level captions
            for _, critic in critics:
                critic.requires_grad_(False)
            q = real.shape[0] // 4 if cfg.mode_seeking > 0 else 0
            k = real.shape[0] if run.G_init is not None else 0
            z2, z_keep = torch.randn(q, z_dim, device=dev), torch.randn(k, z_dim, device=dev)
            e_keep = blend_prompts(run.keep_table, k) if k else e[:0]
            e_levels, e_judged = mix_levels(e, levels)
            per_level = lambda x: x[:, None, :].expand(-1, levels, -1)  # noqa: E731 (a plain prompt at every level)
            n = real.shape[0]
            z_all, e_all = torch.cat([z, z2, z_keep]), torch.cat([e_levels, per_level(e[:q]), per_level(e_keep)])
            with run.autocast():
                out = G(z_all, e_all)
                fake, fake2, kept = out[:n], out[n : n + q], out[n + q :]
                g = {"adversarial": adversarial(critics, diff_augment(fake.float(), policy), e_judged)
                     if cfg.adversarial > 0 else zero}
                g["distill"] = zero
                if run.teacher is not None:
                    with torch.no_grad():
                        target = run.teacher(z_all, e_all)
                    g["distill"] = distill(out, target)
            g["mode_seeking"] = mode_seeking(fake[:q], fake2, z[:q], z2) if q else zero
            if k:
                with torch.no_grad(), run.autocast():
                    base = run.G_init(z_keep, e_keep)
                g["keep"] = keep(kept, base)
            else:
                g["keep"] = zero
            g["total"] = (cfg.adversarial * g["adversarial"] + cfg.mode_seeking * g["mode_seeking"]
                          + run.keep * g["keep"] + cfg.distill * g["distill"])
            run.opt_g.zero_grad(set_to_none=True)
            acc.backward(g["total"])
            run.opt_g.step()
            for _, critic in critics:
                critic.requires_grad_(True)

            # ---- EMA of G (ramped up so early samples are not dominated by the random init or, in a fine-tune,
            #      by the init model; without the ramp a continued run keeps the init's long average)
            decay = min(cfg.ema_decay, (1 + run.step) / (10 + run.step)) if cfg.ema_rampup else cfg.ema_decay
            with torch.no_grad():  # one fused update over all tensors (a launch per tensor made GPU steps launch-bound)
                torch._foreach_lerp_(list(run.G_ema.parameters()),
                                     [w.detach() for w in acc.unwrap_model(G).parameters()], 1 - decay)
            run.step += 1
            losses = {"d": d["total"], "d_real": d["real"], "d_fake": d["fake"], "d_mismatch": d["mismatch"],
                      "penalty": d["penalty"], "g": g["total"], "mode_seeking": g["mode_seeking"],
                      "d_feature": p["total"], "keep": g["keep"], "distill": g["distill"]}
            for callback in callbacks:
                callback.on_step(run, losses)
        else:
            continue
        break
    for callback in callbacks:
        callback.on_end(run, status)
    result = {"status": status, "step": run.step, "run_dir": str(run.folder), "out": str(cfg.out)}
    run.emit({"type": "done", **result}) if run.main else None
    return result
