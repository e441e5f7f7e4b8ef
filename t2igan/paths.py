"""Where t2igan keeps things outside a model folder."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Per-user cache for caption embeddings and downloaded packages ($XDG_CACHE_HOME/t2igan)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "t2igan"
