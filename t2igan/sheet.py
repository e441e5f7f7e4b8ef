"""Prompt sheets: a fixed set of prompts × seeds rendered into one labelled PNG, to judge a model by eye."""
from __future__ import annotations

from PIL import Image, ImageDraw

from .images import enlarge

# Across emoji categories; the paraphrases (not emoji names) check that the text encoder generalises.
SHEET_PROMPTS = [
    "grinning face", "a happy yellow face", "crying face", "smiling face with sunglasses",
    "thumbs up", "waving hand: dark skin tone", "a woman dancing",
    "dog face", "a cute cat", "a green frog", "unicorn",
    "a red apple", "a slice of pizza", "hamburger", "a hot cup of coffee",
    "rocket", "a red car", "airplane",
    "a light bulb", "a wrapped birthday present",
    "red heart", "a blue heart",
    "flag of japan", "flag of brazil",
]


def prompt_sheet(pipe, prompts: list[str] | None = None, seeds: tuple[int, ...] = (0, 1, 2, 3),
                 truncation: float = 0.8, scale: int = 2) -> Image.Image:
    """One row per prompt (label on the left), one column per seed; images enlarged with crisp pixels."""
    prompts = prompts or SHEET_PROMPTS
    size = pipe.generator.config.resolution * scale
    label_w, pad = 260, 4
    sheet = Image.new("RGB", (label_w + len(seeds) * (size + pad) + pad, len(prompts) * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for r, prompt in enumerate(prompts):
        y = pad + r * (size + pad)
        draw.text((8, y + size // 2 - 6), prompt[:40], fill=(20, 20, 20))
        for c, seed in enumerate(seeds):
            image = pipe(prompt, seed=seed, truncation=truncation).images[0]
            sheet.paste(enlarge(image, scale), (label_w + pad + c * (size + pad), y))
    return sheet
