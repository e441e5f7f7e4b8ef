"""Generate tab: prompt → images, live on slider release; interpolation strip + GIF."""
from __future__ import annotations

import random
import time

import gradio as gr
import torch

from ..images import save_animation
from ..pipeline import SEED_MAX, finite_number, whole_number
from ..text import EncoderNotAvailable
from ..weights import NoModelError, default_truncation, list_models, model_styles
from .inputs import number, slider
from .messages import refusal
from .state import Studio, describe_pipeline, private_file

EXAMPLES = ["grinning face", "a red apple", "a blue car", "a laughing face", "red heart", "rocket",
            "dog face", "a slice of pizza", "flag of japan", "a cat with heart eyes"]
USER_ERRORS = (NoModelError, EncoderNotAvailable, ValueError, OSError)


def generate(studio: Studio, prompt: str, model: str | None, seed, n, truncation, variation, mix_prompt: str,
             mix_weight, style: str | None = None) -> tuple[list, str]:
    """The Generate button and every slider: returns (images, status line)."""
    try:
        seed = whole_number(seed, "seed", 0, SEED_MAX)
        name = studio.model_name(model)
        pipe = studio.pipeline(name)
        torch.set_num_threads(studio.generation_threads())
        if (mix_prompt or "").strip():
            weight = finite_number(mix_weight, "mix weight", 0.0, 1.0)
            text = {prompt: 1.0 - weight, mix_prompt: weight}
        else:
            text = prompt
        t0 = time.perf_counter()
        images = pipe(text, num_images_per_prompt=n, seed=seed, truncation=truncation, variation=variation,
                      style=style).images
        ms = (time.perf_counter() - t0) * 1000
        labels = [f"seed {seed} · variation {k}" if variation else f"seed {seed + k}" for k in range(len(images))]
        return list(zip(images, labels)), f"{len(images)} images in {ms:.0f} ms · {describe_pipeline(name, pipe)}"
    except USER_ERRORS as e:
        return [], refusal("generate", e)


def interpolate(studio: Studio, prompt_a: str, prompt_b: str, model: str | None, seed_a, seed_b, frames, truncation):
    """Frames between two prompts/seeds: (strip images, GIF file, status)."""
    try:
        seed_a = whole_number(seed_a, "from seed", 0, SEED_MAX)
        seed_b = None if seed_b is None or seed_b == "" else whole_number(seed_b, "to seed", 0, SEED_MAX)
        pipe = studio.pipeline(model)
        torch.set_num_threads(studio.generation_threads())
        images = pipe.interpolate(prompt_a, (prompt_b or "").strip() or None, seed_a=seed_a, seed_b=seed_b,
                                  num_frames=frames, truncation=truncation).images
        gif = private_file("interpolation.gif")
        save_animation(images, gif, 4)
        return images, str(gif), f"{len(images)} frames"
    except USER_ERRORS as e:
        return [], None, refusal("interpolate", e)


def build(studio: Studio) -> dict:
    """Lay out the tab; returns the components other tabs update (the model dropdown)."""
    models = list_models()
    truncation_default = default_truncation(models[0]) if models else 1.0  # the model's own (model_index.json)
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", value=EXAMPLES[0], scale=4, elem_id="prompt")
        model = gr.Dropdown(choices=models, value=models[0] if models else None, label="Model", scale=1,
                            elem_id="model-dropdown", allow_custom_value=True)  # new models appear while running
    gr.Examples(EXAMPLES, inputs=prompt, label="Try")
    with gr.Row():
        seed = number(label="Seed", value=0, precision=0, minimum=0, maximum=2**31 - 1, elem_id="seed")
        dice = gr.Button("Random seed", scale=0, elem_id="random-seed")
        n = slider(1, 16, value=4, step=1, label="Images", elem_id="n-images")
    with gr.Row():
        truncation = slider(0.0, 2.0, value=truncation_default, step=0.05,
                               label="Truncation (noise scale: lower = more typical)", elem_id="truncation")
        variation = slider(0.0, 1.0, value=0.0, step=0.02,
                              label="Variation (0 = seeds seed…seed+n-1; >0 = small moves around this seed)",
                              elem_id="variation")
    # any model's styles are accepted from the API (the pipeline says which a model knows); the list follows the model
    style = gr.Dropdown(model_styles(models[0], allow_paths=False) if models else ["any"], value="any",
                        elem_id="style", allow_custom_value=True,
                        label="Style (the drawing styles this model was trained on; any: the seed chooses)")
    with gr.Accordion("Prompt mixing", open=False):
        with gr.Row():
            mix_prompt = gr.Textbox(label="Second prompt", value="", scale=3, elem_id="mix-prompt")
            mix_weight = slider(0.0, 1.0, value=0.5, step=0.05, label="Weight of the second prompt", scale=2,
                                   elem_id="mix-weight")
    go = gr.Button("Generate", variant="primary", elem_id="generate-btn")
    status = gr.Markdown(elem_id="gen-status")
    gallery = gr.Gallery(label="Images (PNG downloads at native resolution)", columns=4, height="auto",
                         format="png", elem_id="gallery", elem_classes=["pixelated"], object_fit="contain")

    inputs = [prompt, model, seed, n, truncation, variation, mix_prompt, mix_weight, style]

    def run(prompt: str, model: str | None, seed: float, n: float, truncation: float, variation: float,
            mix_prompt: str, mix_weight: float, style: str = "any"):
        return generate(studio, prompt, model, seed, n, truncation, variation, mix_prompt, mix_weight, style)

    go.click(run, inputs, [gallery, status], api_name="generate", concurrency_id="gen")
    prompt.submit(run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen")
    for moved in (n, truncation, variation, mix_weight):
        moved.release(run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen",
                       trigger_mode="always_last", show_progress="hidden")
    seed.submit(run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen")
    dice.click(lambda: random.randrange(2**31 - 1), None, seed, api_visibility="private").then(
        run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen")
    model.change(lambda m: gr.update(choices=model_styles(m, allow_paths=False), value="any"), model, style,
                 api_visibility="private").then(run, inputs, [gallery, status], api_visibility="private",
                                                 concurrency_id="gen")
    style.input(run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen",
                 trigger_mode="always_last", show_progress="hidden")

    with gr.Accordion("Interpolate", open=False):
        with gr.Row():
            prompt_a = gr.Textbox(label="From prompt", value="a red apple")
            prompt_b = gr.Textbox(label="To prompt (empty: same prompt)", value="a green apple")
        with gr.Row():
            seed_a = number(label="From seed", value=0, precision=0, minimum=0)
            seed_b = number(label="To seed (empty: same seed)", value=None, precision=0, minimum=0)
            frames = slider(2, 32, value=8, step=1, label="Frames")
            trunc_i = slider(0.0, 2.0, value=truncation_default, step=0.05, label="Truncation")
        go_i = gr.Button("Interpolate", elem_id="interpolate-btn")
        strip = gr.Gallery(label="Frames", columns=8, height="auto", format="png", elem_classes=["pixelated"],
                           elem_id="interp-frames")
        gif = gr.File(label="Animated GIF", elem_id="interp-gif")
        status_i = gr.Markdown()

        def run_interpolate(prompt_a: str, prompt_b: str, model: str | None, seed_a: float, seed_b: float | None,
                            frames: float, truncation: float):
            return interpolate(studio, prompt_a, prompt_b, model, seed_a, seed_b, frames, truncation)

        go_i.click(run_interpolate, [prompt_a, prompt_b, model, seed_a, seed_b, frames, trunc_i],
                   [strip, gif, status_i], api_name="interpolate", concurrency_id="gen")
    return {"model": model, "gallery": gallery, "run": run, "inputs": inputs, "status": status}
