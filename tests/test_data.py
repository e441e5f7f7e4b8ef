"""Tests for t2igan.data: formats, image modes, and every bad/unsafe input."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from t2igan.data import (CaptionedImages, DataConfig, DatasetError, DatasetReport, Skipped,
                         load_captioned_images)

R = 8
CFG = DataConfig(resolution=R, min_pairs=1)
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# ---------------------------------------------------------------- helpers

def img_bytes(color=RED, size=(R, R), mode="RGB", fmt="PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt, **save)
    return buf.getvalue()


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def txt_folder(tmp_path, n=4, name="ds"):
    """A folder of n red PNGs with .txt captions."""
    root = tmp_path / name
    for i in range(n):
        write(root / f"img{i}.png", img_bytes())
        write(root / f"img{i}.txt", f"a red square number {i}")
    return root


def jsonl_lines(rows) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"


def make_zip(path, files: dict) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def reasons(report: DatasetReport) -> dict[str, str]:
    return {s.file: s.reason for s in report.skipped}


def pixel(ds: CaptionedImages, i: int, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in ds.images[i, :, y, x])


def load_one(tmp_path, data: bytes, name="x.png", cfg=CFG):
    """Load a folder holding just this image with a caption."""
    root = tmp_path / "one"
    write(root / name, data)
    write(root / (os.path.splitext(name)[0] + ".txt"), "caption")
    return load_captioned_images(root, cfg)


def png_with_declared_size(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR claims width x height (CRC fixed up)."""
    data = bytearray(img_bytes())
    # signature (8) + length (4) + b'IHDR' (4) -> width, height at 16..24; CRC at 29..33
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# ---------------------------------------------------------------- formats

def test_metadata_jsonl_string_and_list_text(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        write(root / "images" / f"{i}.png", img_bytes())
    write(root / "metadata.jsonl", jsonl_lines([
        {"file_name": "images/0.png", "text": "a red square"},
        {"file_name": "images/1.png", "text": ["  red   box ", "crimson tile", "red box"]},
        {"file_name": "images/2.png", "text": "another one"},
        {"file_name": "images/3.png", "text": "a red square"},
    ]))
    ds, rep = load_captioned_images(root, DataConfig(resolution=R))
    assert rep.format == "metadata.jsonl"
    assert rep.num_pairs == len(ds) == 4
    assert rep.num_captions == 5
    assert rep.skipped == [] and rep.warnings == []
    assert ds.captions[1] == ["red box", "crimson tile"]          # cleaned + deduplicated
    assert ds.files == [f"images/{i}.png" for i in range(4)]
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (4, 3, R, R)
    x, i = ds[2]
    assert i == 2 and x.dtype == torch.float32 and x.shape == (3, R, R)
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert ds.unique_captions() == ["a red square", "another one", "crimson tile", "red box"]


def test_metadata_csv(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        write(root / f"{i}.png", img_bytes())
    write(root / "metadata.csv", "file_name,text\n" + "".join(f"{i}.png,red {i}\n" for i in range(4)))
    ds, rep = load_captioned_images(root, CFG)
    assert rep.format == "metadata.csv"
    assert ds.captions == [[f"red {i}"] for i in range(4)]


def test_captions_csv_quoted_comma_and_bom(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        write(root / f"{i}.png", img_bytes())
    rows = "".join(f'{i}.png,"a cat, sitting, number {i}"\r\n' for i in range(4))
    write(root / "captions.csv", b"\xef\xbb\xbf" + f"file_name,text\r\n{rows}".encode())
    ds, rep = load_captioned_images(root, CFG)
    assert rep.format == "captions.csv"
    assert ds.captions[0] == ["a cat, sitting, number 0"]
    assert rep.skipped == []


def test_csv_missing_column_is_an_error(tmp_path):
    root = tmp_path / "ds"
    write(root / "0.png", img_bytes())
    write(root / "captions.csv", "file,caption\n0.png,red\n")
    with pytest.raises(DatasetError, match=r"captions.csv: missing column 'file_name', 'text'"):
        load_captioned_images(root, CFG)


def test_csv_row_shorter_than_the_header_says_so(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        write(root / f"{i}.png", img_bytes())
    write(root / "captions.csv", "file_name,text\n0.png,red\n1.png\n2.png,blue\n")
    ds, rep = load_captioned_images(root, CFG)
    assert ds.files == ["0.png", "2.png"]
    assert [str(s) for s in rep.skipped] == [
        "captions.csv line 3: no value for field 'text' (the row has fewer values than the header)",
        "1.png: no caption (not listed in captions.csv)"]
    ds, rep = load_captioned_images(_jsonl_folder(tmp_path / "j", '{"file_name": "0.png", "text": null}\n'
                                                                   '{"file_name": "1.png", "text": "ok"}\n'
                                                                   '{"file_name": "2.png", "text": "ok"}\n'), CFG)
    assert str(rep.skipped[0]) == "metadata.jsonl line 1: no value for field 'text' (it is null)"


def test_txt_beside_image_with_several_lines(tmp_path):
    root = txt_folder(tmp_path, n=3)
    write(root / "sub" / "cat.png", img_bytes(BLUE))
    write(root / "sub" / "cat.txt", "a blue cat\n\n   sitting   quietly  \r\n\n")
    write(root / "lonely.png", img_bytes())
    write(root / "orphan.txt", "caption without image")
    write(root / "notes.md", "ignored")
    write(root / "photo.heic", b"not supported")
    ds, rep = load_captioned_images(root, CFG)
    assert rep.format == "txt"
    assert ds.captions[ds.files.index("sub/cat.png")] == ["a blue cat", "sitting quietly"]
    assert len(ds) == 4
    assert reasons(rep) == {"lonely.png": "no caption", "orphan.txt": "no image",
                            "photo.heic": "not an image"}


def test_format_preference_and_warning(tmp_path):
    root = txt_folder(tmp_path)
    write(root / "captions.csv", "file_name,text\nimg0.png,from csv\n")
    write(root / "metadata.jsonl", jsonl_lines([{"file_name": f"img{i}.png", "text": "from jsonl"}
                                                for i in range(4)]))
    ds, rep = load_captioned_images(root, CFG)
    assert rep.format == "metadata.jsonl"
    assert ds.captions == [["from jsonl"]] * 4
    assert any("captions.csv: ignored" in w for w in rep.warnings)


def test_no_recognised_format(tmp_path):
    root = tmp_path / "ds"
    write(root / "a.png", img_bytes())
    write(root / "readme.md", "hello")
    with pytest.raises(DatasetError) as e:
        load_captioned_images(root, CFG)
    msg = str(e.value)
    assert str(root) in msg and "metadata.jsonl" in msg and "captions.csv" in msg and ".txt" in msg


# ---------------------------------------------------------------- zips

@pytest.mark.parametrize("prefix", ["", "myset/"])
def test_zip_root_or_single_subfolder_writes_nothing(tmp_path, prefix, monkeypatch):
    def no_extract(*a, **k):
        raise AssertionError("must not extract")
    monkeypatch.setattr(zipfile.ZipFile, "extract", no_extract)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", no_extract)
    files = {f"{prefix}img/{i}.png": img_bytes(GREEN) for i in range(4)}
    files[f"{prefix}metadata.jsonl"] = jsonl_lines(
        [{"file_name": f"img/{i}.png", "text": f"green {i}"} for i in range(4)])
    files["__MACOSX/._metadata.jsonl"] = b"junk"
    files[f"{prefix}.DS_Store"] = b"junk"
    zpath = tmp_path / "data.zip"
    make_zip(zpath, files)
    before = sorted(p for p in tmp_path.rglob("*"))
    ds, rep = load_captioned_images(zpath, CFG)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert rep.format == "metadata.jsonl" and rep.source == str(zpath)
    assert ds.files == [f"{prefix}img/{i}.png" for i in range(4)]
    assert pixel(ds, 0, 0, 0) == GREEN
    assert rep.skipped == []            # __MACOSX and dotfiles ignored silently


def test_zip_txt_format(tmp_path):
    zpath = tmp_path / "d.zip"
    make_zip(zpath, {"a.png": img_bytes(), "a.txt": "red", "b.jpg": img_bytes(fmt="JPEG"), "b.txt": "red jpg"})
    ds, rep = load_captioned_images(zpath, CFG)
    assert rep.format == "txt" and sorted(ds.files) == ["a.png", "b.jpg"]


def test_zip_unsafe_members(tmp_path):
    inner = io.BytesIO()
    make_zip(inner, {"x.png": img_bytes()})
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in range(2):
            zf.writestr(f"ok{i}.png", img_bytes())
            zf.writestr(f"ok{i}.txt", "fine")
        zf.writestr("../evil.png", img_bytes())
        zf.writestr("../evil.txt", "evil")
        zf.writestr("/abs/evil.png", img_bytes())
        zf.writestr("a/../../evil2.png", img_bytes())
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("link.txt", "a link")
        zf.writestr("inner.zip", inner.getvalue())
        zf.writestr("more.tar.gz", b"\x1f\x8b junk")
    ds, rep = load_captioned_images(zpath, CFG)
    assert sorted(ds.files) == ["ok0.png", "ok1.png"]
    got = reasons(rep)
    assert got["../evil.png"] == got["../evil.txt"] == "unsafe path"
    assert got["/abs/evil.png"] == got["a/../../evil2.png"] == "unsafe path"
    assert got["link.png"] == "symlink"
    assert got["inner.zip"] == got["more.tar.gz"] == "nested archive"
    assert not (tmp_path.parent / "evil.png").exists()


def test_zip_too_many_files(tmp_path):
    zpath = tmp_path / "many.zip"
    make_zip(zpath, {f"{i}.png": b"x" for i in range(11)})
    with pytest.raises(DatasetError, match=r"many.zip: too many files in zip \(11 > max_files=10\)"):
        load_captioned_images(zpath, DataConfig(resolution=R, max_files=10))


def test_zip_bomb_ratio_and_total_size(tmp_path):
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", img_bytes())
        zf.writestr("a.txt", "red")
        with zf.open("zeros.png", "w") as f:
            chunk = bytes(1 << 20)
            for _ in range(50):
                f.write(chunk)
    assert zpath.stat().st_size < 1_000_000
    with pytest.raises(DatasetError, match=r"bomb.zip: zeros.png has compression ratio \d+:1.*zip bomb"):
        load_captioned_images(zpath, CFG)
    with pytest.raises(DatasetError, match=r"bomb.zip: zip expands to 50.0 MiB, more than max_total_bytes"):
        load_captioned_images(zpath, DataConfig(resolution=R, max_total_bytes=10 << 20, max_ratio=1e9))


@pytest.mark.parametrize("data", [b"this is not a zip", img_bytes(), b""])
def test_not_a_zip(tmp_path, data):
    path = tmp_path / "upload.zip"
    write(path, data)
    with pytest.raises(DatasetError, match=r"upload.zip: not a valid zip file"):
        load_captioned_images(path, CFG)


def test_truncated_zip(tmp_path):
    zpath = tmp_path / "cut.zip"
    make_zip(zpath, {"a.png": img_bytes(), "a.txt": "red"})
    zpath.write_bytes(zpath.read_bytes()[:-30])
    with pytest.raises(DatasetError, match="not a valid zip file"):
        load_captioned_images(zpath, CFG)


# ---------------------------------------------------------------- image modes

def _half_transparent(mode: str) -> Image.Image:
    """16x16: left half fully transparent red, right half opaque green (in this mode)."""
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    rgba.paste((0, 255, 0, 255), (8, 0, 16, 16))
    if mode == "RGBA":
        return rgba
    if mode == "LA":
        la = Image.new("LA", (16, 16), (80, 0))
        la.paste((200, 255), (8, 0, 16, 16))
        return la
    p = Image.new("P", (16, 16), 0)
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.paste(1, (8, 0, 16, 16))
    p.info["transparency"] = 0
    return p


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
@pytest.mark.parametrize("background", [WHITE, (10, 20, 200)])
def test_transparency_composited_on_background(tmp_path, mode, background):
    im = _half_transparent(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG", **({"transparency": 0} if mode == "P" else {}))
    ds, _ = load_one(tmp_path, buf.getvalue(), cfg=DataConfig(resolution=R, min_pairs=1, background=background))
    assert pixel(ds, 0, 0, 0) == background          # transparent -> background
    opaque = (200, 200, 200) if mode == "LA" else GREEN
    assert pixel(ds, 0, R - 1, R - 1) == opaque


def test_gif_transparency_and_first_frame(tmp_path):
    frames = [Image.new("P", (R, R), 0) for _ in range(2)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    frames[0].paste(1, (0, 0, R, R))
    frames[0].paste(0, (0, 0, 2, 2))                  # transparent corner
    frames[1].paste(2, (0, 0, R, R))
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], transparency=0, duration=50, loop=0)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 2
    ds, _ = load_one(tmp_path, buf.getvalue(), name="anim.gif")
    assert pixel(ds, 0, R - 1, R - 1) == RED          # first frame, not blue
    assert pixel(ds, 0, 0, 0) == WHITE


def test_grayscale_and_bilevel(tmp_path):
    ds, _ = load_one(tmp_path, img_bytes(color=77, mode="L"))
    assert pixel(ds, 0, 3, 3) == (77, 77, 77)
    ds, _ = load_one(tmp_path / "b", img_bytes(color=1, mode="1"))
    assert pixel(ds, 0, 3, 3) == WHITE


def test_16bit_grayscale(tmp_path):
    arr = np.zeros((16, 16), dtype=np.uint16)
    arr[:, 8:] = 65535
    arr[:8, :8] = 32896                                # 128 * 257
    im = Image.fromarray(arr)
    assert im.mode == "I;16"
    buf = io.BytesIO()
    im.save(buf, "PNG")
    ds, _ = load_one(tmp_path, buf.getvalue())
    assert pixel(ds, 0, 0, 0) == (128, 128, 128)
    assert pixel(ds, 0, R - 1, 0) == (0, 0, 0)
    assert pixel(ds, 0, R - 1, R - 1) == WHITE


def test_cmyk(tmp_path):
    ds, _ = load_one(tmp_path, img_bytes(color=(0, 255, 255, 0), mode="CMYK", fmt="TIFF"), name="c.tif")
    assert pixel(ds, 0, 3, 3) == RED
    ds, _ = load_one(tmp_path / "j", img_bytes(color=(0, 255, 255, 0), mode="CMYK", fmt="JPEG"), name="c.jpg")
    r, g, b = pixel(ds, 0, 3, 3)
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("size", [(40, 20), (20, 40)])
def test_non_square_is_resized_and_centre_cropped(tmp_path, size):
    w, h = size
    im = Image.new("RGB", size, BLUE)
    # centre square (20x20) is green, the two outer 10px bands are blue
    im.paste(GREEN, (10, 0, 30, 20) if w > h else (0, 10, 20, 30))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    ds, _ = load_one(tmp_path, buf.getvalue())
    assert ds.images.shape == (1, 3, R, R)
    assert (ds.images[0] == torch.tensor(GREEN, dtype=torch.uint8)[:, None, None]).all()


def test_large_jpeg_downscaled_and_small_image_upscaled(tmp_path):
    root = tmp_path / "ds"
    write(root / "big.jpg", img_bytes(RED, size=(1600, 1200), fmt="JPEG"))
    write(root / "big.txt", "big")
    write(root / "tiny.png", img_bytes(BLUE, size=(3, 5)))
    write(root / "tiny.txt", "tiny")
    ds, rep = load_captioned_images(root, DataConfig(resolution=16, min_pairs=1))
    assert ds.images.shape == (2, 3, 16, 16)
    r, g, b = pixel(ds, ds.files.index("big.jpg"), 8, 8)
    assert r > 240 and g < 15 and b < 15
    assert pixel(ds, ds.files.index("tiny.png"), 8, 8) == BLUE
    assert any("1 image(s) smaller than 16x16 were upscaled" in w for w in rep.warnings)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (16, 16), RED)
    im.paste(BLUE, (0, 0, 16, 8))                        # top half blue as stored
    exif = Image.Exif()
    exif[0x0112] = 3                                      # rotate 180 for display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=95)
    ds, _ = load_one(tmp_path, buf.getvalue(), name="o.jpg")
    top, bottom = pixel(ds, 0, 0, 4), pixel(ds, 0, R - 1, 4)
    assert top[0] > 200 and top[2] < 60                  # red now on top
    assert bottom[2] > 200 and bottom[0] < 60


# ---------------------------------------------------------------- bad image files

@pytest.mark.parametrize("data, reason", [
    (img_bytes(size=(32, 32))[:60], "unreadable"),       # truncated PNG
    (b"just some text, not pixels\n", "not an image"),   # text named .png
    (b"", "not an image"),                               # 0 bytes
    (png_with_declared_size(100_000, 100_000), "too large"),
])
def test_bad_image_files_are_skipped(tmp_path, data, reason):
    root = txt_folder(tmp_path, n=1)
    write(root / "bad.png", data)
    write(root / "bad.txt", "caption")
    ds, rep = load_captioned_images(root, CFG)
    assert ds.files == ["img0.png"]
    assert reasons(rep) == {"bad.png": reason}


def test_pixel_limit_checked_from_header_and_global_restored(tmp_path):
    cfg = DataConfig(resolution=R, min_pairs=0)
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None          # our limit must not depend on Pillow's global
    try:
        ds, rep = load_one(tmp_path / "a", png_with_declared_size(100_000, 100_000), cfg=cfg)
        assert len(ds) == 0 and reasons(rep) == {"x.png": "too large"}
        assert "10000000000 pixels" in rep.skipped[0].detail
        _, rep = load_one(tmp_path / "b", img_bytes(size=(20, 20)),
                          cfg=DataConfig(resolution=R, min_pairs=0, max_image_pixels=399))
        assert reasons(rep) == {"x.png": "too large"} and "400 pixels" in rep.skipped[0].detail
        assert Image.MAX_IMAGE_PIXELS is None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    load_one(tmp_path / "c", img_bytes())
    assert Image.MAX_IMAGE_PIXELS == old


def test_file_over_byte_limit(tmp_path):
    root = txt_folder(tmp_path, n=1)
    write(root / "big.png", img_bytes(size=(64, 64)) + b"\0" * 5000)
    write(root / "big.txt", "big")
    ds, rep = load_captioned_images(root, DataConfig(resolution=R, min_pairs=1, max_image_bytes=4000))
    assert reasons(rep) == {"big.png": "too large"}
    zpath = tmp_path / "z.zip"
    make_zip(zpath, {"a.png": img_bytes(), "a.txt": "a", "big.png": (root / "big.png").read_bytes(),
                     "big.txt": "big"})
    ds, rep = load_captioned_images(zpath, DataConfig(resolution=R, min_pairs=1, max_image_bytes=4000))
    assert reasons(rep) == {"big.png": "too large"}


def test_folder_symlink_skipped(tmp_path):
    root = txt_folder(tmp_path, n=1)
    outside = tmp_path / "secret.png"
    write(outside, img_bytes())
    os.symlink(outside, root / "link.png")
    write(root / "link.txt", "link")
    os.symlink(tmp_path, root / "linkdir")
    ds, rep = load_captioned_images(root, CFG)
    assert ds.files == ["img0.png"]
    got = reasons(rep)
    assert got["link.png"] == got["linkdir"] == "symlink"


# ---------------------------------------------------------------- metadata problems

def _jsonl_folder(tmp_path, lines: str, n_images=4):
    root = tmp_path / "ds"
    for i in range(n_images):
        write(root / f"{i}.png", img_bytes())
    write(root / "metadata.jsonl", lines)
    return root


def test_missing_duplicate_and_unsafe_entries(tmp_path):
    root = _jsonl_folder(tmp_path, jsonl_lines([
        {"file_name": "0.png", "text": "zero"},
        {"file_name": "gone.png", "text": "absent"},
        {"file_name": "0.png", "text": "zero again"},
        {"file_name": "../../etc/passwd", "text": "evil"},
        {"file_name": "/etc/passwd", "text": "evil"},
        {"file_name": "1.PNG", "text": "case"},
        {"file_name": "2.png", "text": "two"},
    ]))
    ds, rep = load_captioned_images(root, CFG)
    assert ds.files == ["0.png", "2.png"] and ds.captions[0] == ["zero"]
    got = {str(s.file): s for s in rep.skipped}
    assert got["gone.png"].reason == "missing file" and "metadata.jsonl line 2" in got["gone.png"].detail
    assert got["metadata.jsonl line 3"].reason == "duplicate entry"
    assert got["metadata.jsonl line 4"].reason == got["metadata.jsonl line 5"].reason == "unsafe path"
    assert got["1.PNG"].reason == "missing file" and "did you mean 1.png" in got["1.PNG"].detail
    assert got["3.png"].reason == "no caption"


def test_bad_json_and_missing_field_name_the_line(tmp_path):
    lines = ('{"file_name": "0.png", "text": "ok"}\n'
             '{"file_name": "1.png" "text": "oops"}\n'
             '\n'
             '{"file_name": "2.png"}\n'
             '["not", "an", "object"]\n'
             '{"file_name": "3.png", "text": 5}\n')
    ds, rep = load_captioned_images(_jsonl_folder(tmp_path, lines), CFG)
    assert ds.files == ["0.png"]
    got = {s.file: s for s in rep.skipped}
    assert got["metadata.jsonl line 2"].reason == "bad JSON"
    assert str(got["metadata.jsonl line 2"]) == "metadata.jsonl line 2: bad JSON (Expecting ',' delimiter)"
    assert got["metadata.jsonl line 4"].reason == "missing field 'text'"
    assert got["metadata.jsonl line 5"].reason == "bad JSON"
    assert got["metadata.jsonl line 6"].reason == "bad field 'text'"
    assert "metadata.jsonl line 2: bad JSON" in rep.summary()


def test_empty_and_whitespace_captions(tmp_path):
    root = _jsonl_folder(tmp_path, jsonl_lines([
        {"file_name": "0.png", "text": "fine"},
        {"file_name": "1.png", "text": "   \t\n "},
        {"file_name": "2.png", "text": ["", "  "]},
        {"file_name": "3.png", "text": ""},
    ]))
    ds, rep = load_captioned_images(root, CFG)
    assert ds.files == ["0.png"]
    assert reasons(rep) == {"1.png": "empty caption", "2.png": "empty caption", "3.png": "empty caption"}
    root = txt_folder(tmp_path, n=1, name="t")
    write(root / "blank.png", img_bytes())
    write(root / "blank.txt", " \n\n\t \n")
    _, rep = load_captioned_images(root, CFG)
    assert reasons(rep) == {"blank.png": "empty caption"}


def test_long_caption_truncated_with_warning(tmp_path):
    root = txt_folder(tmp_path, n=1)
    write(root / "long.png", img_bytes())
    write(root / "long.txt", "word " * 2000)
    ds, rep = load_captioned_images(root, CFG)
    cap = ds.captions[ds.files.index("long.png")][0]
    assert len(cap) <= 300 and cap.startswith("word word")
    assert rep.skipped == []
    assert any("long.txt: caption truncated from 9999 to 300 characters" in w for w in rep.warnings)


def test_invalid_utf8_replaced_with_warning(tmp_path):
    root = txt_folder(tmp_path, n=1)
    write(root / "bad.png", img_bytes())
    write(root / "bad.txt", b"caf\xe9 au lait")
    ds, rep = load_captioned_images(root, CFG)
    assert ds.captions[ds.files.index("bad.png")] == ["caf\ufffd au lait"]
    assert any("bad.txt: invalid UTF-8" in w for w in rep.warnings)


def test_emoji_and_rtl_captions_kept(tmp_path):
    caps = ["🐱 a cat with a 🎩 hat", "قطة حمراء", "חתול אדום", "line\u2028sep"]
    root = _jsonl_folder(tmp_path, jsonl_lines(
        [{"file_name": f"{i}.png", "text": c} for i, c in enumerate(caps)]))
    ds, rep = load_captioned_images(root, CFG)
    assert [c[0] for c in ds.captions] == caps[:3] + ["line sep"]
    assert rep.skipped == [] and rep.warnings == []


# ---------------------------------------------------------------- errors, report, dataset

def test_nonexistent_path(tmp_path):
    with pytest.raises(DatasetError, match=r"nope: no such file or directory"):
        load_captioned_images(tmp_path / "nope")


def test_too_few_pairs_message(tmp_path):
    root = txt_folder(tmp_path, n=2)
    write(root / "broken.png", b"garbage")
    write(root / "broken.txt", "broken")
    with pytest.raises(DatasetError) as e:
        load_captioned_images(root, DataConfig(resolution=R))     # min_pairs=4
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert str(root) in msg and "only 2 usable" in msg and "at least 4" in msg
    assert "1 skipped" in msg and "broken.png: not an image" in msg


def test_report_summary_and_dict(tmp_path):
    root = txt_folder(tmp_path, n=4)
    for i in range(5):
        write(root / f"nocap{i}.png", img_bytes())
    ds, rep = load_captioned_images(root, CFG)
    text = rep.summary(max_items=2)
    assert "4 image-caption pairs, 4 captions (format: txt)" in text
    assert "Skipped 5 (no caption: 5)" in text and "... and 3 more" in text
    d = rep.to_dict()
    assert json.loads(json.dumps(d))["skipped"][0] == {"file": "nocap0.png", "reason": "no caption",
                                                       "detail": "expected nocap0.txt"}
    assert isinstance(rep.skipped[0], Skipped)


def test_fingerprint_stable_and_sensitive(tmp_path):
    root = txt_folder(tmp_path, n=4)
    a, _ = load_captioned_images(root, CFG)
    b, _ = load_captioned_images(root, CFG)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 64
    write(root / "img0.txt", "a different caption")
    c, _ = load_captioned_images(root, CFG)
    assert c.fingerprint() != a.fingerprint()
    write(root / "img1.png", img_bytes(BLUE))
    d, _ = load_captioned_images(root, CFG)
    assert d.fingerprint() != c.fingerprint()


def test_dataloader_batches(tmp_path):
    ds, _ = load_captioned_images(txt_folder(tmp_path, n=4), CFG)
    x, idx = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3, R, R) and x.min() >= -1 and x.max() <= 1
    assert idx.tolist() == [0, 1, 2, 3]


def test_config_validation():
    with pytest.raises(ValueError, match="resolution"):
        DataConfig(resolution=0)
    with pytest.raises(ValueError, match="background"):
        DataConfig(background=(0, 0, 300))
    assert DataConfig(background=[1, 2, 3]).background == (1, 2, 3)


def test_group_by_a_metadata_field(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        write(root / f"{i}.png", img_bytes())
    rows = [{"file_name": "0.png", "text": "thumbs up", "base": "1F44D"},
            {"file_name": "1.png", "text": "thumbs up: dark skin tone", "base": "1F44D"},
            {"file_name": "2.png", "text": "a slice of pizza", "base": "1F355"},
            {"file_name": "3.png", "text": "a rocket"}]
    write(root / "metadata.jsonl", jsonl_lines(rows))
    ds, rep = load_captioned_images(root, DataConfig(resolution=R, group_by="base"))
    assert ds.groups == ["1F44D", "1F44D", "1F355", "3.png"]  # no value: a group of its own
    assert rep.warnings == ["1 image(s) have no field 'base': each is a group of its own"]
    assert load_captioned_images(root, CFG)[0].groups is None
    with pytest.raises(DatasetError, match="no row of metadata.jsonl has the field 'vendor' to group"):
        load_captioned_images(root, DataConfig(resolution=R, group_by="vendor"))
    with pytest.raises(DatasetError, match="grouping \\(balancing\\) images by the field 'base' needs a metadata.jsonl or CSV"):
        load_captioned_images(txt_folder(tmp_path, name="txt"), DataConfig(resolution=R, group_by="base"))
