"""The t2igan studio: Generate, Train and Model tabs over the library (nothing here the API and CLI cannot do)."""
from __future__ import annotations

import os

import gradio as gr

from . import edit_tab, generate_tab, model_tab, train_tab
from .state import Studio, outputs_dir
from ..weights import list_models

CSS = """
.pixelated img { image-rendering: pixelated; }
#video-out video { object-fit: contain; max-height: 384px; image-rendering: pixelated; }
"""
MAX_FILE_SIZE = "50mb"
CACHE_LIFETIME_S = 3600  # Gradio's copies of uploads and shown images: deleted hourly once an hour old
_cache_is_ours = "GRADIO_TEMP_DIR" not in os.environ  # a user's own setting wins


def _keep_gradio_files_in_outputs() -> None:
    """Gradio copies every upload and every image it shows into a cache (default /tmp/gradio, never emptied): put it
    in the app's outputs/ folder so that the app writes nowhere else."""
    if _cache_is_ours:
        os.environ["GRADIO_TEMP_DIR"] = str(outputs_dir() / "gradio-cache")


def _first_image(gallery, prompt: str):
    """Generate → Edit: the first image of the gallery becomes the Edit tab's picture, its prompt what it shows."""
    if not gallery:
        return gr.update(), gr.update(), gr.update()
    first = gallery[0]
    image = first[0] if isinstance(first, (list, tuple)) else first
    return getattr(image, "path", None) or (image.get("path") if isinstance(image, dict) else image), \
        (prompt or "").strip(), gr.Tabs(selected="edit")


def build_app(device: str | None = None, threads: int | None = None) -> gr.Blocks:
    """The UI; `device` is 'auto'/'cpu'/'cuda'/'mps' (None: $T2IGAN_DEVICE or auto); `threads` per generation."""
    studio = Studio(device, threads)
    _keep_gradio_files_in_outputs()
    with gr.Blocks(title="t2igan studio", delete_cache=(CACHE_LIFETIME_S, CACHE_LIFETIME_S)) as demo:
        gr.Markdown("# t2igan studio — text to image in one forward pass")
        if not list_models():
            gr.Markdown("**No trained model yet.** `weights/` holds no model folder, so there is nothing to "
                        "generate with. Train one in the Train tab or with `t2igan train`, or restore `weights/` "
                        "from git.", elem_id="no-model")
        browser = gr.BrowserState(None, storage_key="t2igan-browser")  # this browser's id: a reload keeps its job
        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                gen = generate_tab.build(studio)
            with gr.Tab("Edit", id="edit"):
                edit = edit_tab.build(studio, gen["model"])
            with gr.Tab("Train", id="train"):
                train = train_tab.build(studio, gen["model"], browser)
            with gr.Tab("Model", id="model"):
                model_tab.build(studio, gen["model"])
        gen["send"].click(_first_image, [gen["gallery"], gen["prompt"]], [edit["picture"], edit["shows"], tabs],
                          api_visibility="private")
        # every page: the models under weights/ now (saved since launch too) and this browser's id
        demo.load(*train["load"], api_visibility="private", show_progress="hidden")
        if list_models():
            demo.load(gen["run"], gen["inputs"], [gen["gallery"], gen["status"]], api_visibility="private")
    demo.studio = studio
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           auth: tuple[str, str] | None = None, **kwargs):
    """Queue and launch with the app's limits: small uploads, generation 2 at a time. No folder of the app is served
    by URL (no `allowed_paths`): what a visitor gets back is copied into Gradio's cache for that request."""
    demo.queue(default_concurrency_limit=2, max_size=256)
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth, max_file_size=MAX_FILE_SIZE,
                       css=CSS, **kwargs)
