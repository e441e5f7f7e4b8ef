"""Staging user uploads (a zip, or images + a captions file) into the app's own folder, with limits."""
from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

MAX_FILE_BYTES = 50 * 1024 * 1024       # one uploaded file
MAX_TOTAL_BYTES = 200 * 1024 * 1024     # one upload batch
MAX_FILES = 5000
_SAFE = re.compile(r"[^A-Za-z0-9._ -]")


class UploadError(ValueError):
    """An upload that cannot be used, with the reason."""


def safe_name(name: str) -> str:
    """The base name only, with unusual characters replaced: never a path."""
    base = Path(str(name).replace("\\", "/")).name
    base = _SAFE.sub("_", base).strip(" .")
    if not base:
        raise UploadError(f"unusable file name {name!r}")
    return base[:120]


def stage_uploads(paths: list[str], dest_root: Path) -> Path:
    """Copy uploaded files into a fresh folder under `dest_root`; return what the dataset loader should read.

    One .zip → that zip (the loader reads it in memory with its own limits); otherwise the folder of files.
    """
    paths = [Path(p) for p in (paths or [])]
    if not paths:
        raise UploadError("no files uploaded: add a .zip, or images plus a captions file")
    if len(paths) > MAX_FILES:
        raise UploadError(f"too many files ({len(paths)}); the limit is {MAX_FILES} — zip them instead")
    total = 0
    for p in paths:
        if not p.is_file():
            raise UploadError(f"{p.name}: upload not found")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UploadError(f"{p.name}: {size / 2**20:.1f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit per file")
        total += size
    if total > MAX_TOTAL_BYTES:
        raise UploadError(f"uploads total {total / 2**20:.0f} MB, over the {MAX_TOTAL_BYTES // 2**20} MB limit")
    dest = dest_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    dest.mkdir(parents=True)
    zips = [p for p in paths if p.suffix.lower() == ".zip"]
    if zips:
        if len(paths) > 1:
            raise UploadError("upload either one .zip or loose files, not both")
        target = dest / safe_name(zips[0].name)
        shutil.copyfile(zips[0], target)
        return target
    seen = set()
    for p in paths:
        name = safe_name(p.name)
        if name.lower() in seen:
            raise UploadError(f"two uploaded files are both named {name}")
        seen.add(name.lower())
        shutil.copyfile(p, dest / name)
    return dest
