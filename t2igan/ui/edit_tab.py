"""Edit tab: put a picture into the model, then change it with words, strength, levels and seeds."""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import torch

from ..images import picture_tensor, to_pil
from ..latent import Latent
from ..pipeline import SEED_MAX, finite_number, whole_number
from ..weights import model_fingerprint
from .generate_tab import USER_ERRORS, split_control
from .inputs import number, slider
from .inputs import picture as picture_input
from .messages import refusal
from .state import Studio, describe_pipeline, private_file

EDIT_LEVELS = "the edit changes"
PHOTO_NOTE = ("The model can only draw what it learned (emoji for the bundled one): a photo or a drawing comes back "
              "as the nearest thing it can draw.")


def invert(studio: Studio, picture: str | None, prompt: str, model: str | None, steps) -> tuple:
    """(original beside its redrawing, latent file, status)."""
    try:
        if not picture:
            raise ValueError("upload a picture first (PNG, JPEG, WebP or GIF)")
        steps = whole_number(steps, "steps", 0, 500)
        name = studio.model_name(model)
        projector = studio.projector(name)
        pipe = projector.pipe
        torch.set_num_threads(studio.generation_threads())
        fit = projector(picture, prompt=(prompt or "").strip() or None, steps=steps)
        original = to_pil(picture_tensor(picture, pipe.generator.config.resolution))[0]
        redrawn = pipe(latents=fit.latent).images[0]
        path = private_file("picture.safetensors")
        fit.latent.save(path, {"model": name, "fingerprint": model_fingerprint(name), "prompt": prompt or "",
                               "picture": Path(picture).name})
        status = (f"redrawn by {describe_pipeline(name, pipe)}: LPIPS {fit.lpips:.3f} (0 = the same) · "
                  f"PSNR {fit.psnr:.1f} dB · {fit.seconds:.1f} s")
        return [(original, "your picture"), (redrawn, "in the model")], str(path), status
    except USER_ERRORS as e:
        return [], None, refusal("invert", e)


def edit(studio: Studio, latent_file: str | None, prompt: str, model: str | None, strength, split, source_prompt: str,
         seed, n, variation) -> tuple[list, str]:
    """The edited picture (and variations of it): (images, status)."""
    try:
        if not latent_file:
            raise ValueError("put a picture into the model first (Put into the model)")
        latent, meta = Latent.load(latent_file)
        name = studio.model_name(model)
        pipe = studio.pipeline(name)
        split = whole_number(split, "split", 0, pipe.generator.levels)
        seed = whole_number(seed, "seed", 0, SEED_MAX)
        strength = finite_number(strength, "strength", -2.0, 2.0)
        torch.set_num_threads(studio.generation_threads())
        t0 = time.perf_counter()
        prompt = (prompt or "").strip() or None
        images = pipe(prompt, latents=latent, strength=strength, source_prompt=(source_prompt or "").strip() or None,
                      split=split if prompt else None, num_images_per_prompt=n, seed=seed, variation=variation).images
        ms = (time.perf_counter() - t0) * 1000
        other = meta.get("model") not in (None, name)
        note = f" · fitted to {meta['model']}: this model draws it differently" if other else ""
        return list(zip(images, [f"variation {k}" if k else "edit" for k in range(len(images))])), \
            f"{len(images)} images in {ms:.0f} ms{note}"
    except USER_ERRORS as e:
        return [], refusal("edit", e)


def build(studio: Studio, model: gr.Dropdown) -> dict:
    gr.Markdown("Upload a picture, put it into the model, then type what it should become. " + PHOTO_NOTE)
    with gr.Row():
        with gr.Column(scale=1):
            picture = picture_input(label="Your picture", sources=["upload", "clipboard"], elem_id="edit-picture",
                                    height=256)
            shows = gr.Textbox(label="What it shows (optional, e.g. 'a red apple': edits then keep more of it)",
                               value="", elem_id="edit-shows")
            steps = slider(0, 200, value=60, step=10, label="Fitting steps (more: closer, slower)",
                           elem_id="edit-steps")
            go = gr.Button("Put into the model", variant="primary", elem_id="invert-btn")
        with gr.Column(scale=1):
            pair = gr.Gallery(label="Your picture · the model's redrawing", columns=2, height=280, format="png",
                              preview=False,
                              elem_id="edit-pair", elem_classes=["pixelated"], object_fit="contain")
            fit_status = gr.Markdown(elem_id="invert-status")
            latent = gr.File(label="The picture in the model (.safetensors: `t2igan generate --latent`)",
                             elem_id="edit-latent", file_types=[".safetensors"])
    with gr.Row():
        target = gr.Textbox(label="Edit: what it should become", value="", scale=3, elem_id="edit-prompt")
        source = gr.Textbox(label="…changing from (optional, a gentler edit: 'a red apple' → 'a green apple')",
                            value="", scale=2, elem_id="edit-source")
    with gr.Row():
        strength = slider(0.0, 1.5, value=0.8, step=0.05, label="Strength (0 = the picture as it is)",
                          elem_id="edit-strength")
        split = slider(0, 5, value=0, step=1, elem_id="edit-split", **split_control(None, EDIT_LEVELS))
    with gr.Row():
        seed = number(label="Seed (for variations)", value=0, precision=0, minimum=0, elem_id="edit-seed")
        n = slider(1, 8, value=4, step=1, label="Images (the first: the edit; the others: variations)",
                   elem_id="edit-n")
        variation = slider(0.0, 1.0, value=0.3, step=0.05, label="Variation between images", elem_id="edit-variation")
    result = gr.Gallery(label="Edited", columns=4, height=300, format="png", elem_id="edit-result", preview=False,
                        elem_classes=["pixelated"], object_fit="contain")
    status = gr.Markdown(elem_id="edit-status")

    def run_invert(picture: str | None, prompt: str, model: str | None, steps: float):
        return studio.compute(invert, studio, picture, prompt, model, steps)

    def run_edit(latent: str | None, prompt: str, model: str | None, strength: float, split: float,
                 source_prompt: str, seed: float, n: float, variation: float):
        return studio.compute(edit, studio, latent, prompt, model, strength, split, source_prompt, seed, n, variation)

    def edit_after_fit(latent: str | None, *rest):  # no fit: its own status says why, without a second warning
        return run_edit(latent, *rest) if latent else ([], "")

    edit_inputs = [latent, target, model, strength, split, source, seed, n, variation]
    go.click(run_invert, [picture, shows, model, steps], [pair, latent, fit_status], api_name="invert",
             concurrency_id="gen").then(edit_after_fit, edit_inputs, [result, status], api_visibility="private",
                                        concurrency_id="gen")
    target.submit(run_edit, edit_inputs, [result, status], api_name="edit", concurrency_id="gen")
    source.submit(run_edit, edit_inputs, [result, status], api_visibility="private", concurrency_id="gen")
    seed.submit(run_edit, edit_inputs, [result, status], api_visibility="private", concurrency_id="gen")
    for moved in (strength, split, n, variation):
        moved.release(run_edit, edit_inputs, [result, status], api_visibility="private", concurrency_id="gen",
                      trigger_mode="always_last", show_progress="hidden")
    model.change(lambda m: gr.update(**split_control(m, EDIT_LEVELS)), model, split, api_visibility="private")
    return {"picture": picture, "shows": shows}
