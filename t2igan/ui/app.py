"""Gradio Blocks for t2igan. Generate tab today; Train and Model tabs build on the trainer."""
from __future__ import annotations

import threading

import gradio as gr

from ..device import describe
from ..text import EncoderNotAvailable
from ..weights import NoModelError, list_models, load_pipeline


class ModelHolder:
    """Loads pipelines on demand and keeps the current one; generation calls are serialised by a lock."""

    def __init__(self, device: str | None = None):
        self.device = device
        self.name: str | None = None
        self.pipe = None
        self.lock = threading.Lock()

    def get(self, name: str | None):
        with self.lock:
            if self.pipe is None or (name and name != self.name):
                self.pipe = load_pipeline(name or None, device=self.device)
                self.name = name or (list_models() or [None])[0]
            return self.pipe

    def status(self) -> str:
        models = list_models()
        if not models:
            return ("**No trained model yet.** The `weights/` folder holds no model folder, so there is nothing to "
                    "generate with. Train one with `t2igan train` (or restore `weights/` from git).")
        try:
            pipe = self.get(self.name or models[0])
        except (NoModelError, EncoderNotAvailable, OSError, ValueError) as e:
            return f"**Model could not be loaded:** {e}"
        return f"Model **{self.name}** on **{describe(pipe.device)}** · text encoder `{pipe.config.text_encoder_id}`"


def build_app(device: str | None = None) -> gr.Blocks:
    """The UI; `device` is 'auto'/'cpu'/'cuda'/'mps' (None: $T2IGAN_DEVICE or auto)."""
    holder = ModelHolder(device)

    def generate(prompt: str, seed: float, n: float, truncation: float, model: str | None):
        try:
            pipe = holder.get(model)
            return pipe(prompt, num_images_per_prompt=int(n), seed=int(seed), truncation=float(truncation)).images, ""
        except (NoModelError, EncoderNotAvailable, ValueError, OSError) as e:
            return [], f"⚠️ {e}"

    with gr.Blocks(title="t2igan") as demo:
        gr.Markdown("# t2igan — text to image, one forward pass")
        status = gr.Markdown(holder.status())
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", value="a red apple", scale=4)
            model = gr.Dropdown(choices=list_models(), value=(list_models() or [None])[0], label="Model", scale=1)
        with gr.Row():
            seed = gr.Number(label="Seed", value=0, precision=0, minimum=0)
            n = gr.Slider(1, 16, value=4, step=1, label="Images")
            truncation = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Truncation (noise scale)")
        go = gr.Button("Generate", variant="primary")
        message = gr.Markdown()
        gallery = gr.Gallery(label="Images", columns=4, height="auto", format="png")
        inputs = [prompt, seed, n, truncation, model]
        go.click(generate, inputs, [gallery, message], api_name="generate")
        prompt.submit(generate, inputs, [gallery, message], api_name=False)
    return demo
