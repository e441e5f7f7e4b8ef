"""Where the emoji come from: the npm packages (emoji-datasource PNG sets, emojilib keywords), their licences,
and reading their tarballs safely."""
from __future__ import annotations

import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

from .sets import SVG_SETS


DEFAULT_VERSION = "16.0.0"

_DATASOURCE_META = {
    "metadata_license": "MIT",
    "metadata_attribution": "emoji-datasource / emoji-data, Copyright (c) 2013 Cal Henderson (iamcal)",
    "metadata_url": "https://github.com/iamcal/emoji-data",
}

EMOJI_SOURCES: dict = {
    "google": {
        "package": "emoji-datasource-google",
        "version": DEFAULT_VERSION,
        "image_license": "Apache-2.0 (Noto Emoji)",
        "image_attribution": "Noto Emoji, Copyright Google LLC; licensed under the Apache License 2.0",
        "image_license_url": "https://github.com/googlefonts/noto-emoji/blob/main/LICENSE",
        "style": "google",
        **_DATASOURCE_META,
    },
    "twitter": {
        "package": "emoji-datasource-twitter",
        "version": DEFAULT_VERSION,
        "image_license": "CC-BY-4.0 (Twemoji)",
        "image_attribution": (
            "Twemoji, Copyright Twitter, Inc. (X Corp.) and other contributors "
            "(https://github.com/jdecked/twemoji); graphics licensed under CC-BY 4.0 "
            "(https://creativecommons.org/licenses/by/4.0/). Images were composited onto "
            "a solid background and resized where needed."
        ),
        "image_license_url": "https://github.com/jdecked/twemoji/blob/main/LICENSE-GRAPHICS",
        "style": "twitter",
        **_DATASOURCE_META,
    },
}

#: Every image source by its name in ``vendors``: the emoji-datasource PNG sets and the SVG sets (sets.py).
ALL_SOURCES: dict = {**EMOJI_SOURCES, **SVG_SETS}

#: Optional keyword source (emoji character -> keyword list).
EMOJILIB_SOURCE: dict = {
    "package": "emojilib",
    "version": "4.0.3",
    "license": "MIT",
    "attribution": "emojilib, Copyright (c) 2014 Mu-An Chiou",
    "url": "https://github.com/muan/emojilib",
    "member": "package/dist/emoji-en-US.json",
}

SKIN_TONES: dict[str, str] = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}

_NPM_TIMEOUT_S = 600
_MAX_PNG_BYTES = 4 << 20
_MAX_JSON_BYTES = 64 << 20
_IMAGE_RE = re.compile(r"[0-9a-f]+(?:-[0-9a-f]+)*\.png")
_UNIFIED_RE = re.compile(r"[0-9A-F]{2,6}(?:-[0-9A-F]{2,6})*")


class EmojiBuildError(RuntimeError):
    """The emoji dataset could not be built (npm missing, registry unreachable, bad tarball...)."""


def _default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(root).expanduser() / "t2igan" / "npm"


def _tail(text: str | bytes | None, n: int = 1500) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = (text or "").strip()
    return text[-n:] if text else "(no output)"


def _npm_pack(npm: str, package: str, version: str, cache_dir: Path, timeout: float = _NPM_TIMEOUT_S) -> Path:
    """``npm pack package@version`` into ``cache_dir`` (reused when already there)."""
    dest = cache_dir / f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"  # scoped names too
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    exe = shutil.which(npm)
    if exe is None:
        raise EmojiBuildError(
            f"npm was not found on PATH (looked for {npm!r}); install Node.js/npm "
            "(https://nodejs.org/) to download the emoji packages, or pass "
            "tarballs={'google': 'emoji-datasource-google-<version>.tgz', ...} with local copies."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".pack-") as td:
        cmd = [exe, "pack", f"{package}@{version}", "--pack-destination", td, "--ignore-scripts"]
        try:
            proc = subprocess.run(cmd, cwd=td, env=env, capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError as e:
            raise EmojiBuildError(f"npm was not found ({e}); install Node.js/npm (https://nodejs.org/)") from e
        except subprocess.TimeoutExpired as e:
            raise EmojiBuildError(
                f"`npm pack {package}@{version}` timed out after {timeout:.0f} s; is the npm registry "
                f"reachable? npm stderr: {_tail(e.stderr)}"
            ) from e
        packed = sorted(Path(td).glob("*.tgz"))
        if proc.returncode != 0 or len(packed) != 1:
            raise EmojiBuildError(
                f"`npm pack {package}@{version}` failed (exit code {proc.returncode}); is the npm "
                f"registry reachable and does that version exist? npm stderr: {_tail(proc.stderr)}"
            )
        os.replace(packed[0], dest)
    return dest


def _safe_member(m: tarfile.TarInfo) -> bool:
    name = m.name
    if not m.isfile() or not name or "\\" in name or "\x00" in name:
        return False
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return False
    parts = name.split("/")
    return ".." not in parts and posixpath.normpath(name) == name


def _package_version(raw: bytes) -> str | None:
    try:
        v = json.loads(raw).get("version")
    except (ValueError, AttributeError):
        return None
    return str(v) if v else None


def _read_datasource(path: str | os.PathLike, vendor: str) -> tuple[list[dict], dict[str, bytes], str | None]:
    """-> (emoji.json records, {image file name: PNG bytes}, package version) from one emoji-datasource tarball,
    reading it sequentially (fast for .tgz) and skipping unsafe member paths."""
    prefix = f"package/img/{vendor}/64/"
    meta: bytes | None = None
    pkg_version: str | None = None
    images: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                if not _safe_member(m):
                    continue
                if m.name == "package/package.json" and m.size <= _MAX_JSON_BYTES:
                    pkg_version = _package_version(tf.extractfile(m).read())
                elif m.name == "package/emoji.json":
                    if m.size > _MAX_JSON_BYTES:
                        raise EmojiBuildError(f"{path}: package/emoji.json is implausibly large ({m.size} bytes)")
                    meta = tf.extractfile(m).read()
                elif m.name.startswith(prefix):
                    fname = m.name[len(prefix):]
                    if _IMAGE_RE.fullmatch(fname) and m.size <= _MAX_PNG_BYTES:
                        images[fname] = tf.extractfile(m).read()
    except EmojiBuildError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as e:
        raise EmojiBuildError(f"{path}: not a readable emoji-datasource tarball ({type(e).__name__}: {e})") from e
    if meta is None:
        raise EmojiBuildError(f"{path}: no package/emoji.json inside; is this an emoji-datasource tarball?")
    try:
        entries = json.loads(meta)
    except ValueError as e:
        raise EmojiBuildError(f"{path}: package/emoji.json is not valid JSON ({e})") from e
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise EmojiBuildError(f"{path}: package/emoji.json is not a list of emoji records")
    if not images:
        raise EmojiBuildError(
            f"{path}: no images under {prefix}; is this the emoji-datasource-{vendor} package?"
        )
    return entries, images, pkg_version


def _read_emojilib(path: str | os.PathLike) -> tuple[dict[str, list[str]], str | None]:
    """emojilib tarball -> ({emoji string without U+FE0F: keywords}, package version)."""
    member = EMOJILIB_SOURCE["member"]
    data = None
    pkg_version = None
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                if not _safe_member(m) or m.size > _MAX_JSON_BYTES:
                    continue
                if m.name == "package/package.json":
                    pkg_version = _package_version(tf.extractfile(m).read())
                elif m.name == member:
                    data = json.loads(tf.extractfile(m).read())
        if data is None:
            raise EmojiBuildError(f"{path}: no {member} inside; is this the emojilib package?")
    except EmojiBuildError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as e:
        raise EmojiBuildError(f"{path}: not a readable emojilib tarball ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise EmojiBuildError(f"{path}: {member} is not an object")
    table = {k.replace("\ufe0f", ""): [str(x) for x in v] for k, v in data.items() if isinstance(v, list)}
    return table, pkg_version


def _emoji_char(unified: str) -> str:
    return "".join(chr(int(h, 16)) for h in unified.split("-")).replace("\ufe0f", "")


def _to_rgb_png(data: bytes, resolution: int, background: tuple[int, int, int]) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        rgba = im.convert("RGBA")  # P (+transparency), LA, L, RGB -> RGBA with the right alpha
    bg = Image.new("RGBA", rgba.size, tuple(background) + (255,))
    rgb = Image.alpha_composite(bg, rgba).convert("RGB")
    if rgb.size != (resolution, resolution):
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    return buf.getvalue()
