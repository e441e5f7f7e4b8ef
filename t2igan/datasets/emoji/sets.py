"""The open emoji sets that come as SVG packages on npm: Fluent Emoji (flat), OpenMoji and EmojiOne 2.3.

Each set's drawings are matched to emoji-datasource's emoji by code point (Fluent's `chars.json`, OpenMoji's
`data/openmoji.json`) or, for EmojiOne, which names its icons by CLDR slug only, by the slug of the emoji's name
(and of the name plus its skin tone). The licence is read from the package itself and must be the one recorded
here: a package that changed its licence stops the build instead of slipping into a model's training data.
SVGs are rasterised with resvg (the `resvg-py` wheel) at the training size.
"""
from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

SVG_SETS: dict[str, dict] = {
    "fluent": {
        "package": "@iconify-json/fluent-emoji-flat", "version": "1.2.6", "spdx": "MIT", "style": "flat gradient",
        "image_license": "MIT (Fluent Emoji)",
        "image_attribution": "Fluent Emoji, Copyright (c) Microsoft Corporation; MIT licence",
        "image_license_url": "https://github.com/microsoft/fluentui-emoji/blob/main/LICENSE",
    },
    "openmoji": {
        "package": "openmoji", "version": "17.0.0", "spdx": "CC-BY-SA-4.0", "style": "outlined",
        "image_license": "CC-BY-SA-4.0 (OpenMoji)",
        "image_attribution": "OpenMoji, the open-source emoji and icon project (openmoji.org); CC BY-SA 4.0",
        "image_license_url": "https://creativecommons.org/licenses/by-sa/4.0/",
    },
    "emojione": {
        "package": "@iconify-json/emojione", "version": "1.2.3", "spdx": "CC-BY-4.0", "style": "glossy",
        "image_license": "CC-BY-4.0 (EmojiOne 2.3)",
        "image_attribution": "Emoji One 2.3, Copyright Ranks.com Inc.; CC BY 4.0",
        "image_license_url": "https://creativecommons.org/licenses/by/4.0/",
    },
}
_MAX_MEMBER = 64 << 20


class SetError(ValueError):
    """An SVG emoji package that cannot be used, with the reason."""


def code_key(unified: str) -> str:
    """One spelling for a code-point sequence: lower case, without the emoji presentation selector (U+FE0F)."""
    return "-".join(p for p in unified.lower().split("-") if p and p != "fe0f")


def slug(text: str) -> str:
    """A CLDR-style slug: 'BABY ANGEL: dark skin tone' → 'baby-angel-dark-skin-tone'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("’", "").replace("'", "")).strip("-")


def cldr_names(openmoji_path: str | Path) -> dict[str, str]:
    """{code_key: CLDR short name} from OpenMoji's table ('1f355' → 'pizza'): EmojiOne names its icons by these."""
    files = _members(Path(openmoji_path), "openmoji")
    try:
        table = json.loads(files["package/data/openmoji.json"])
    except (KeyError, ValueError):
        raise SetError(f"{Path(openmoji_path).name}: no readable package/data/openmoji.json") from None
    return {code_key(e["hexcode"]): str(e["annotation"]) for e in table
            if isinstance(e, dict) and e.get("hexcode") and e.get("annotation")}


def read_set(path: str | Path, name: str) -> tuple[dict[str, str], str]:
    """(SVG documents keyed by code_key, or by slug for EmojiOne; the package version) from an npm tarball.
    Raises SetError if it is not that package or its licence is not the one recorded in SVG_SETS."""
    spec = SVG_SETS[name]
    files = _members(Path(path), name)
    try:
        package = json.loads(files["package/package.json"])
    except (KeyError, ValueError):
        raise SetError(f"{Path(path).name}: no readable package/package.json") from None
    licence = package.get("license") if isinstance(package.get("license"), str) else None
    if package.get("name") != spec["package"] or licence != spec["spdx"]:
        raise SetError(f"{Path(path).name}: expected {spec['package']} under {spec['spdx']}, found "
                       f"{package.get('name')!r} under {licence!r}: check the licence before training on it")
    if name == "openmoji":
        table = json.loads(files.get("package/data/openmoji.json", b"[]"))
        svgs = {code_key(e["hexcode"]): files[f"package/color/svg/{e['hexcode']}.svg"].decode("utf-8")
                for e in table if isinstance(e, dict) and f"package/color/svg/{e.get('hexcode')}.svg" in files}
    else:
        icons = json.loads(files.get("package/icons.json", b"{}"))
        size = (icons.get("width", 16), icons.get("height", 16))

        def document(icon: dict) -> str:
            w, h = icon.get("width", size[0]), icon.get("height", size[1])
            return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
                    f'{icon["body"]}</svg>')

        bodies = {k: document(v) for k, v in icons.get("icons", {}).items() if isinstance(v, dict) and "body" in v}
        if name == "emojione":
            svgs = bodies
        else:
            chars = json.loads(files.get("package/chars.json", b"{}"))
            svgs = {code_key(code): bodies[icon] for code, icon in chars.items() if icon in bodies}
    if not svgs:
        raise SetError(f"{Path(path).name}: no drawings found in {spec['package']}")
    return svgs, str(package.get("version") or spec["version"])


def _members(path: Path, name: str) -> dict[str, bytes]:
    """The package's JSON files and (for OpenMoji) its colour SVGs, read in one pass."""
    wanted = re.compile(r"package/(package\.json|icons\.json|chars\.json|data/openmoji\.json|color/svg/[0-9A-F-]+\.svg)")
    out = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                if m.isfile() and m.size <= _MAX_MEMBER and wanted.fullmatch(m.name):
                    out[m.name] = tf.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SetError(f"{path.name}: not a readable npm tarball ({type(e).__name__}: {e})") from None
    return out


def rasterise(svg: str, size: int) -> bytes:
    """An SVG document → RGBA PNG bytes of size × size (the builder composites it on the background)."""
    try:
        import resvg_py
    except ImportError:
        raise SetError("rasterising the SVG emoji sets needs the resvg-py wheel: pip install resvg-py") from None
    return bytes(resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size))


def drawing_for(svgs: dict[str, str], name: str, unified: str, display_name: str,
                tone_words: str | None = None, names: dict[str, str] | None = None) -> str | None:
    """The set's SVG for one emoji (a skin-tone variant when `tone_words` is given), or None if it has none.
    EmojiOne is looked up by the CLDR name of the code point (`names`, from cldr_names), then by the Unicode name."""
    if name != "emojione":
        return svgs.get(code_key(unified))
    cldr = (names or {}).get(code_key(unified))
    flag = f"flag for {cldr[len('flag: '):]}" if cldr and cldr.startswith("flag: ") else None  # EmojiOne's spelling
    for label in (cldr, flag, display_name):
        if label:
            svg = svgs.get(slug(label)) or (svgs.get(slug(f"{label} {tone_words}")) if tone_words else None)
            if svg is not None:
                return svg
    return None
