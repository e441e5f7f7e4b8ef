"""Tiny captioned datasets made on the fly (no files committed)."""
import json
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
                lines.append({"file_name": name, "text": [f"a {color} {shape}", f"{shape} in {color}"]})
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root
