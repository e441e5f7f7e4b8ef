"""Natural-language captions for an emoji from its metadata: name, short names, skin tone, style, keywords and
its drawn colour."""
from __future__ import annotations

import io
import re
from typing import Iterable, Sequence

from .sources import SKIN_TONES


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
