"""Videos: smooth walks through a model's latent space, written as MP4 (H.264) or animated WebP.

Three paths, each a list of `Latent`s (one per frame), eased so that the motion slows into each key frame
(StyleGAN3's gen_video.py does the same with a cubic spline through seeds):

* `prompt_walk`: from prompt to prompt with one seed; the conditions move linearly, the noise stays.
* `seed_loop`:   one prompt, around a loop of seeds (spherical interpolation of the noise, back to the first seed),
                 so the video loops without a jump.
* `slider_sweep`: one prompt and seed, along a direction slider from 0 to +amount, to −amount and back to 0.

`write_video` upscales with nearest neighbour (crisp pixels) to `size` and encodes MP4 with the ffmpeg binary of the
imageio-ffmpeg wheel (libx264, yuv420p, faststart: plays in every browser) or animated WebP with Pillow.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from .atomic import write_file
from .latent import Latent
from .pipeline import MAX_IMAGES, slerp, whole_number

FORMATS = (".mp4", ".webp")
MAX_FRAMES = 2000


def ease(t: float) -> float:
    """0 → 1 with zero speed at both ends (cosine ease-in-out)."""
    return 0.5 - 0.5 * math.cos(math.pi * t)


def _steps(frames: int) -> list[float]:
    return [ease(k / frames) for k in range(frames)]


def prompt_walk(pipe, prompts: list[str], seed: int = 0, frames_per_prompt: int = 24, loop: bool = False,
                truncation: float | None = None, style: str | None = None) -> list[Latent]:
    """Frames from each prompt to the next (and back to the first when `loop`), one seed throughout."""
    if len(prompts) < 2:
        raise ValueError("a prompt walk needs two prompts or more")
    keys = pipe.latent(prompts, seed=None, truncation=truncation, style=style,
                       noise=pipe.prepare_latents(1, seed=seed).expand(len(prompts), -1))
    ends = list(range(len(prompts))) + ([0] if loop else [])
    out = []
    for a, b in zip(ends[:-1], ends[1:]):
        for t in _steps(frames_per_prompt):
            conditions = torch.lerp(keys.conditions[a : a + 1], keys.conditions[b : b + 1], t)
            out.append(Latent(keys.noise[a : a + 1], conditions))
    if not loop:
        out.append(keys[len(prompts) - 1])
    return out


def seed_loop(pipe, prompt: str, seeds: list[int], frames_per_seed: int = 24, truncation: float | None = None,
              style: str | None = None) -> list[Latent]:
    """Frames through `seeds` and back to the first, for one prompt (a seamless loop)."""
    if len(seeds) < 2:
        raise ValueError("a seed loop needs two seeds or more")
    keys = pipe.latent(prompt, len(seeds), seed=None, truncation=truncation, style=style,
                       noise=pipe.prepare_latents(len(seeds), seed=list(seeds)))
    out = []
    for a in range(len(seeds)):
        b = (a + 1) % len(seeds)
        for t in _steps(frames_per_seed):
            out.append(Latent(slerp(keys.noise[a : a + 1], keys.noise[b : b + 1], t), keys.conditions[a : a + 1]))
    return out


def slider_sweep(pipe, prompt: str, direction: int, seed: int = 0, amount: float = 2.0, frames: int = 48,
                 truncation: float | None = None, style: str | None = None) -> list[Latent]:
    """Frames along direction slider `direction`: 0 → +amount → −amount → 0 (a sine: a seamless loop)."""
    key = pipe.latent(prompt, seed=seed, truncation=truncation, style=style)
    return [key.shifted(pipe.direction_offset({direction: amount * math.sin(2 * math.pi * k / frames)}))
            for k in range(frames)]


@torch.no_grad()
def render_frames(pipe, path: list[Latent]) -> list[Image.Image]:
    """The frames as PIL images, rendered in batches."""
    if not 2 <= len(path) <= MAX_FRAMES:
        raise ValueError(f"a video has 2 to {MAX_FRAMES} frames, got {len(path)}")
    frames = []
    for i in range(0, len(path), MAX_IMAGES):
        frames += pipe(latents=Latent.cat(path[i : i + MAX_IMAGES])).images
    return frames


def write_video(frames: list[Image.Image], path: str | Path, fps: int = 24, size: int = 256) -> Path:
    """MP4 or animated WebP (by the suffix), each frame enlarged to `size` px with crisp pixels; written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"a video is written as {' or '.join(FORMATS)}, got {path.name}")
    fps = whole_number(fps, "fps", 1, 60)
    size = whole_number(size, "size", 16, 1024)
    big = [f.convert("RGB").resize((size, size), Image.NEAREST) for f in frames]
    if suffix == ".webp":
        return write_file(path, lambda tmp: big[0].save(tmp, format="WEBP", save_all=True, append_images=big[1:],
                                                        duration=round(1000 / fps), loop=0, lossless=True))
    return write_file(path, lambda tmp: _encode_mp4(big, tmp, fps))


def _encode_mp4(frames: list[Image.Image], out: Path, fps: int) -> None:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ValueError("MP4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                         "or write an animated .webp") from None
    size = frames[0].size
    writer = imageio_ffmpeg.write_frames(str(out), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         output_params=["-movflags", "+faststart", "-f", "mp4"],
                                         macro_block_size=16, quality=8, ffmpeg_log_level="error")
    writer.send(None)  # start ffmpeg
    try:
        for frame in frames:
            writer.send(frame.tobytes())
    finally:
        writer.close()
