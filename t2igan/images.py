"""Small image helpers shared by the CLI, trainer and app: grids and crisp enlargement."""
from __future__ import annotations

import math

from PIL import Image


def make_grid(images: list[Image.Image], cols: int | None = None, pad: int = 2, fill=(255, 255, 255)) -> Image.Image:
    """Tile same-size images into one picture, row by row."""
    if not images:
        raise ValueError("no images to tile")
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), fill)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid.paste(im.convert("RGB"), (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def enlarge(image: Image.Image, factor: int) -> Image.Image:
    """Nearest-neighbour enlargement so pixels stay crisp."""
    if factor <= 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def save_animation(frames: list[Image.Image], path, factor: int = 1, ms_per_frame: int = 120) -> None:
    """Loop the frames forth and back as an animated GIF/WebP (by the file suffix), enlarged with crisp pixels."""
    big = [enlarge(f, factor) for f in frames]
    big[0].save(path, save_all=True, append_images=big[1:] + big[-2:0:-1], duration=ms_per_frame, loop=0)


def to_pil(images) -> list[Image.Image]:
    """A batch of images in [-1, 1] (N, 3, H, W; any device or dtype) → PIL images, exactly as the pipeline returns
    them (diffusers' image processor), so that training samples and generated images are the same pixels."""
    from diffusers.image_processor import VaeImageProcessor

    return VaeImageProcessor(do_resize=False, do_normalize=True).postprocess(images.detach().float().cpu(),
                                                                             output_type="pil")
