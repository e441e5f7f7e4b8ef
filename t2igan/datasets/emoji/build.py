"""`build_emoji_dataset`: fetch, caption, split and write the dataset atomically."""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ...atomic import new_folder
from ...paths import sha256_of
from .captions import _display_name, captions_for, dominant_colour, skin_tone_words
from .sets import SVG_SETS, SetError, cldr_names, drawing_for, rasterise, read_set
from .sources import (
    _DATASOURCE_META,
    _IMAGE_RE,
    _UNIFIED_RE,
    ALL_SOURCES,
    EMOJI_SOURCES,
    EMOJILIB_SOURCE,
    EmojiBuildError,
    _default_cache_dir,
    _emoji_char,
    _npm_pack,
    _read_datasource,
    _read_emojilib,
    _to_rgb_png,
)
from .split import _Groups, split_of


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
    vendors=tuple(ALL_SOURCES),
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
                       "tarball_sha256": sha256_of(paths[v]),
                       "image_license": ALL_SOURCES[v]["image_license"]} for v in vendors},
                **({"emojilib": {"package": "emojilib", "version": versions["emojilib"],
                                 "tarball_sha256": sha256_of(emojilib_path), "license": "MIT"}}
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
