"""Tests for t2igan.datasets.emoji, built on tiny fake npm tarballs (no network)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from t2igan.datasets.emoji import build as em
from t2igan.datasets.emoji import (
    EMOJI_SOURCES,
    EmojiBuildError,
    EmojiBuildReport,
    build_emoji_dataset,
    captions_for,
    dominant_colour,
    split_of,
)

WHITE = (255, 255, 255)
YELLOW = (255, 200, 0)


# ----------------------------------------------------------------------------- fixtures

def _png(im: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **save)
    return buf.getvalue()


def _rgba(color=YELLOW, size=64) -> bytes:
    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))  # transparent *black*: must become background
    ImageDraw.Draw(im).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=color + (255,))
    return _png(im)


def _la(gray=128) -> bytes:
    im = Image.new("LA", (64, 64), (0, 0))
    ImageDraw.Draw(im).rectangle((16, 16, 47, 47), fill=(gray, 255))
    return _png(im)


def _p_transparent(color=(200, 0, 0)) -> bytes:
    im = Image.new("P", (64, 64), 0)
    im.putpalette([0, 0, 0, *color] + [0, 0, 0] * 254)
    ImageDraw.Draw(im).rectangle((8, 16, 55, 47), fill=1)
    return _png(im, transparency=0)


def _entry(name, unified, category, subcategory, short_names, sort_order, **extra):
    e = {
        "name": name,
        "unified": unified,
        "image": unified.lower() + ".png",
        "short_names": short_names,
        "short_name": short_names[0],
        "category": category,
        "subcategory": subcategory,
        "sort_order": sort_order,
        "has_img_google": True,
        "has_img_twitter": True,
    }
    e.update(extra)
    return e


def _variant(unified, has=True):
    return {"unified": unified, "image": unified.lower() + ".png", "has_img_google": has, "has_img_twitter": has}


def _make_fake_package(tmp_path: Path, name="emoji-datasource-google-16.0.0.tgz", n_fillers=24) -> Path:
    entries = [
        _entry("GRINNING FACE", "1F600", "Smileys & Emotion", "face-smiling", ["grinning"], 1),
        _entry(
            "THUMBS UP SIGN", "1F44D", "People & Body", "hand-fingers-closed", ["+1", "thumbsup"], 2,
            skin_variations={
                "1F3FB": _variant("1F44D-1F3FB"),
                "1F3FD": _variant("1F44D-1F3FD"),
                "1F3FF": _variant("1F44D-1F3FF", has=False),  # no google image: excluded
            },
        ),
        _entry(
            "HANDSHAKE", "1F91D", "People & Body", "hands", ["handshake"], 3,
            skin_variations={
                "1F3FB-1F3FF": _variant("1F91D-1F3FB-200D-1FAF2-1F3FF"),
                "1F3FC": _variant("1F91D-1F3FC"),  # same bytes as the base image: dropped
            },
        ),
        _entry("Andorra Flag", "1F1E6-1F1E9", "Flags", "country-flag", ["flag-ad"], 4),
        _entry("SLICE OF PIZZA", "1F355", "Food & Drink", "food-prepared", ["pizza"], 5),
        _entry("RED APPLE", "1F34E", "Food & Drink", "food-fruit", ["apple"], 6, has_img_google=False),
        _entry("PEAR", "1F350", "Food & Drink", "food-fruit", ["pear"], 7),  # image file missing
        _entry("EVIL", "1F47F", "Smileys & Emotion", "face-negative", ["evil"], 8, image="../../evil.png"),
        _entry("France Flag", "1F1EB-1F1F7", "Flags", "country-flag", ["fr", "flag-fr"], 9),
        _entry("St. Martin Flag", "1F1F2-1F1EB", "Flags", "country-flag", ["flag-mf"], 10),
    ]
    tricolour = _p_transparent((0, 0, 200))
    images = {
        "1f600.png": _rgba(),
        "1f44d.png": _la(200),
        "1f44d-1f3fb.png": _la(180),
        "1f44d-1f3fd.png": _la(120),
        "1f91d.png": _rgba((250, 180, 0)),
        "1f91d-1f3fb-200d-1faf2-1f3ff.png": _rgba((240, 200, 160)),
        "1f91d-1f3fc.png": _rgba((250, 180, 0)),
        "1f1e6-1f1e9.png": _p_transparent(),
        "1f355.png": _rgba((230, 120, 40), size=32),  # gets resized to 64
        "1f1eb-1f1f7.png": tricolour,
        "1f1f2-1f1eb.png": tricolour,  # byte-identical picture: must share France's split
    }
    for i in range(n_fillers):
        code = f"1F{0x300 + i:03X}"
        entries.append(_entry(f"OBJECT NUMBER {i}", code, "Objects", "tool", [f"object_{i}"], 100 + i))
        images[code.lower() + ".png"] = _rgba((10 * i % 256, 100, 200))
    files = {
        "package/package.json": json.dumps({"name": "emoji-datasource-google", "version": "16.0.0"}).encode(),
        "package/emoji.json": json.dumps(entries).encode(),
        **{f"package/img/google/64/{k}": v for k, v in images.items()},
        "package/img/google/64/../../../evil.png": _rgba(),  # unsafe member: ignored
    }
    path = tmp_path / name
    _write_tgz(path, files)
    return path


def _write_tgz(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _make_fake_emojilib(tmp_path: Path) -> Path:
    table = {
        "\U0001F600": ["grinning_face", "face", "smile", "happy", ":D"],
        "\U0001F44D": ["thumbs_up", "thumbsup", "yes", "awesome", "good"],
        "\U0001F355": ["pizza", "food", "party", "italy"],
    }
    path = tmp_path / "emojilib-4.0.3.tgz"
    _write_tgz(path, {
        "package/package.json": json.dumps({"name": "emojilib", "version": "4.0.3"}).encode(),
        "package/dist/emoji-en-US.json": json.dumps(table).encode(),
    })
    return path


@pytest.fixture(scope="module")
def pkg(tmp_path_factory) -> Path:
    return _make_fake_package(tmp_path_factory.mktemp("npm"))


@pytest.fixture(scope="module")
def built(pkg, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("built")
    lib = _make_fake_emojilib(tmp)
    out = tmp / "emoji"
    report = build_emoji_dataset(out, tarballs={"google": str(pkg), "emojilib": str(lib)},
                                 test_fraction=0.3, seed=0)
    return out, report


def _rows(split_dir: Path) -> list[dict]:
    meta = split_dir / "metadata.jsonl"
    if not meta.exists():
        return []
    return [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines()]


def _all_rows(out: Path) -> dict[str, list[dict]]:
    return {sp: _rows(out / sp) for sp in ("train", "test")}


# ----------------------------------------------------------------------------- captions

def test_captions_basic_face():
    e = {"name": "GRINNING FACE", "unified": "1F600", "short_names": ["grinning"],
         "category": "Smileys & Emotion", "subcategory": "face-smiling"}
    caps = captions_for(e)
    assert caps[0] == "grinning face"
    assert "a grinning face" in caps and "grinning" in caps
    assert not any("style" in c for c in caps)
    assert len(caps) == len(set(caps)) and all(c == c.lower() for c in caps)


def test_captions_skin_tones():
    e = {"name": "THUMBS UP SIGN", "unified": "1F44D", "short_names": ["+1", "thumbsup"],
         "category": "People & Body", "subcategory": "hand-fingers-closed"}
    caps = captions_for(e, skin="1F3FD", vendor="google", keywords=["thumbs_up", "yes", "good"])
    assert "thumbs up: medium skin tone" in caps
    assert "thumbs up with medium skin tone" in caps
    assert all("medium skin tone" in c for c in caps)  # every caption names the tone
    assert not any("+1" in c for c in caps)
    assert sum("google style" in c for c in caps) == 1
    two = captions_for(e, skin="1F3FB-1F3FC")
    assert any("light skin tone and medium-light skin tone" in c for c in two)
    same = captions_for(e, skin="1F3FF-1F3FF")
    assert same[0] == "thumbs up sign: dark skin tone"
    for skin, words in [("1F3FB", "light"), ("1F3FC", "medium-light"), ("1F3FE", "medium-dark"), ("1F3FF", "dark")]:
        assert captions_for(e, skin=skin)[0] == f"thumbs up sign: {words} skin tone"
    with pytest.raises(ValueError):
        captions_for(e, skin="1F600")


def test_dominant_colour_names_the_colour_most_opaque_pixels_have():
    def disc(fill, bg=(0, 0, 0, 0)):  # a disc of one colour on a transparent (or given) background
        im = Image.new("RGBA", (64, 64), bg)
        ImageDraw.Draw(im).ellipse((8, 8, 56, 56), fill=fill + (255,))
        return _png(im)

    expected = {(252, 194, 27): "yellow", (221, 46, 68): "red", (85, 172, 238): "blue", (120, 177, 89): "green",
                (244, 144, 12): "orange", (170, 142, 214): "purple", (244, 171, 186): "pink", (120, 70, 30): "brown",
                (20, 20, 20): "black", (250, 250, 250): "white", (150, 150, 150): "grey"}
    for rgb, word in expected.items():
        assert dominant_colour(disc(rgb)) == word, rgb
    # the transparent background never counts, an opaque one does
    assert dominant_colour(disc((221, 46, 68), bg=(85, 172, 238, 255))) == "blue"
    # no colour covers enough of the drawing: no word rather than a wrong one
    bands = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    for i, fill in enumerate([(221, 46, 68), (85, 172, 238), (120, 177, 89)]):
        ImageDraw.Draw(bands).rectangle((20 * i, 0, 20 * i + 19, 59), fill=fill + (255,))
    assert dominant_colour(_png(bands)) is None
    assert dominant_colour(_png(bands), share=0.3) in ("red", "blue", "green")
    assert dominant_colour(_png(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))) is None


def test_colour_caption_only_where_the_name_takes_it():
    face = {"name": "GRINNING FACE", "unified": "1F600", "category": "Smileys & Emotion",
            "subcategory": "face-smiling"}
    assert "a yellow grinning face" in captions_for(face, colour="yellow")
    assert "an orange grinning face" in captions_for(face, colour="orange")
    assert captions_for(face, colour="yellow")[0] == "grinning face"  # the name stays first
    assert captions_for(face, colour=None) == [c for c in captions_for(face, colour="yellow") if "yellow" not in c]
    heart = {"name": "YELLOW HEART", "unified": "1F49B", "category": "Smileys & Emotion", "subcategory": "heart"}
    assert not any(c.startswith("a yellow yellow") for c in captions_for(heart, colour="yellow"))
    thumbs = {"name": "THUMBS UP SIGN", "unified": "1F44D", "category": "People & Body",
              "subcategory": "hand-fingers-closed"}
    assert not any("brown" in c for c in captions_for(thumbs, skin="1F3FE", colour="brown"))  # the tone says it
    flag = {"name": "Japan Flag", "unified": "1F1EF-1F1F5", "category": "Flags", "subcategory": "country-flag"}
    assert not any("white" in c for c in captions_for(flag, colour="white"))


def test_captions_flags():
    e = {"name": "Andorra Flag", "unified": "1F1E6-1F1E9", "short_names": ["flag-ad"],
         "category": "Flags", "subcategory": "country-flag"}
    caps = captions_for(e, vendor="twitter", keywords=["flag_andorra", "ad", "flag", "nation", "andorran"])
    assert caps[0] == "andorra flag"
    assert "flag of andorra" in caps and "the flag of andorra" in caps
    assert not any(c in ("flag ad", "ad", "flag andorra") for c in caps)
    assert "andorra flag, twitter style" in caps
    nl = captions_for({**e, "name": "Netherlands Flag", "short_names": ["flag-nl"]})
    assert "flag of the netherlands" in nl
    pirate = captions_for({"name": "PIRATE FLAG", "unified": "1F3F4-200D-2620-FE0F",
                           "short_names": ["pirate_flag"], "category": "Flags", "subcategory": "flag"})
    assert "a pirate flag" in pirate


def test_captions_keywords_and_articles():
    e = {"name": "SLICE OF PIZZA", "unified": "1F355", "short_names": ["pizza"],
         "category": "Food & Drink", "subcategory": "food-prepared"}
    caps = captions_for(e, vendor="google", keywords=["pizza", "food", "party", "italy", "shit", ":D"])
    assert "a slice of pizza" in caps and "pizza" in caps
    assert "a food emoji" in caps
    assert not any("shit" in c or ":d" in c for c in caps)
    cherries = captions_for({"name": "CHERRIES", "unified": "1F352", "short_names": ["cherries"],
                             "category": "Food & Drink", "subcategory": "food-fruit"})
    assert "a cherries" not in cherries  # no article for plurals
    assert "an apple" in captions_for({"name": "APPLE", "unified": "1F34E", "short_names": ["apple"],
                                       "category": "Food & Drink"})


def test_split_of_is_deterministic():
    codes = [f"1F{i:03X}" for i in range(400)]
    a = [split_of(c, seed=3, test_fraction=0.1) for c in codes]
    assert a == [split_of(c, seed=3, test_fraction=0.1) for c in codes]
    assert 10 < a.count("test") < 80
    assert a != [split_of(c, seed=4, test_fraction=0.1) for c in codes]
    assert all(split_of(c, seed=0, test_fraction=0.0) == "train" for c in codes)


# ----------------------------------------------------------------------------- build

def test_metadata_and_images(built):
    out, report = built
    assert isinstance(report, EmojiBuildReport)
    rows = _all_rows(out)
    assert rows["train"] and rows["test"]
    assert report.num_train == len(rows["train"]) and report.num_test == len(rows["test"])
    assert report.vendors == ["google"] and report.keywords
    for sp, rs in rows.items():
        for r in rs:
            assert {"file_name", "text", "emoji", "base", "vendor", "category", "subcategory"} <= set(r)
            assert r["vendor"] == "google" and r["file_name"].startswith("google/")
            assert isinstance(r["text"], list) and r["text"]
            assert all(isinstance(t, str) and t == t.lower() for t in r["text"])
            assert len(set(r["text"])) == len(r["text"])
            p = out / sp / r["file_name"]
            assert p.is_file()
            with Image.open(p) as im:
                assert im.mode == "RGB" and im.size == (64, 64)
                assert im.getpixel((0, 0)) == WHITE  # transparent corner composited on white
    emojis = {r["emoji"] for rs in rows.values() for r in rs}
    # has_img false, missing file, unsafe image name, same-as-base variant: all excluded
    assert not {"1F34E", "1F350", "1F47F", "1F44D-1F3FF", "1F91D-1F3FC"} & emojis
    assert {"1F600", "1F44D", "1F44D-1F3FB", "1F44D-1F3FD", "1F91D-1F3FB-200D-1FAF2-1F3FF", "1F1E6-1F1E9",
            "1F355"} <= emojis
    assert report.num_concepts == len({r["base"] for rs in rows.values() for r in rs}) == 7 + 24
    assert not (out.parent / "evil.png").exists()


def test_image_modes_composited(built):
    out, _ = built
    by_emoji = {r["emoji"]: (sp, r) for sp, rs in _all_rows(out).items() for r in rs}

    def img(code):
        sp, r = by_emoji[code]
        return Image.open(out / sp / r["file_name"]).convert("RGB")

    assert img("1F600").getpixel((32, 32)) == YELLOW  # RGBA
    assert img("1F44D").getpixel((32, 32)) == (200, 200, 200)  # LA
    assert img("1F44D").getpixel((2, 2)) == WHITE
    flag = img("1F1E6-1F1E9")  # P with transparency index
    assert flag.getpixel((32, 32)) == (200, 0, 0) and flag.getpixel((2, 2)) == WHITE
    pizza = img("1F355")  # 32x32 source resized
    assert pizza.size == (64, 64) and pizza.getpixel((0, 0)) == WHITE


def test_captions_in_metadata(built):
    out, _ = built
    by_emoji = {r["emoji"]: r for rs in _all_rows(out).values() for r in rs}
    assert by_emoji["1F600"]["text"][0] == "grinning face"
    assert "grinning face, google style" in by_emoji["1F600"]["text"]
    assert "a smile emoji" in by_emoji["1F600"]["text"]  # emojilib keyword
    assert "a yellow grinning face" in by_emoji["1F600"]["text"]  # its drawn colour (a yellow disc)
    medium = by_emoji["1F44D-1F3FD"]["text"]
    assert "thumbs up: medium skin tone" in medium and "thumbs up with medium skin tone" in medium
    assert by_emoji["1F44D-1F3FD"]["base"] == "1F44D" and by_emoji["1F44D-1F3FD"]["skin_tone"] == "medium skin tone"
    assert any("light skin tone and dark skin tone" in t for t in by_emoji["1F91D-1F3FB-200D-1FAF2-1F3FF"]["text"])
    flag = by_emoji["1F1E6-1F1E9"]["text"]
    assert "flag of andorra" in flag and "andorra flag" in flag
    assert by_emoji["1F1E6-1F1E9"]["category"] == "Flags"


def test_split_by_concept(built, pkg, tmp_path):
    out, report = built
    rows = _all_rows(out)
    train_bases = {r["base"] for r in rows["train"]}
    test_bases = {r["base"] for r in rows["test"]}
    assert not train_bases & test_bases
    assert report.num_test_concepts == len(test_bases) > 0
    # every variant of a base lands with its base
    for rs in rows.values():
        for r in rs:
            assert r["emoji"].startswith(r["base"])
    # byte-identical pictures (France / St. Martin) always share a split, whatever the seed
    seed = next(s for s in range(500) if split_of("1F1EB-1F1F7", s, 0.5) != split_of("1F1F2-1F1EB", s, 0.5))
    o2 = tmp_path / "e2"
    build_emoji_dataset(o2, tarballs={"google": str(pkg)}, test_fraction=0.5, seed=seed)
    where = {r["base"]: sp for sp, rs in _all_rows(o2).items() for r in rs}
    assert where["1F1EB-1F1F7"] == where["1F1F2-1F1EB"]


def test_deterministic(pkg, tmp_path):
    a = build_emoji_dataset(tmp_path / "a", tarballs={"google": str(pkg)}, test_fraction=0.3, seed=7)
    b = build_emoji_dataset(tmp_path / "b", tarballs={"google": str(pkg)}, test_fraction=0.3, seed=7)
    for sp in ("train", "test"):
        ta = (tmp_path / "a" / sp / "metadata.jsonl").read_bytes()
        assert ta == (tmp_path / "b" / sp / "metadata.jsonl").read_bytes()
    assert (a.num_train, a.num_test) == (b.num_train, b.num_test)
    # no emojilib tarball given -> no keyword captions, and no network
    assert not a.keywords
    # custom resolution / background
    c = build_emoji_dataset(tmp_path / "c", tarballs={"google": str(pkg)}, test_fraction=0.3, seed=7,
                            resolution=32, background=(0, 128, 0))
    r = _rows(tmp_path / "c" / "train")[0]
    with Image.open(tmp_path / "c" / "train" / r["file_name"]) as im:
        assert im.size == (32, 32) and im.getpixel((0, 0)) == (0, 128, 0)
    assert c.num_train == a.num_train


def test_sources_and_build_json(built):
    out, report = built
    sources = (out / "SOURCES.md").read_text()
    for needle in ("emoji-datasource-google", "16.0.0", "Apache-2.0", "Noto Emoji", "MIT", "emojilib",
                   "Cal Henderson"):
        assert needle in sources
    build = json.loads((out / "build.json").read_text())
    assert build["counts"]["train"] == report.num_train and build["counts"]["test"] == report.num_test
    assert build["params"]["seed"] == 0 and build["params"]["test_fraction"] == 0.3
    assert build["sources"]["google"]["version"] == "16.0.0"
    assert "google" in report.summary() and str(report.num_train) in report.summary()
    assert EMOJI_SOURCES["twitter"]["image_license"].startswith("CC-BY-4.0")
    assert EMOJI_SOURCES["google"]["image_license"] == "Apache-2.0 (Noto Emoji)"


def _leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(name + ".")]


def test_failed_build_keeps_previous(pkg, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    build_emoji_dataset(out, tarballs={"google": str(pkg)}, test_fraction=0.3)
    before = (out / "train" / "metadata.jsonl").read_bytes()

    corrupt = tmp_path / "corrupt.tgz"
    corrupt.write_bytes(pkg.read_bytes()[: 3000])  # truncated gzip stream
    with pytest.raises(EmojiBuildError, match="tarball"):
        build_emoji_dataset(out, tarballs={"google": str(corrupt)})
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(b"this is not a tarball at all")
    with pytest.raises(EmojiBuildError):
        build_emoji_dataset(out, tarballs={"google": str(garbage)})
    no_json = tmp_path / "nojson.tgz"
    _write_tgz(no_json, {"package/img/google/64/1f600.png": _rgba()})
    with pytest.raises(EmojiBuildError, match="emoji.json"):
        build_emoji_dataset(out, tarballs={"google": str(no_json)})

    # a crash in the middle of writing images: the tmp dir is removed, old data kept
    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(em, "captions_for", boom)
    with pytest.raises(RuntimeError, match="boom"):
        build_emoji_dataset(out, tarballs={"google": str(pkg)}, test_fraction=0.3)
    assert (out / "train" / "metadata.jsonl").read_bytes() == before
    assert _leftovers(tmp_path, "ds") == []

    # and a successful rebuild replaces it in place
    monkeypatch.undo()
    rep = build_emoji_dataset(out, tarballs={"google": str(pkg)}, test_fraction=0.5, seed=1)
    assert len(_rows(out / "train")) == rep.num_train
    assert _leftovers(tmp_path, "ds") == []


def test_npm_missing(tmp_path):
    with pytest.raises(EmojiBuildError, match="npm was not found on PATH"):
        build_emoji_dataset(tmp_path / "out", npm="/nonexistent/npm", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "out").exists()


def _fake_npm(tmp_path: Path, fixtures: dict[str, Path], fail: bool = False) -> Path:
    """A stand-in npm: `npm pack <pkg>@<ver> --pack-destination DIR` copies a fixture tarball."""
    log = tmp_path / "npm.log"
    script = tmp_path / "fake-npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"if {fail!r}:\n"
        "    sys.stderr.write('npm error code E404\\nnpm error 404 Not Found - GET https://registry.npmjs.org/x\\n')\n"
        "    sys.exit(1)\n"
        "spec = sys.argv[2]; dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
        "name, ver = spec.rsplit('@', 1)\n"
        f"fixtures = {({k: str(v) for k, v in fixtures.items()})!r}\n"
        "shutil.copy(fixtures[name], f'{dest}/{name}-{ver}.tgz')\n"
        "print(f'{name}-{ver}.tgz')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_npm_pack_and_cache(pkg, tmp_path):
    lib = _make_fake_emojilib(tmp_path)
    npm = _fake_npm(tmp_path, {"emoji-datasource-google": pkg, "emojilib": lib})
    cache = tmp_path / "cache"
    rep = build_emoji_dataset(tmp_path / "out", vendors=("google",), npm=str(npm), cache_dir=cache,
                              test_fraction=0.3)
    assert rep.keywords and rep.num_train > 0
    assert (cache / "emoji-datasource-google-16.0.0.tgz").is_file()
    assert (cache / "emojilib-4.0.3.tgz").is_file()
    calls = (tmp_path / "npm.log").read_text().splitlines()
    assert len(calls) == 2 and all("--pack-destination" in c for c in calls)
    assert calls[0].startswith("pack emoji-datasource-google@16.0.0")
    # second build: served from the cache, npm is not run again
    build_emoji_dataset(tmp_path / "out", vendors=("google",), npm=str(npm), cache_dir=cache, test_fraction=0.3)
    assert len((tmp_path / "npm.log").read_text().splitlines()) == 2
    assert [p.name for p in cache.iterdir() if p.name.startswith(".pack-")] == []


def test_npm_pack_failure_reports_stderr(tmp_path):
    npm = _fake_npm(tmp_path, {}, fail=True)
    with pytest.raises(EmojiBuildError, match="E404") as exc:
        build_emoji_dataset(tmp_path / "out", vendors=("google",), npm=str(npm), cache_dir=tmp_path / "c")
    assert "npm pack emoji-datasource-google@16.0.0" in str(exc.value)
    assert not (tmp_path / "out").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("out.")] == []


def test_bad_arguments(pkg, tmp_path):
    with pytest.raises(EmojiBuildError, match="vendor"):
        build_emoji_dataset(tmp_path / "o", vendors=("apple",), tarballs={"apple": str(pkg)})
    with pytest.raises(EmojiBuildError, match="test_fraction"):
        build_emoji_dataset(tmp_path / "o", tarballs={"google": str(pkg)}, test_fraction=1.0)
    with pytest.raises(EmojiBuildError, match="not found"):
        build_emoji_dataset(tmp_path / "o", tarballs={"google": str(tmp_path / "nope.tgz")})
    # a google tarball handed in as twitter has no img/twitter/64 images
    with pytest.raises(EmojiBuildError, match="no images"):
        build_emoji_dataset(tmp_path / "o", vendors=("twitter",), tarballs={"twitter": str(pkg)})
    assert not (tmp_path / "o").exists()
    assert os.listdir(tmp_path) == []


