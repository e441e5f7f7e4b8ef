"""Where model folders live, and loading one onto a device: the one entry point the CLI, app and API share."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from . import directions as sliders
from .device import pick_device, set_threads
from .paths import NAME_RE, sha256_of, weights_dir
from .atomic import recover_interrupted_save
from .pipeline import T2IGANPipeline
from .text import ENCODERS, list_encoders, local_encoder_path  # noqa: F401 - names the app and CLI use from here

DEFAULT_MODEL = "emoji-64-v2-fast"  # emoji-64-v2 distilled: 1.5x as fast, a little less detail (its card)
RESERVED = {ENCODERS, "evaluator"}  # folders under weights/ that are not models
WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"{kind}{k}" for kind in ("com", "lpt") for k in range(10))}


class NoModelError(FileNotFoundError):
    """No trained model folder is available (yet)."""


def is_model_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file() and (path / "generator").is_dir()


def list_models(root: Path | None = None) -> list[str]:
    """Names of the pipeline folders under the weights folder, the default model first."""
    root = root or weights_dir()
    if not root.is_dir():
        return []
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and NAME_RE.match(p.name) and is_model_dir(p))
    return sorted(names, key=lambda n: n != DEFAULT_MODEL)


def check_name(name: str) -> str:
    """A model name is letters, digits, '-' and '_' (at most 64): it is used as a folder name under weights/, so it
    is none of Windows' reserved device names either (a folder 'con' or 'nul' cannot exist there)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '-' and '_' (at most 64, no paths)")
    if name.lower() in RESERVED:
        raise ValueError(f"'{name}' is reserved for a folder of weights/ that is not a model: choose another name")
    if name.lower() in WINDOWS_DEVICES:
        raise ValueError(f"'{name}' is a reserved device name on Windows and cannot be a folder there: "
                         "choose another name")
    return name


def check_new_name(name: str, root: Path | None = None) -> str:
    """A name for a model that does not exist yet: valid, and unlike every folder under weights/ even ignoring case
    (on the case-insensitive file systems of macOS and Windows 'EMOJI-64' is the folder 'emoji-64')."""
    name = check_name(name)
    root = root or weights_dir()
    taken = next((p.name for p in root.iterdir() if p.name.lower() == name.lower()), None) if root.is_dir() else None
    if taken is not None:
        same = "already exists" if taken == name else f"differs from the existing '{taken}' only in case"
        raise ValueError(f"a model named '{name}' {same}: choose another name")
    return name


def resolve_model(model: str | os.PathLike | None = None, allow_paths: bool = True) -> Path:
    """A model name under weights/ (or, if allowed, a folder path) → its folder; the default model when None."""
    root = weights_dir()
    if model is None or str(model) == "":
        names = list_models(root)
        if not names:
            raise NoModelError(
                f"no trained model found in {root}: train one (t2igan train ...) or restore the shipped "
                f"weights/{DEFAULT_MODEL} folder (git checkout -- weights)"
            )
        return root / names[0]
    text = str(model)
    if NAME_RE.match(text) and not (root / text).exists():
        recover_interrupted_save(root / text)  # a save killed between its two renames left the previous folder aside
    if NAME_RE.match(text) and (root / text).is_dir() and text in os.listdir(root):  # exact case: see check_new_name
        path = root / text
    elif allow_paths and ("/" in text or os.sep in text or Path(text).exists()):
        path = Path(text).expanduser().resolve()
        if not path.exists():
            recover_interrupted_save(path)  # the same for a folder given by path (a run's --out, say)
    else:
        if not allow_paths:
            check_name(text)
        raise NoModelError(f"model '{text}' not found in {root} (available: {', '.join(list_models(root)) or 'none'})")
    if not is_model_dir(path):
        raise NoModelError(f"{path} is not a t2igan model folder (it needs model_index.json and generator/)")
    return path


def model_version(path: str | os.PathLike) -> tuple:
    """What changes whenever a model folder is re-saved or edited: the folder's identity (a save swaps in a new
    folder) and each file's path, size and modification time. Cheap: a stat per file, no reading."""
    path = Path(path)
    top = path.stat()
    files = sorted((str(p.relative_to(path)), st.st_size, st.st_mtime_ns, st.st_ino)
                   for p in path.rglob("*") if p.is_file() for st in (p.stat(),))
    return top.st_ino, top.st_mtime_ns, tuple(files)


def load_pipeline(model: str | os.PathLike | None = None, device: str | None = None, threads: int | None = None,
                  with_version: bool = False, precision: str = "auto"):
    """Load a model folder (default: the shipped model) on the chosen device; returns a T2IGANPipeline (and, with
    `with_version`, the folder's model_version it was loaded from) that draws in `precision` (T2IGANPipeline.render).

    A folder that another process re-saves while it is read is read again, so the pipeline never mixes files of two
    versions (saves in this process never overlap a load: both hold model_lock.MODEL_LOCK)."""
    set_threads(threads)
    dev = pick_device(device)
    for _ in range(3):
        path = resolve_model(model)
        before = model_version(path)
        pipe = T2IGANPipeline.from_pretrained(path)
        version = model_version(path)
        if version == before:
            break
    else:
        raise OSError(f"model '{Path(path).name}' kept changing while it was loaded (is it being trained?): try again")
    pipe.set_progress_bar_config(disable=True)
    pipe.precision = precision
    pipe = pipe.to(dev)
    if dev.type == "cpu":  # measured: channels-last convolutions make CPU generation ~1.7x faster at batch 16
        pipe.generator.to(memory_format=torch.channels_last)
    return (pipe, version) if with_version else pipe


def model_index(model: str | os.PathLike | None = None, allow_paths: bool = True) -> dict:
    """A model folder's model_index.json (its settings: default truncation, styles, text encoder), read without
    loading the model; {} if it cannot be read."""
    try:
        index = json.loads((resolve_model(model, allow_paths=allow_paths) / "model_index.json").read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def default_truncation(model: str | os.PathLike | None = None) -> float:
    """The noise scale a model draws with when none is asked for (1.0 if unset or unreadable), e.g. for the app's
    slider."""
    try:
        value = float(model_index(model).get("default_truncation", 1.0))
    except (TypeError, ValueError):
        return 1.0
    return value if math.isfinite(value) and 0.0 <= value <= 4.0 else 1.0


def model_styles(model: str | os.PathLike | None = None, allow_paths: bool = True) -> list[str]:
    """'any' and the drawing styles the model's captions named (what `pipe(..., style=...)` accepts)."""
    return ["any", *(model_index(model, allow_paths).get("styles") or [])]


def model_levels(model: str | os.PathLike | None = None, allow_paths: bool = True) -> list[int]:
    """The sizes in pixels of the generator's levels, coarse to fine (4, 8, …, its resolution), read from its
    config; [] if it cannot be read."""
    try:
        path = resolve_model(model, allow_paths=allow_paths) / "generator" / "config.json"
        resolution = int(json.loads(path.read_text())["resolution"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [4 * 2**k for k in range(resolution.bit_length() - 2)]


def model_directions(model: str | os.PathLike | None = None, allow_paths: bool = True) -> list[str]:
    """The names of a model's direction sliders (`t2igan directions`), read without loading it; [] if none."""
    try:
        return sliders.names(resolve_model(model, allow_paths=allow_paths))
    except (NoModelError, ValueError, OSError):
        return []


def model_fingerprint(model: str | os.PathLike | None = None) -> str:
    """16 hex digits of the SHA-256 of the model's generator weights: which version of a model a latent was fitted to."""
    return sha256_of(*sorted((resolve_model(model) / "generator").glob("*.safetensors")))[:16]
