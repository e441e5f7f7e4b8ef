"""A model card (Hugging Face format) for a model trained here, written beside its weights at every save, so that a
fine-tune says what it started from, what it saw and under which licence it may be shared. A card without the
GENERATED line (one written by hand, like the shipped models') is never touched."""
from __future__ import annotations

import re
from pathlib import Path

from .atomic import write_file

GENERATED = "<!-- written by t2igan train at each save: delete this line to keep your own edits -->"
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)  # a Hugging Face card's YAML header: metadata, not text
_LICENSE = re.compile(r"^license:\s*(\S+)\s*$", re.M)


def card_license(folder: str | Path) -> str | None:
    """The `license:` of a model folder's card, or None."""
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return None
    header = FRONT_MATTER.match(readme.read_text(encoding="utf-8", errors="replace"))
    m = _LICENSE.search(header.group(0)) if header else None
    return m.group(1) if m else None


def write_card(out: str | Path, *, base: Path | None, pairs: int, step: int, total: int, batch_size: int,
               resolution: int, encoder: str | None) -> bool:
    """Write (or rewrite) `out`/README.md for a model trained `step` of `total` steps on `pairs` captioned pictures,
    from the model folder `base` (None: from scratch). False where a hand-written card is there."""
    path = Path(out) / "README.md"
    if path.is_file() and GENERATED not in path.read_text(encoding="utf-8", errors="replace"):
        return False
    name = Path(out).name
    licence = card_license(base) if base is not None else None
    if base is not None:
        origin = f"A fine-tune of `{base.name}`"
        terms = (f"As an adaptation of `{base.name}`, it is shared under the same licence ({licence}); see that "
                 "model's card for the credits it asks for." if licence else
                 f"`{base.name}` has no licence in its card: ask its authors before sharing this model.")
    else:
        origin = "A model trained from scratch"
        terms = "Its licence is that of your training pictures: set `license:` above before sharing it."
    status = "" if step >= total else f" (stopped at step {step} of {total})"
    base_line = f"base_model: {base.name}\n" if base is not None else ""
    text = f"""---
license: {licence or "other"}
library_name: t2igan
pipeline_tag: text-to-image
tags:
  - gan
  - text-to-image
  - t2igan
{base_line}---

{GENERATED}

# {name}

{origin}, trained with t2igan on {pairs} captioned pictures.

## Uses

Drawing {resolution}×{resolution} pictures like the training pictures from short English prompts; a base for further
fine-tuning (its discriminator is here).

## How to use

```python
from t2igan.weights import load_pipeline

pipe = load_pipeline("{name}")
images = pipe("a prompt like your captions", num_images_per_prompt=4, seed=0).images
```

or choose `{name}` in the app's Model menu, or `t2igan generate "a prompt" --model {name}`.

## Training data

{pairs} image-caption pairs (not stored here). {terms}

## Training procedure

{step} steps{status} at batch {batch_size}, {resolution} px, text encoder `{encoder or "minilm"}`.

## Evaluation

Not measured yet: `t2igan eval {name} --data DATA` on held-out pictures, and look at `t2igan sheet --model {name}`.

## Known limitations

Those of a small GAN fine-tuned on few pictures: prompts far from the training captions draw like the starting model
or not at all.
"""
    write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return True
