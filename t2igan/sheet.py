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

# Things whose seeds should give visibly different drawings: the objects a one-drawing-per-caption model got wrong
# (blobs of the right colour, one picture for all seeds), with faces, animals and food beside them.
OBJECT_PROMPTS = [
    "an umbrella", "a rainbow", "a guitar", "a house", "a snowman", "a birthday cake",
    "a cat", "a robot", "a banana", "a soccer ball", "a bicycle", "a teddy bear",
    "a tree", "a flower", "a fish", "an owl", "a horse", "a strawberry",
    "a pizza", "a light bulb", "a clock", "a smiling face", "a crying face", "a red heart",
]

PROMPT_SETS = {"categories": SHEET_PROMPTS, "objects": OBJECT_PROMPTS}


def prompt_sheet(pipe, prompts: list[str] | None = None, seeds: tuple[int, ...] = (0, 1, 2, 3),
                 truncation: float | None = None, scale: int = 2, panels: int = 2,
                 style: str | None = None) -> Image.Image:
    """Prompts as labelled rows (in `panels` side-by-side columns), one image per seed; crisp 2× enlargement.
    Each image is the seed's own (as `generate --seed S` draws it), so nothing on the sheet is picked."""
    prompts = prompts or SHEET_PROMPTS
    size = pipe.generator.config.resolution * scale
    label_w, pad = 200, 4
    rows = -(-len(prompts) // panels)
    panels = -(-len(prompts) // rows)
    panel_w = label_w + len(seeds) * (size + pad) + pad
    sheet = Image.new("RGB", (panels * panel_w, rows * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, prompt in enumerate(prompts):
        x0, y = (i // rows) * panel_w, pad + (i % rows) * (size + pad)
        draw.text((x0 + 8, y + size // 2 - 6), prompt[:32], fill=(20, 20, 20))
        images = [pipe(prompt, seed=s, truncation=truncation, style=style).images[0] for s in seeds]
        for c, image in enumerate(images):
            sheet.paste(enlarge(image, scale), (x0 + label_w + pad + c * (size + pad), y))
    return sheet


def directions_sheet(pipe, prompts: list[str], amounts=(-2.0, -1.0, 0.0, 1.0, 2.0), seed: int = 0,
                     scale: int = 2) -> Image.Image:
    """One row per (direction slider, prompt): the prompt's image at each amount along the slider, labelled."""
    vectors, names, _ = pipe.directions
    size = pipe.generator.config.resolution * scale
    label_w, pad = 260, 4
    rows = [(k, p) for k in range(len(vectors)) for p in prompts]
    sheet = Image.new("RGB", (label_w + len(amounts) * (size + pad) + pad, (len(rows) + 1) * (size + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, a in enumerate(amounts):
        draw.text((label_w + pad + c * (size + pad) + size // 2 - 10, size // 2), f"{a:+g}", fill=(20, 20, 20))
    for r, (k, prompt) in enumerate(rows, start=1):
        y = r * (size + pad)
        draw.text((8, y + size // 2 - 6), f"{k}: {names[k]} · {prompt}"[:40], fill=(20, 20, 20))
        for c, a in enumerate(amounts):
            image = pipe(prompt, seed=seed, directions={k: a}).images[0]
            sheet.paste(enlarge(image, scale), (label_w + pad + c * (size + pad), y))
    return sheet
