"""Generate tab: prompt → images, live on slider release; interpolation strip + GIF."""
from __future__ import annotations

import random
import time

import gradio as gr
import torch

from ..images import save_animation
from ..video import prompt_walk, render_frames, seed_loop, slider_sweep, write_video
from ..pipeline import SEED_MAX, finite_number, whole_number
from ..text import EncoderNotAvailable
from ..weights import (NoModelError, default_truncation, list_models, model_directions, model_levels,
                       model_styles)
from .inputs import number, radio, slider
from .messages import refusal
from .state import Studio, describe_pipeline, private_file

EXAMPLES = ["grinning face", "a red apple", "a blue car", "a laughing face", "red heart", "rocket",
            "dog face", "a slice of pizza", "flag of japan", "a cat with heart eyes"]
USER_ERRORS = (NoModelError, EncoderNotAvailable, ValueError, OSError)
MAX_SLIDERS = 8
VIDEO_MODES = ("walk", "seeds", "direction")
VIDEO_FPS = 24
MAX_VIDEO_PROMPTS = 8


def generate(studio: Studio, prompt: str, model: str | None, seed, n, truncation, variation, mix_prompt: str,
             mix_weight, style: str | None = None, fine_prompt: str = "", split=None,
             directions: list | None = None) -> tuple[list, str]:
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
        fine = (fine_prompt or "").strip() or None
        split = whole_number(split, "split", 0, pipe.generator.levels) if fine and split is not None else None
        t0 = time.perf_counter()
        amounts = {k: finite_number(a, f"direction {k + 1}", -10, 10)
                   for k, a in enumerate(directions or []) if a not in (None, 0, 0.0)}
        images = pipe(text, num_images_per_prompt=n, seed=seed, truncation=truncation, variation=variation,
                      style=style, fine_prompt=fine, split=split, directions=amounts).images
        ms = (time.perf_counter() - t0) * 1000
        labels = [f"seed {seed} · variation {k}" if variation else f"seed {seed + k}" for k in range(len(images))]
        return list(zip(images, labels)), f"{len(images)} images in {ms:.0f} ms · {describe_pipeline(name, pipe)}"
    except USER_ERRORS as e:
        return [], refusal("generate", e)


def interpolate(studio: Studio, prompt_a: str, prompt_b: str, model: str | None, seed_a, seed_b, frames, truncation):
    """Frames between two prompts/seeds: (strip images, GIF file, status)."""
    try:
        seed_a = whole_number(seed_a, "from seed", 0, SEED_MAX)
        if isinstance(seed_b, str):  # the page sends the box's text: empty means the same seed
            text = seed_b.strip()
            try:
                seed_b = int(text) if text else None
            except ValueError:
                seed_b = text  # whole_number names it
        seed_b = None if seed_b is None else whole_number(seed_b, "to seed", 0, SEED_MAX)
        pipe = studio.pipeline(model)
        torch.set_num_threads(studio.generation_threads())
        images = pipe.interpolate(prompt_a, (prompt_b or "").strip() or None, seed_a=seed_a, seed_b=seed_b,
                                  num_frames=frames, truncation=truncation).images
        gif = private_file("interpolation.gif")
        save_animation(images, gif, 4)
        return images, str(gif), f"{len(images)} frames"
    except USER_ERRORS as e:
        return [], None, refusal("interpolate", e)


def make_video(studio: Studio, prompts: str, model: str | None, mode: str, seed, seconds, size, direction,
               truncation, style: str | None = None) -> tuple[str | None, str | None, str]:
    """The Video panel: (MP4 file, animated WebP file, status)."""
    try:
        seed = whole_number(seed, "seed", 0, SEED_MAX)
        seconds = finite_number(seconds, "seconds", 0.2, 10.0)
        size = whole_number(size, "size", 64, 512)
        lines = [line.strip() for line in (prompts or "").splitlines() if line.strip()]
        if not lines:
            raise ValueError("type a prompt (or one per line for a walk between prompts)")
        if mode not in VIDEO_MODES:
            raise ValueError(f"mode must be one of {', '.join(VIDEO_MODES)}, got {mode!r}")
        pipe = studio.pipeline(studio.model_name(model))
        torch.set_num_threads(studio.generation_threads())
        frames = max(2, round(seconds * VIDEO_FPS))
        t0 = time.perf_counter()
        if mode == "walk":
            path = prompt_walk(pipe, lines[:MAX_VIDEO_PROMPTS], seed=seed, frames_per_prompt=frames, loop=True,
                               truncation=truncation, style=style)
        elif mode == "seeds":
            path = seed_loop(pipe, lines[0], [seed + k for k in range(4)], frames_per_seed=frames,
                             truncation=truncation, style=style)
        else:
            path = slider_sweep(pipe, lines[0], whole_number(direction, "direction", 1, 64) - 1, seed=seed,
                                frames=2 * frames, truncation=truncation, style=style)
        images = render_frames(pipe, path)
        mp4, webp = private_file("t2igan-video.mp4"), private_file("t2igan-video.webp")
        write_video(images, mp4, fps=VIDEO_FPS, size=size)
        write_video(images, webp, fps=VIDEO_FPS, size=size)
        ms = (time.perf_counter() - t0) * 1000
        return str(mp4), str(webp), f"{len(images)} frames at {VIDEO_FPS} fps, {size} px, in {ms:.0f} ms"
    except USER_ERRORS as e:
        return None, None, refusal("video", e)


def slider_controls(model: str | None) -> list[dict]:
    """For each of the MAX_SLIDERS direction sliders: visible with the model's name for it, or hidden."""
    names = model_directions(model, allow_paths=False)
    return [dict(visible=k < len(names), value=0, label=f"{k + 1}: {names[k]}" if k < len(names) else f"{k + 1}")
            for k in range(MAX_SLIDERS)]


def split_control(model: str | None, what: str = "the details prompt drives") -> dict:
    """The split slider's range and label for a model: its levels, coarse to fine."""
    sizes = model_levels(model, allow_paths=False) or [4, 8, 16, 32, 64]
    return dict(maximum=len(sizes), label=f"Split: {what} the levels from this one on "
                                          f"({', '.join(f'{k} = {s} px' for k, s in enumerate(sizes))})")


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
    with gr.Accordion("Layout from the prompt, details from another", open=False):
        with gr.Row():
            fine_prompt = gr.Textbox(label="Details prompt (colour, texture; empty: off)", value="", scale=3,
                                     elem_id="fine-prompt")
            split = slider(0, 5, value=2, step=1, scale=2, elem_id="split",
                           **split_control(models[0] if models else None))
    first = models[0] if models else None
    with gr.Accordion("Direction sliders", open=False):
        gr.Markdown("Directions found for this model without labels, in its noise or its text code, named by what "
                    "they do to most prompts (`t2igan directions MODEL`; a model without them shows none). In "
                    "standard deviations.")
        with gr.Row():
            sliders = [slider(-3.0, 3.0, step=0.1, elem_id=f"direction-{k + 1}", min_width=120, **c)
                       for k, c in enumerate(slider_controls(first))]
        reset = gr.Button("Reset sliders", size="sm", elem_id="reset-directions")
    go = gr.Button("Generate", variant="primary", elem_id="generate-btn")
    status = gr.Markdown(elem_id="gen-status")
    gallery = gr.Gallery(label="Images (PNG downloads at native resolution)", columns=4, height="auto",
                         format="png", elem_id="gallery", elem_classes=["pixelated"], object_fit="contain",
                         interactive=False)  # it also feeds "Edit the first image": no upload box in it
    send = gr.Button("Edit the first image", size="sm", elem_id="send-to-edit")

    inputs = [prompt, model, seed, n, truncation, variation, mix_prompt, mix_weight, style, fine_prompt, split,
              *sliders]

    def run(prompt: str, model: str | None, seed: float, n: float, truncation: float, variation: float,
            mix_prompt: str, mix_weight: float, style: str = "any", fine_prompt: str = "", split: float = 2,
            direction_1: float = 0, direction_2: float = 0, direction_3: float = 0, direction_4: float = 0,
            direction_5: float = 0, direction_6: float = 0, direction_7: float = 0, direction_8: float = 0):
        amounts = [direction_1, direction_2, direction_3, direction_4, direction_5, direction_6, direction_7,
                   direction_8]
        return studio.compute(generate, studio, prompt, model, seed, n, truncation, variation, mix_prompt,
                              mix_weight, style, fine_prompt, split, amounts)

    go.click(run, inputs, [gallery, status], api_name="generate", concurrency_id="gen")
    # The live controls answer outside Gradio's queue (one HTTP round trip instead of a join and an event stream)
    # and draw no progress overlay over the images they replace (prompt → 4 images in the browser: 85 against 98 ms
    # median over three runs each). Their drawing still takes turns on the studio's compute thread; the Generate
    # button shows progress, for slow first loads.
    live = dict(api_visibility="private", queue=False, show_progress="hidden")
    prompt.submit(run, inputs, [gallery, status], **live)
    fine_prompt.submit(run, inputs, [gallery, status], **live)
    for moved in (n, truncation, variation, mix_weight, split, *sliders):
        moved.release(run, inputs, [gallery, status], trigger_mode="always_last", **live)
    seed.submit(run, inputs, [gallery, status], **live)
    mix_prompt.submit(run, inputs, [gallery, status], **live)
    dice.click(lambda: random.randrange(2**31 - 1), None, seed, api_visibility="private").then(
        run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen")

    def follow_model(m):
        """The controls that depend on the model: its styles, its levels, its direction sliders."""
        return (gr.update(choices=model_styles(m, allow_paths=False), value="any"), gr.update(**split_control(m)),
                *(gr.update(**c) for c in slider_controls(m)))

    model.change(follow_model, model, [style, split, *sliders], api_visibility="private").then(
        run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen")
    style.input(run, inputs, [gallery, status], trigger_mode="always_last", **live)

    with gr.Accordion("Interpolate", open=False):
        with gr.Row():
            prompt_a = gr.Textbox(label="From prompt", value="a red apple")
            prompt_b = gr.Textbox(label="To prompt (empty: same prompt)", value="a green apple")
        with gr.Row():
            seed_a = number(label="From seed", value=0, precision=0, minimum=0)
            # a text box: Gradio's number box shows and sends 0 for "empty"
            seed_b = gr.Textbox(label="To seed (empty: same seed)", value="", placeholder="same as From seed",
                                elem_id="interp-seed-b")
            frames = slider(2, 32, value=8, step=1, label="Frames")
            trunc_i = slider(0.0, 2.0, value=truncation_default, step=0.05, label="Truncation")
        go_i = gr.Button("Interpolate", elem_id="interpolate-btn")
        strip = gr.Gallery(label="Frames", columns=8, height="auto", format="png", elem_classes=["pixelated"],
                           elem_id="interp-frames")
        gif = gr.File(label="Animated GIF", elem_id="interp-gif")
        status_i = gr.Markdown()

        def run_interpolate(prompt_a: str, prompt_b: str, model: str | None, seed_a: float, seed_b: str | float | None,
                            frames: float, truncation: float):
            return studio.compute(interpolate, studio, prompt_a, prompt_b, model, seed_a, seed_b, frames, truncation)

        go_i.click(run_interpolate, [prompt_a, prompt_b, model, seed_a, seed_b, frames, trunc_i],
                   [strip, gif, status_i], api_name="interpolate", concurrency_id="gen")
    reset.click(lambda: [0] * MAX_SLIDERS, None, sliders, api_visibility="private").then(
        run, inputs, [gallery, status], api_visibility="private", concurrency_id="gen")

    with gr.Accordion("Video", open=False):
        gr.Markdown("A smooth loop: between prompts (one per line), around four seeds from the seed above, or along "
                    "a direction slider. MP4 (H.264) and animated WebP.")
        with gr.Row():
            video_prompts = gr.Textbox(label="Prompts (one per line)", value="a red apple\na green apple", lines=3,
                                       scale=3, elem_id="video-prompts")
            with gr.Column(scale=2):
                mode = radio([("walk between prompts", "walk"), ("loop around seeds", "seeds"),
                                 ("sweep a direction slider", "direction")], value="walk", label="Path",
                                elem_id="video-mode")
                direction = number(label="Direction slider (for a sweep)", value=1, precision=0, minimum=1,
                                   maximum=MAX_SLIDERS, elem_id="video-direction")
        with gr.Row():
            seconds = slider(0.5, 4.0, value=1.5, step=0.5, label="Seconds per prompt or seed", elem_id="video-seconds")
            size = slider(64, 512, value=256, step=64, label="Size (px, crisp pixels)", elem_id="video-size")
        go_v = gr.Button("Make video", elem_id="video-btn")
        with gr.Row():
            video = gr.Video(label="Video (MP4)", autoplay=True, loop=True, elem_id="video-out", format=None)
            webp = gr.File(label="Animated WebP", elem_id="video-webp")
        status_v = gr.Markdown(elem_id="video-status")

        def run_video(prompts: str, model: str | None, mode: str, seed: float, seconds: float, size: float,
                      direction: float, truncation: float, style: str = "any"):
            return studio.compute(make_video, studio, prompts, model, mode, seed, seconds, size, direction,
                                  truncation, style)

        go_v.click(run_video, [video_prompts, model, mode, seed, seconds, size, direction, truncation, style],
                   [video, webp, status_v], api_name="video", concurrency_id="gen")
    return {"model": model, "prompt": prompt, "gallery": gallery, "run": run, "inputs": inputs, "status": status,
            "send": send}
