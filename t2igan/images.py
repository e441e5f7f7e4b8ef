"""Small image helpers shared by the CLI, trainer and app: grids and crisp enlargement."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, UnidentifiedImageError


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


MAX_PICTURE_PIXELS = 40_000_000  # a larger picture is refused before it is decoded (decompression bombs)


def picture_tensor(picture, resolution: int, background=(255, 255, 255)):
    """Any picture a user brings — a path or a PIL image; RGBA, palette, grayscale, 16-bit, animated (its first
    frame), any size — as one [1, 3, resolution, resolution] tensor in [-1, 1]: transparency composited on
    `background`, the centre square cropped, resized with antialiasing. A ValueError says what is wrong."""
    import numpy as np
    import torch

    name = getattr(picture, "name", None) or (picture if isinstance(picture, str) else "the picture")
    try:
        image = picture if isinstance(picture, Image.Image) else Image.open(picture)
        w, h = image.size
        if w * h > MAX_PICTURE_PIXELS:
            raise ValueError(f"{Path(str(name)).name} is {w}×{h} pixels: at most {MAX_PICTURE_PIXELS // 1_000_000} "
                             "megapixels; make it smaller first")
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # an animation: its first frame
        image.load()
    except (OSError, Image.DecompressionBombError) as e:
        # Pillow names the file by the path it was given (an upload's is on the server): say why without it
        why = "not an image format it knows" if isinstance(e, UnidentifiedImageError) else str(e)
        raise ValueError(f"{Path(str(name)).name} is not a picture this can read ({why})") from None
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16/32-bit grayscale: scale its range to 8 bits
        a = np.asarray(image, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        image = Image.fromarray(np.clip(a / top * 255, 0, 255).astype(np.uint8), "L")
    rgba = image.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, (*background, 255))
    flat.alpha_composite(rgba)
    side = min(flat.size)
    left, top = (flat.width - side) // 2, (flat.height - side) // 2
    square = flat.convert("RGB").crop((left, top, left + side, top + side))
    square = square.resize((resolution, resolution), Image.LANCZOS)
    x = torch.from_numpy(np.asarray(square, dtype=np.float32).copy()).permute(2, 0, 1)[None]
    return x / 127.5 - 1.0
