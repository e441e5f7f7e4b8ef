"""Where t2igan keeps things: the weights folder (model names are folder names there) and the per-user cache; and
the hash of files kept there."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

WEIGHTS_ENV = "T2IGAN_WEIGHTS"
# The emoji dataset as `t2igan data emoji` builds it by default: the five sets the shipped models were trained on.
# `t2igan eval`, the evaluator and the app's Train tab read it there unless told otherwise.
EMOJI_DATA = "data/emoji-v2"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # model and encoder names: folder names under weights/


def weights_dir() -> Path:
    """$T2IGAN_WEIGHTS, else the `weights/` folder beside the package (a source checkout), else ./weights."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).resolve()
    beside = Path(__file__).resolve().parent.parent / "weights"
    return beside if beside.is_dir() else Path("weights").resolve()


def cache_dir() -> Path:
    """Per-user cache for caption embeddings and downloaded packages ($XDG_CACHE_HOME/t2igan)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "t2igan"


def sha256_of(*files: str | os.PathLike) -> str:
    """Hex SHA-256 of the files' bytes, in the order given, read in 1 MB blocks (tarballs, model weights)."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
