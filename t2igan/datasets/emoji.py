"""Emoji text-to-image dataset built from the ``emoji-datasource-*`` npm packages.

The packages published by iamcal (https://github.com/iamcal/emoji-data) ship 64x64
PNGs for every emoji of one vendor plus an ``emoji.json`` with names, short names,
categories and skin-tone variants.  :func:`build_emoji_dataset` fetches them with
``npm pack`` (cached), composites the transparent images onto a solid background,
writes natural-language captions (:func:`captions_for`) and lays the result out as
a Hugging Face ``imagefolder`` with a ``train`` and a held-out ``test`` split::

    out_dir/train/metadata.jsonl      {"file_name": "google/1f600.png", "text": [...], ...}
    out_dir/train/google/1f600.png
    out_dir/test/metadata.jsonl + images
    out_dir/SOURCES.md                packages, versions, licences, attribution
    out_dir/build.json                build parameters + counts

Optionally, keywords from the ``emojilib`` npm package (MIT) enrich the captions, and
each image's drawn colour adds one (``"a yellow grinning face"``, :func:`dominant_colour`).

The held-out split is by *concept*: every vendor and every skin tone of a base emoji
lands in the same split (and bases that share a byte-identical image, or that are
linked by ``obsoletes``/``obsoleted_by``, are grouped together), so no test concept
is ever seen in training.

Command line: ``t2igan data emoji --out data/emoji``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..atomic import new_folder
from .emoji_sets import SVG_SETS, SetError, cldr_names, drawing_for, rasterise, read_set

__all__ = [
    "EMOJI_SOURCES",
    "EMOJILIB_SOURCE",
    "SKIN_TONES",
    "EmojiBuildError",
    "EmojiBuildReport",
    "captions_for",
    "skin_tone_words",
    "split_of",
    "build_emoji_dataset",
]

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

#: Every image source by its name in ``vendors``: the emoji-datasource PNG sets and the SVG sets (emoji_sets.py).
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


@dataclass
class EmojiBuildReport:
    out_dir: str
    num_train: int
    num_test: int
    num_concepts: int
    num_test_concepts: int
    vendors: list[str]
    seconds: float
    keywords: bool = False
    skipped: dict = field(default_factory=dict)
    per_vendor: dict = field(default_factory=dict)

    def summary(self) -> str:
        skipped = sum(self.skipped.values())
        extra = f", {skipped} skipped" if skipped else ""
        return (
            f"emoji dataset at {self.out_dir}: {self.num_train} train / {self.num_test} test images "
            f"({self.num_concepts} concepts, {self.num_test_concepts} held out) from "
            f"{', '.join(f'{v} ({self.per_vendor[v]})' if v in self.per_vendor else v for v in self.vendors)}"
            f"{' + emojilib keywords' if self.keywords else ''}"
            f"{extra} in {self.seconds:.1f} s"
        )


# --------------------------------------------------------------------------- captions

_COUNTRY_FLAG_SUBCATS = {"country-flag", "subdivision-flag"}
_THE_COUNTRY_SUFFIXES = ("islands", "republic", "states", "kingdom", "emirates", "territories", "territory")
_THE_COUNTRIES = {
    "netherlands", "philippines", "bahamas", "gambia", "maldives", "seychelles", "comoros",
    "united nations", "european union", "vatican city", "caribbean netherlands",
}
_ARTICLE_CATEGORIES = {
    "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
    "Travel & Places", "Activities", "Objects", "Flags",
}
_PLURAL_FIRST_WORDS = {"men", "women", "people", "two", "three", "four", "five", "six", "ten", "clinking"}
_MASS_NOUNS = {
    "rice", "bread", "spaghetti", "sushi", "popcorn", "butter", "bacon", "oden", "dango", "custard",
    "cooking", "falafel", "fondue", "garlic", "broccoli", "meat", "food", "water", "fire", "snow",
    "money", "mail", "hair", "liquid", "zzz", "celebration", "curry", "ginger", "ice",
}
_HEAD_SPLIT_RE = re.compile(r" (?:with|without|of|in|on|for|and|from|at) ")
_KEYWORD_STOP = {
    "flag", "flags", "banner", "nation", "country", "face", "nature", "animal", "human", "sign",
    "symbol", "body", "people", "person", "entertainment", "activity", "communication", "object",
    "objects", "thing", "things", "shape", "geometric", "squared", "emoji", "icon", "button",
    "men", "women", "like", "word", "words", "other", "one", "two", "three", "new",
    "hand", "hands", "gesture",
}
_PROFANITY = {"shit", "shitface", "crap", "turd", "fuck", "damn", "ass", "hell", "bullshit"}
_KEYWORD_RE = re.compile(r"[a-z][a-z' ]*[a-z]")
_ALT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9' ]*[a-z0-9]")


def _key(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _norm_text(s: str) -> str:
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("_", " ")
    return re.sub(r"\s+", " ", s).strip().lower()


def _article(phrase: str) -> str:
    w = phrase.lower()
    if w.startswith(("uni", "use", "usu", "one", "eu", "ufo", "u.", "ewe")):
        return "a"
    if w.startswith(("hour", "honest", "honor", "heir")):
        return "an"
    return "an" if w[:1] in "aeiou" else "a"


def skin_tone_words(skin: str) -> str:
    """``'1F3FD'`` -> ``'medium skin tone'``; ``'1F3FB-1F3FC'`` ->
    ``'light skin tone and medium-light skin tone'`` (same tone twice is said once)."""
    words: list[str] = []
    for part in str(skin).upper().split("-"):
        if part not in SKIN_TONES:
            raise ValueError(f"unknown skin tone modifier {part!r} in {skin!r}")
        if SKIN_TONES[part] not in words:
            words.append(SKIN_TONES[part])
    return " and ".join(words)


def _display_name(entry: dict) -> str:
    name = entry.get("name") or ""
    if not name and entry.get("short_names"):
        name = entry["short_names"][0]
    return _norm_text(name or str(entry.get("unified", "emoji")))


def _country(entry: dict, name: str) -> str | None:
    if entry.get("subcategory") in _COUNTRY_FLAG_SUBCATS and name.endswith(" flag"):
        return name[: -len(" flag")].strip() or None
    return None


def _the(country: str) -> str:
    if country in _THE_COUNTRIES or country.endswith(_THE_COUNTRY_SUFFIXES) or country.startswith(
        ("united ", "u.s. ")
    ):
        return "the " + country
    return country


def _article_ok(entry: dict, name: str) -> bool:
    if entry.get("category") not in _ARTICLE_CATEGORIES or _country(entry, name):
        return False
    if not name or not name[0].isalpha() or ":" in name or "," in name:
        return False
    words = name.split()
    if words[0] in _PLURAL_FIRST_WORDS or words[0] in ("a", "an", "the"):
        return False
    head = _HEAD_SPLIT_RE.split(name, maxsplit=1)[0].split()
    last = head[-1] if head else words[-1]
    if last in _MASS_NOUNS:
        return False
    if last.endswith("s") and not last.endswith(("ss", "us", "is")):
        return False  # plural head noun ("cherries", "nesting dolls")
    return True


def _short_name_caption(short: str, name: str, country: str | None) -> str | None:
    s = _norm_text(short.replace("-", " "))
    if len(s) < 3 or _key(s) == _key(name) or s in _PROFANITY:
        return None
    tokens = s.split()
    if not all(t.isalpha() or t.isdigit() for t in tokens):
        return None  # codes such as "clock930", "u5272", "+1", "8ball"
    if not any(t.isalpha() for t in tokens) or tokens[-1].isdigit():
        return None  # "100", "skin tone 2", "point up 2"
    if country is not None and tokens[0] == "flag":
        return None  # "flag ad", "flag england": region codes, covered by the flag wording
    return s


def _split_keywords(
    keywords: Sequence[str], name: str, country: str | None, short_names: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """-> (alternative names, keywords).  Like emojilib, a first keyword written in
    snake_case (``'thumbs_up'``) is the emoji's CLDR name."""
    kws = [k for k in keywords if isinstance(k, str)]
    alts: list[str] = []
    if kws and "_" in kws[0]:
        alt = _norm_text(kws.pop(0))
        if (
            _ALT_NAME_RE.fullmatch(alt)
            and _key(alt) != _key(name)
            and not (country is not None and alt.startswith("flag "))
        ):
            alts.append(alt)
    name_words = set(re.split(r"[^a-z0-9']+", name)) | {w for a in alts for w in a.split()}
    taken = {_key(name)} | {_key(a) for a in alts} | {_key(str(s)) for s in short_names}
    out: list[str] = []
    for k in kws:
        k = _norm_text(k)
        if (
            len(k) < 3
            or not _KEYWORD_RE.fullmatch(k)
            or k in _KEYWORD_STOP
            or k in _PROFANITY
            or k in name_words
            or _key(k) in taken
        ):
            continue
        taken.add(_key(k))
        out.append(k)
    return alts, out


def _dedupe(captions: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for c in captions:
        c = re.sub(r"\s+", " ", c).strip().lower()
        if c and c not in seen:
            seen.add(c)
            out.append(c)
    return out


def dominant_colour(png: bytes, share: float = 0.45) -> str | None:
    """The basic colour word that covers at least ``share`` of an image's opaque pixels ("yellow" for most faces,
    "red" for a red heart), or None when no colour is that clear. Prompts say colours ("a happy yellow face"); emoji
    names rarely do, so a caption with the drawn colour puts those prompts near their emoji in the text space."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    rgb = rgba[..., :3][rgba[..., 3] >= 0.5]
    if len(rgb) == 0:
        return None
    hi, lo = rgb.max(1), rgb.min(1)
    sat = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    r, g, b = rgb.T
    hue = (np.degrees(np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b)) + 360.0) % 360.0
    names = np.select(
        [hi < 0.2, (sat < 0.15) & (hi > 0.85), sat < 0.15,
         (hue < 45) & (hi < 0.6), ((hue < 15) | (hue >= 345)) & (sat < 0.5) & (hi > 0.7),
         (hue < 15) | (hue >= 345), hue < 40, hue < 70, hue < 165, hue < 255, hue < 290],
        ["black", "white", "grey", "brown", "pink", "red", "orange", "yellow", "green", "blue", "purple"], default="pink")
    words, counts = np.unique(names, return_counts=True)
    best = int(counts.argmax())
    return str(words[best]) if counts[best] >= share * len(names) else None


def captions_for(
    entry: dict,
    skin: str | None = None,
    vendor: str | None = None,
    keywords: Sequence[str] = (),
    colour: str | None = None,
) -> list[str]:
    """Natural-language captions for one emoji (optionally a skin-tone variant).

    ``entry`` is one record of emoji-datasource's ``emoji.json``; ``skin`` a key of its
    ``skin_variations`` (``'1F3FD'`` or ``'1F3FB-1F3FC'``); ``vendor`` adds one
    ``"<name>, <vendor> style"`` caption; ``keywords`` is an emojilib keyword list (its
    first element, if snake_case, is treated as an alternative name); ``colour``, the drawn
    colour (:func:`dominant_colour`), adds ``"a <colour> <name>"`` where the name takes an
    article (not for skin-tone variants, whose tone words say it, nor for flags).

    Returns lower-case, de-duplicated captions; the first one is always the name.
    Every caption of a skin-tone variant mentions the tone in words.
    """
    name = _display_name(entry)
    country = _country(entry, name)
    tone = skin_tone_words(skin) if skin else None
    alts, kws = _split_keywords(keywords, name, country, entry.get("short_names") or ())
    if country is not None:
        kws = []  # flag keywords are mostly colours and codes ("red", "cross", "ivory")
    if country is None:
        for short in entry.get("short_names") or ():
            s = _short_name_caption(str(short), name, country)
            if s:
                alts.append(s)
    else:
        alts = [a for a in alts if not a.startswith("flag ")]
    article = f"{_article(name)} {name}" if _article_ok(entry, name) else None
    style = f"{vendor.lower()} style" if vendor else None

    def toned(phrase: str) -> str:  # "thumbs up: medium skin tone" / "man: beard, medium skin tone"
        return f"{phrase}{', ' if ':' in phrase else ': '}{tone}"

    caps: list[str] = []
    if tone is None:
        caps.append(name)
        if article:
            caps.append(article)
        if country:
            flag_of = f"flag of {_the(country)}"
            caps += [f"the {flag_of}", flag_of]
        caps.append(f"{name} emoji")
        if article:
            caps.append(f"an emoji of {article}")
        caps += alts
        if style:
            caps.append(f"{name}, {style}")
        if colour and article and not name.startswith(f"{colour} "):
            caps.append(f"{_article(colour)} {colour} {name}")
        if kws:
            caps.append(f"{_article(kws[0])} {kws[0]} emoji")
            caps.append(", ".join([name] + kws[:3]))
    else:
        caps += [toned(name), f"{name} with {tone}"]
        if article:
            caps.append(f"{article} with {tone}")
        for alt in alts[:1]:
            caps += [toned(alt), f"{alt} with {tone}"]
        caps += [f"{alt} with {tone}" for alt in alts[1:]]
        if style:
            caps.append(f"{toned(name)}, {style}")
        if kws:
            caps.append(f"{_article(kws[0])} {kws[0]} emoji with {tone}")
            caps.append(", ".join([toned(name)] + kws[:2]))
    return _dedupe(caps)


# --------------------------------------------------------------------------- split

def _unit(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"t2igan-emoji:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(base: str, seed: int = 0, test_fraction: float = 0.05) -> str:
    """``'test'`` or ``'train'`` for a base emoji's ``unified`` code (sha256 of seed + code)."""
    return "test" if _unit(base.upper(), seed) < test_fraction else "train"


class _Groups:
    """Union-find over base codes (for bases that must share a split)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo  # root = smallest code: deterministic


# --------------------------------------------------------------------------- npm / tarballs

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


def _sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- build

def _sources_md(vendors: list[str], versions: dict[str, str], use_emojilib: bool) -> str:
    lines = [
        "# Sources and licences",
        "",
        "Built by `t2igan.datasets.emoji`. Images were composited onto a solid background",
        "(and resized if needed); captions were generated from the metadata below.",
        "",
        "| source | npm package | version | licence | attribution |",
        "|---|---|---|---|---|",
    ]
    for v in vendors:
        s = ALL_SOURCES[v]
        lines.append(f"| {v} emoji images | `{s['package']}` | {versions[v]} | {s['image_license']} | "
                     f"{s['image_attribution']} ({s['image_license_url']}) |")
    meta = [v for v in vendors if v in EMOJI_SOURCES]
    pkgs = ", ".join(f"`{EMOJI_SOURCES[v]['package']}`" for v in meta)
    lines.append(f"| emoji metadata (names, categories) | {pkgs} | {', '.join(sorted(set(versions[v] for v in meta)))} | "
                 f"{_DATASOURCE_META['metadata_license']} | {_DATASOURCE_META['metadata_attribution']} "
                 f"({_DATASOURCE_META['metadata_url']}) |")
    if use_emojilib:
        e = EMOJILIB_SOURCE
        lines.append(f"| caption keywords | `{e['package']}` | {versions.get('emojilib', e['version'])} | "
                     f"{e['license']} | {e['attribution']} ({e['url']}) |")
    lines += [
        "",
        "Licences:",
        "- Apache-2.0: https://www.apache.org/licenses/LICENSE-2.0",
        "- CC-BY-4.0: https://creativecommons.org/licenses/by/4.0/ (attribution required when redistributing",
        "  Twemoji images or derivatives: \"Twemoji by Twitter, Inc. and other contributors, CC-BY 4.0\")",
        "- CC-BY-SA-4.0 (OpenMoji): https://creativecommons.org/licenses/by-sa/4.0/ (attribution, and material",
        "  adapted from these drawings is shared under the same licence)",
        "- MIT: https://opensource.org/licenses/MIT",
        "",
    ]
    return "\n".join(lines)


def _render_set(entries: list[dict], svgs: dict[str, str], name: str, resolution: int,
                names: dict[str, str] | None = None) -> dict[str, bytes]:
    """{emoji-datasource image file name: RGBA PNG} for every emoji (and skin tone) the SVG set draws."""
    images: dict[str, bytes] = {}
    for entry in entries:
        display = _display_name(entry)
        variants = [(None, entry.get("unified"), entry.get("image"))] + [
            (skin, var.get("unified"), var.get("image")) for skin, var in sorted((entry.get("skin_variations") or {}).items())
            if isinstance(var, dict)]
        for skin, code, image in variants:
            if not (isinstance(code, str) and isinstance(image, str) and _IMAGE_RE.fullmatch(image)):
                continue
            try:
                tone = skin_tone_words(skin) if skin else None
            except ValueError:
                continue
            svg = drawing_for(svgs, name, code, display, tone, names)
            if svg is not None:
                images[image] = rasterise(svg, resolution)
    return images


def build_emoji_dataset(
    out_dir,
    vendors=("google", "twitter"),
    version="16.0.0",
    cache_dir=None,
    test_fraction=0.05,
    seed=0,
    npm="npm",
    tarballs: dict[str, str] | None = None,
    resolution=64,
    background=(255, 255, 255),
    colour_captions=True,
) -> EmojiBuildReport:
    """npm-pack the emoji-datasource packages (or use the given local tarballs, for tests) and write an imagefolder.

    ``tarballs`` maps ``'google'``/``'twitter'`` (and optionally ``'emojilib'``) to local
    ``.tgz`` files; when it is given npm is never run: only the vendors present in it are
    built and emojilib keywords are used only if ``tarballs['emojilib']`` is given.
    Otherwise the packages (plus ``emojilib@4.0.3``, optional) are fetched with
    ``npm pack`` into ``cache_dir`` (default ``~/.cache/t2igan/npm``) and reused.

    The dataset is written to a temporary folder beside ``out_dir`` and swapped into place at the end, so a
    failed build leaves any previous ``out_dir`` untouched. Raises :class:`EmojiBuildError`.
    """
    t0 = time.monotonic()
    out = Path(out_dir).expanduser().resolve()
    vendors = [str(v).lower() for v in ([vendors] if isinstance(vendors, str) else vendors)]
    for v in vendors:
        if v not in ALL_SOURCES:
            raise EmojiBuildError(f"unsupported vendor {v!r}; choose from {sorted(ALL_SOURCES)}")
    vendors = list(dict.fromkeys(vendors))
    if not any(v in EMOJI_SOURCES for v in vendors):
        raise EmojiBuildError("the emoji list (names, categories, code points) comes from emoji-datasource: include "
                              f"one of {sorted(EMOJI_SOURCES)} in vendors")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise EmojiBuildError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    resolution = int(resolution)
    if resolution < 1:
        raise EmojiBuildError(f"resolution must be positive, got {resolution}")
    background = tuple(int(c) for c in background)
    if len(background) != 3 or not all(0 <= c <= 255 for c in background):
        raise EmojiBuildError(f"background must be an (r, g, b) triple of 0..255, got {background!r}")

    # ---- locate the tarballs
    versions = {v: str(version) if v in EMOJI_SOURCES else SVG_SETS[v]["version"] for v in vendors}
    paths: dict[str, Path] = {}
    emojilib_path: Path | None = None
    if tarballs is not None:
        vendors = [v for v in vendors if v in tarballs]
        if not vendors:
            raise EmojiBuildError(f"tarballs={sorted(tarballs)} has none of the requested vendors")
        for v in vendors:
            p = Path(tarballs[v]).expanduser()
            if not p.is_file():
                raise EmojiBuildError(f"tarball for {v!r} not found: {p}")
            paths[v] = p
        if tarballs.get("emojilib"):
            emojilib_path = Path(tarballs["emojilib"]).expanduser()
            if not emojilib_path.is_file():
                raise EmojiBuildError(f"emojilib tarball not found: {emojilib_path}")
    else:
        cache = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
        for v in vendors:
            paths[v] = _npm_pack(npm, ALL_SOURCES[v]["package"], versions[v], cache)
        try:
            emojilib_path = _npm_pack(npm, EMOJILIB_SOURCE["package"], EMOJILIB_SOURCE["version"], cache)
        except EmojiBuildError as e:
            warnings.warn(f"emojilib keywords unavailable, captions will not use them: {e}", stacklevel=2)

    keywords: dict[str, list[str]] = {}
    emojilib_version = None
    if emojilib_path is not None:
        try:
            keywords, emojilib_version = _read_emojilib(emojilib_path)
        except EmojiBuildError:
            if tarballs is not None:
                raise
            warnings.warn(f"could not read {emojilib_path}; skipping emojilib keywords", stacklevel=2)

    # ---- read data and decide on the split
    data = {}
    for v in (v for v in vendors if v in EMOJI_SOURCES):
        entries, images, pkg_version = _read_datasource(paths[v], v)
        data[v] = (entries, images)
        versions[v] = pkg_version or versions[v]
    listing = next(iter(data.values()))[0]  # the emoji list every SVG set is matched against
    names = None  # CLDR names by code point, from OpenMoji's table: how EmojiOne names its icons
    if "emojione" in vendors:
        if "openmoji" in paths:
            names_from = paths["openmoji"]
        elif tarballs is not None:
            names_from = Path(tarballs["openmoji"]) if tarballs.get("openmoji") else None
        else:
            names_from = _npm_pack(npm, SVG_SETS["openmoji"]["package"], SVG_SETS["openmoji"]["version"], cache)
        try:
            names = cldr_names(names_from) if names_from else None
        except SetError as e:
            raise EmojiBuildError(str(e)) from None
    for v in (v for v in vendors if v in SVG_SETS):
        try:
            svgs, versions[v] = read_set(paths[v], v)
            data[v] = (listing, _render_set(listing, svgs, v, resolution, names))
        except SetError as e:
            raise EmojiBuildError(str(e)) from None
    skipped = {"malformed_entry": 0, "no_image": 0, "same_as_base": 0, "unreadable_image": 0}
    items: list[dict] = []  # one per output image
    groups = _Groups()
    by_content: dict[str, str] = {}
    for v in vendors:
        entries, images = data[v]
        for entry in sorted(entries, key=lambda e: (e.get("sort_order", 1 << 30), str(e.get("unified")))):
            base = str(entry.get("unified") or "").upper()
            image = str(entry.get("image") or "")
            if not _UNIFIED_RE.fullmatch(base) or not _IMAGE_RE.fullmatch(image):
                skipped["malformed_entry"] += 1
                continue
            groups.find(base)
            for link in (entry.get("obsoleted_by"), entry.get("obsoletes")):
                if isinstance(link, str) and _UNIFIED_RE.fullmatch(link.upper()):
                    groups.union(base, link.upper())
            variants: list[tuple[str | None, str, str, bool]] = [(None, base, image,
                                                                  bool(entry.get(f"has_img_{v}", v in SVG_SETS)))]
            for skin, var in sorted((entry.get("skin_variations") or {}).items()):
                if not isinstance(var, dict):
                    continue
                try:
                    skin_tone_words(skin)
                except ValueError:
                    skipped["malformed_entry"] += 1
                    continue
                code = str(var.get("unified") or "").upper()
                vimage = str(var.get("image") or "")
                if not _UNIFIED_RE.fullmatch(code) or not _IMAGE_RE.fullmatch(vimage):
                    skipped["malformed_entry"] += 1
                    continue
                variants.append((skin.upper(), code, vimage, bool(var.get(f"has_img_{v}", v in SVG_SETS))))
            base_bytes = images.get(image)
            for skin, code, img, has in variants:
                raw = images.get(img) if has else None
                if raw is None:
                    skipped["no_image"] += 1
                    continue
                if skin is not None and raw == base_bytes:
                    skipped["same_as_base"] += 1  # vendor draws no skin tone: the caption would lie
                    continue
                digest = hashlib.sha256(raw).hexdigest()
                if digest in by_content:
                    groups.union(base, by_content[digest])  # identical pictures share a split
                else:
                    by_content[digest] = base
                items.append({"vendor": v, "entry": entry, "skin": skin, "code": code, "base": base,
                              "image": img, "raw": raw})
    if not items:
        raise EmojiBuildError("no emoji images found in the given packages")

    def split(base: str) -> str:
        return split_of(groups.find(base), seed, test_fraction)

    # ---- write into a temporary sibling directory, then swap it into place
    with new_folder(out) as tmp:
        rows: dict[str, list[dict]] = {"train": [], "test": []}
        for it in items:
            entry, v = it["entry"], it["vendor"]
            try:
                png = _to_rgb_png(it["raw"], resolution, background)
            except Exception as e:  # a corrupt member: skip it, keep the build going
                warnings.warn(f"skipping unreadable image {v}/{it['image']}: {e}", stacklevel=2)
                skipped["unreadable_image"] += 1
                continue
            sp = split(it["base"])
            rel = f"{v}/{it['image']}"
            dest = tmp / sp / v
            dest.mkdir(parents=True, exist_ok=True)
            (dest / it["image"]).write_bytes(png)
            kw = keywords.get(_emoji_char(it["base"]), ())
            colour = dominant_colour(it["raw"]) if colour_captions and not it["skin"] else None  # tones say the colour
            rows[sp].append({
                "file_name": rel,
                "text": captions_for(entry, skin=it["skin"], vendor=ALL_SOURCES[v]["style"], keywords=kw,
                                     colour=colour),
                "emoji": it["code"],
                "base": it["base"],
                "vendor": v,
                "category": entry.get("category"),
                "subcategory": entry.get("subcategory"),
                "name": _display_name(entry),
                "skin_tone": skin_tone_words(it["skin"]) if it["skin"] else None,
            })
        if not rows["train"]:
            raise EmojiBuildError("every image landed in the test split; lower test_fraction")
        for sp, rs in rows.items():
            if not rs:
                continue
            with open(tmp / sp / "metadata.jsonl", "w", encoding="utf-8") as f:
                for r in rs:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")

        concepts = {r["base"] for rs in rows.values() for r in rs}
        per_vendor = {v: sum(r["vendor"] == v for rs in rows.values() for r in rs) for v in vendors}
        test_concepts = {r["base"] for r in rows["test"]}
        use_kw = bool(keywords)
        if use_kw:
            versions["emojilib"] = emojilib_version or EMOJILIB_SOURCE["version"]
        (tmp / "SOURCES.md").write_text(_sources_md(vendors, versions, use_kw), encoding="utf-8")
        seconds = time.monotonic() - t0
        build = {
            "builder": "t2igan.datasets.emoji",
            "format": 1,
            "params": {
                "vendors": vendors, "version": str(version), "test_fraction": float(test_fraction),
                "seed": int(seed), "resolution": resolution, "background": list(background),
                "colour_captions": bool(colour_captions),
                "split": "sha256 of seed + base emoji code (grouped), per concept",
            },
            "sources": {
                **{v: {"package": ALL_SOURCES[v]["package"], "version": versions[v],
                       "tarball_sha256": _sha256_file(paths[v]),
                       "image_license": ALL_SOURCES[v]["image_license"]} for v in vendors},
                **({"emojilib": {"package": "emojilib", "version": versions["emojilib"],
                                 "tarball_sha256": _sha256_file(emojilib_path), "license": "MIT"}}
                   if use_kw else {}),
            },
            "counts": {
                "train": len(rows["train"]), "test": len(rows["test"]),
                "concepts": len(concepts), "test_concepts": len(test_concepts),
                "per_vendor": per_vendor,
                "skipped": skipped,
            },
            "seconds": round(seconds, 2),
        }
        (tmp / "build.json").write_text(json.dumps(build, indent=2) + "\n", encoding="utf-8")

    return EmojiBuildReport(
        out_dir=str(out),
        num_train=len(rows["train"]),
        num_test=len(rows["test"]),
        num_concepts=len(concepts),
        num_test_concepts=len(test_concepts),
        vendors=list(vendors),
        seconds=round(time.monotonic() - t0, 2),
        keywords=use_kw,
        skipped={k: n for k, n in skipped.items() if n},
        per_vendor=per_vendor,
    )
