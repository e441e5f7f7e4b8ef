"""Tiny captioned datasets made on the fly (no files committed), and the launched app for API tests."""
import json
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (240, 210, 20)}
SHAPES = ("circle", "square", "triangle")


def shape_image(color: str, shape: str, size: int = 32, offset: int = 0) -> Image.Image:
    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    a, b = 4 + offset, size - 5 + offset
    if shape == "circle":
        d.ellipse([a, a, b, b], fill=COLORS[color])
    elif shape == "square":
        d.rectangle([a, a, b, b], fill=COLORS[color])
    else:
        d.polygon([(size // 2, a), (a, b), (b, b)], fill=COLORS[color])
    return im


def make_shapes_folder(root: Path, copies: int = 2, size: int = 32) -> Path:
    """An imagefolder with metadata.jsonl: coloured shapes, several captions each (24 images by default)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for color in COLORS:
        for shape in SHAPES:
            for k in range(copies):
                name = f"{color}-{shape}-{k}.png"
                shape_image(color, shape, size, offset=k).save(root / name)
                lines.append({"file_name": name, "text": [f"a {color} {shape}", f"{shape} in {color}"], "shape": shape})
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


def save_tiny_clip(folder: Path) -> Path:
    """A tiny random CLIP text model (24-d projection) with a BERT tokenizer, saved as a local encoder folder."""
    from transformers import BertTokenizerFast, CLIPTextConfig, CLIPTextModelWithProjection

    from t2igan.text import bundled_encoder_path

    cfg = CLIPTextConfig(vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, projection_dim=24, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=101, eos_token_id=102)  # BERT's [CLS] / [SEP]: CLIP pools at [SEP]
    CLIPTextModelWithProjection(cfg).save_pretrained(folder)
    BertTokenizerFast.from_pretrained(bundled_encoder_path()).save_pretrained(folder)
    return Path(folder)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gen(client, prompt="a red circle", model="tiny", seed=3, n=4, truncation=0.8, variation=0.0, mix="", w=0.5):
    """The app's /generate endpoint: (images, status line)."""
    return client.predict(prompt, model, seed, n, truncation, variation, mix, w, api_name="/generate")


def wait_for_job(client, seconds: float) -> dict:
    """Poll /train_status until the job ends (or the time is up); its last status."""
    import time

    deadline, status = time.time() + seconds, {}
    while time.time() < deadline:
        status = client.predict(api_name="/train_status")
        if status["state"] in ("completed", "failed", "stopped"):
            break
        time.sleep(0.3)
    return status


@contextmanager
def running_app(root: Path, copy_models: tuple[Path, ...] = (), **build_kwargs):
    """The app launched on a free port over `root`/weights (one tiny model, plus copies of `copy_models`) and
    `root`/outputs; yields a dict with the gradio_client Client, the folders and the port."""
    import os
    import shutil

    from gradio_client import Client

    from t2igan import Discriminator, Generator, T2IGANPipeline
    from t2igan.ui import build_app, launch

    from conftest import TINY_D, TINY_G

    weights = root / "weights"
    env = {"T2IGAN_WEIGHTS": str(weights), "T2IGAN_OUTPUTS": str(root / "outputs")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    T2IGANPipeline(generator=Generator(**TINY_G), discriminator=Discriminator(**TINY_D)).save_pretrained(weights / "tiny")
    for folder in copy_models:
        shutil.copytree(folder, weights / folder.name)
    demo = build_app(device="cpu", **build_kwargs)
    port = free_port()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield {"client": Client(f"http://127.0.0.1:{port}/", verbose=False), "root": root, "weights": weights,
               "port": port, "demo": demo}
    finally:
        demo.close()
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def wake(pipe, scale: float = 0.05):
    """Move a tiny untrained model off its identity start (its modulations begin as the identity, so the text would
    reach the first level only), so that every level and the noise change the picture. Returns the pipeline."""
    import torch

    torch.manual_seed(0)
    for p in pipe.generator.parameters():
        p.data += scale * torch.randn_like(p)
    return pipe
