"""The SVG emoji sets (Fluent flat, OpenMoji, EmojiOne): tiny npm tarballs made on the fly, matched to the
emoji-datasource list by code point or CLDR slug, licences checked, rasterised at the training size."""
import json

import pytest
from PIL import Image

from t2igan.datasets.emoji import EmojiBuildError, build_emoji_dataset
from t2igan.datasets.emoji.sets import SVG_SETS, SetError, code_key, read_set, slug

from test_emoji_dataset import _make_fake_package, _write_tgz

CIRCLE = '<circle cx="8" cy="8" r="7" fill="#{colour}"/>'
ANNOTATIONS = {"1F600": "grinning face", "1F355": "pizza", "1F1E6-1F1E9": "flag: Andorra"}  # CLDR names, as OpenMoji's table has them


def iconify(tmp_path, name, icons: dict[str, str], chars: dict[str, str] | None, licence=None):
    spec = SVG_SETS[name]
    files = {"package/package.json": json.dumps({"name": spec["package"], "version": spec["version"],
                                                 "license": licence or spec["spdx"]}).encode(),
             "package/icons.json": json.dumps({"width": 16, "height": 16,
                                               "icons": {k: {"body": v} for k, v in icons.items()}}).encode()}
    if chars is not None:
        files["package/chars.json"] = json.dumps(chars).encode()
    path = tmp_path / f"{name}.tgz"
    _write_tgz(path, files)
    return path


def openmoji(tmp_path, hexcodes: dict[str, str]):
    table = [{"hexcode": h, "annotation": ANNOTATIONS.get(h, "x"), "group": "g", "skintone": ""} for h in hexcodes]
    files = {"package/package.json": json.dumps({"name": "openmoji", "version": "17.0.0",
                                                 "license": "CC-BY-SA-4.0"}).encode(),
             "package/data/openmoji.json": json.dumps(table).encode(),
             **{f"package/color/svg/{h}.svg": (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
                                              f'{body}</svg>').encode() for h, body in hexcodes.items()}}
    path = tmp_path / "openmoji.tgz"
    _write_tgz(path, files)
    return path


def test_codes_and_slugs():
    assert code_key("2764-FE0F") == code_key("2764") == "2764"
    assert code_key("1F91D-1F3FB-200D-1FAF2-1F3FF") == "1f91d-1f3fb-200d-1faf2-1f3ff"
    assert slug("BABY ANGEL dark skin tone") == "baby-angel-dark-skin-tone" and slug("Andorra Flag") == "andorra-flag"


def test_each_set_joins_the_build_with_its_style_words_and_licence(tmp_path):
    google = _make_fake_package(tmp_path)
    fluent = iconify(tmp_path, "fluent", {"grinning-face": CIRCLE.format(colour="ffcc00"),
                                          "thumbs-up-light": CIRCLE.format(colour="f0c8a0")},
                     {"1f600": "grinning-face", "1f44d-1f3fb": "thumbs-up-light"})
    # EmojiOne names icons by CLDR name ("pizza"), which is not the Unicode name ("SLICE OF PIZZA")
    emojione = iconify(tmp_path, "emojione", {"grinning-face": CIRCLE.format(colour="ffdd33"),
                                              "pizza": CIRCLE.format(colour="e08030"),
                                              "flag-for-andorra": CIRCLE.format(colour="0018a8")}, None)
    om = openmoji(tmp_path, {"1F600": CIRCLE.format(colour="fcea2b"), "1F355": CIRCLE.format(colour="f1b31c"),
                             "1F1E6-1F1E9": CIRCLE.format(colour="0018a8")})
    out = tmp_path / "emoji"
    report = build_emoji_dataset(out, vendors=("google", "fluent", "openmoji", "emojione"), test_fraction=0.0,
                                 tarballs={"google": str(google), "fluent": str(fluent), "openmoji": str(om),
                                           "emojione": str(emojione)})
    rows = [json.loads(line) for line in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    by = {(r["vendor"], r["emoji"]): r for r in rows}
    assert {("fluent", "1F600"), ("fluent", "1F44D-1F3FB"), ("openmoji", "1F600"), ("openmoji", "1F355"),
            ("emojione", "1F600"), ("emojione", "1F355"), ("emojione", "1F1E6-1F1E9")} <= set(by)
    assert not any(v == "fluent" and e == "1F355" for v, e in by), "a set without that emoji adds no image"
    assert "grinning face, outlined style" in by[("openmoji", "1F600")]["text"]
    assert "grinning face, flat gradient style" in by[("fluent", "1F600")]["text"]
    assert "thumbs up sign: light skin tone" in by[("fluent", "1F44D-1F3FB")]["text"]
    image = Image.open(out / "train" / by[("openmoji", "1F600")]["file_name"])
    assert image.size == (64, 64) and image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((32, 32))[2] < 100, "the yellow circle was drawn, on white"
    build = json.loads((out / "build.json").read_text())
    assert build["counts"]["per_vendor"] == {"google": build["counts"]["per_vendor"]["google"], "fluent": 2,
                                             "openmoji": 3, "emojione": 3}
    assert build["sources"]["openmoji"]["image_license"] == "CC-BY-SA-4.0 (OpenMoji)"
    sources = (out / "SOURCES.md").read_text()
    assert "`openmoji`" in sources and "shared under the same licence" in sources and "Microsoft" in sources
    assert report.vendors == ["google", "fluent", "openmoji", "emojione"]
    assert "fluent (2), openmoji (3), emojione (3)" in report.summary()


def test_a_package_under_another_licence_stops_the_build(tmp_path):
    google = _make_fake_package(tmp_path)
    fluent = iconify(tmp_path, "fluent", {"grinning-face": CIRCLE.format(colour="ffcc00")}, {"1f600": "grinning-face"},
                     licence="CC-BY-NC-4.0")
    with pytest.raises(SetError, match="expected @iconify-json/fluent-emoji-flat under MIT, found .* 'CC-BY-NC-4.0'"):
        read_set(fluent, "fluent")
    with pytest.raises(EmojiBuildError, match="check the licence before training on it"):
        build_emoji_dataset(tmp_path / "o", vendors=("google", "fluent"),
                            tarballs={"google": str(google), "fluent": str(fluent)})
    assert not (tmp_path / "o").exists()
    with pytest.raises(EmojiBuildError, match="comes from emoji-datasource"):
        build_emoji_dataset(tmp_path / "o", vendors=("fluent",), tarballs={"fluent": str(fluent)})
