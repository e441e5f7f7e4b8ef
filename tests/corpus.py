"""The bad-input corpus, generated on the fly (nothing binary is committed).

Each case is a small captioned upload (four good pictures + one bad thing, or one bad zip) and the words the app's
answer must contain: the name of the offending file, line or field, and why it was refused or changed.
"""
from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from helpers import shape_image

ESCAPE = "t2igan-escaped.txt"   # a zip member that tries to land outside the app's folders


@dataclass
class Case:
    name: str
    files: list[Path]
    expect: list[str]                       # all must appear in the app's answer
    accepted: int | None = None             # pairs the loader should accept (None: the whole upload is refused)
    extra: dict = field(default_factory=dict)


def png_bytes(color="red", shape="circle", size=32) -> bytes:
    buf = io.BytesIO()
    shape_image(color, shape, size).save(buf, "PNG")
    return buf.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of width × height (all black), streamed so that it never exists in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp, row, parts = zlib.compressobj(9), b"\x00" * (width + 1), []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def bomb_header_png(width: int, height: int) -> bytes:
    """Only a PNG header that declares a huge image (a decompression bomb stops at the header check)."""
    good = png_bytes()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return good[:8] + struct.pack(">I", 13) + b"IHDR" + ihdr + crc + good[33:]


def image_bytes(mode: str, fmt: str, **save) -> bytes:
    im = shape_image("blue", "square").convert("RGB")
    if mode == "I;16":
        im = im.convert("L").point(lambda v: v * 256, "I").convert("I;16")
    elif mode == "P":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        save.setdefault("transparency", 0)
    else:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def animated_gif() -> bytes:
    frames = [shape_image(c, "circle").convert("RGB") for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    shape_image("green", "triangle").convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def good_set() -> dict[str, bytes]:
    return {f"good-{i}.png": png_bytes(c, s) for i, (c, s) in
            enumerate([("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "circle")])}


def metadata(entries: list) -> bytes:
    return ("\n".join(e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in entries) + "\n").encode()


def good_entries() -> list[dict]:
    return [{"file_name": n, "text": f"good picture {i}"} for i, n in enumerate(good_set())]


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def with_bad_image(folder: Path, name: str, data: bytes, caption="the bad one") -> list[Path]:
    files = {**good_set(), name: data, "metadata.jsonl": metadata(good_entries() + [{"file_name": name, "text": caption}])}
    return write_files(folder, files)


def with_metadata_lines(folder: Path, extra_lines: list, extra_files: dict | None = None) -> list[Path]:
    files = {**good_set(), **(extra_files or {}), "metadata.jsonl": metadata(good_entries() + extra_lines)}
    return write_files(folder, files)


def zip_of(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return [path]


def good_zip_members() -> list[tuple[str, bytes]]:
    return [*good_set().items(), ("metadata.jsonl", metadata(good_entries()))]


def build(base: Path) -> list[Case]:
    """Every case in its own folder under `base`."""
    png = png_bytes()
    cases: list[Case] = []

    class Folders:  # one numbered folder per case: case names contain "/" and ".."
        def __truediv__(self, name: str) -> Path:
            return base / f"case-{len(cases):02d}"

    root = Folders()

    def image_case(name, file, data, expect, accepted=4):
        """Refused files must be named in the report; accepted ones (converted) are counted instead."""
        cases.append(Case(name, with_bad_image(root / name, file, data), expect, accepted))

    # ---- image files
    image_case("truncated PNG", "cut.png", png[: len(png) // 2], ["cut.png: unreadable (image file is truncated)"])
    corrupt = bytearray(png)
    corrupt[60:90] = b"\xff" * 30
    image_case("corrupt PNG", "corrupt.png", bytes(corrupt), ["corrupt.png: unreadable"])
    jpg = jpeg_bytes()
    image_case("truncated JPEG", "cut.jpg", jpg[: len(jpg) // 3], ["cut.jpg: unreadable"])
    image_case("corrupt JPEG", "corrupt.jpg", jpg[:20] + b"\x00" * 200, ["corrupt.jpg: not an image"])
    image_case("text named .png", "note.png", b"hello, I am text\n" * 10, ["note.png: not an image"])
    image_case("0-byte file", "empty.png", b"", ["empty.png: not an image (empty file)"])
    image_case("decompression bomb (header 100k x 100k)", "bomb.png", bomb_header_png(100_000, 100_000), ["bomb.png: too large"])
    image_case("20,000 x 20,000 image", "huge.png", huge_png(20_000, 20_000), ["huge.png: too large"])
    image_case("CMYK JPEG (converted)", "cmyk.jpg", image_bytes("CMYK", "JPEG"), [], accepted=5)
    image_case("16-bit PNG (converted)", "deep.png", image_bytes("I;16", "PNG"), [], accepted=5)
    image_case("palette PNG with transparency (composited)", "pal.png", image_bytes("P", "PNG"), [], accepted=5)
    image_case("animated GIF (first frame)", "anim.gif", animated_gif(), [], accepted=5)

    # ---- captions
    def caption_case(name, caption, expect, accepted=4):
        cases.append(Case(name, with_bad_image(root / name, "pic.png", png, caption), expect, accepted))

    caption_case("empty caption", "", ["pic.png: empty caption (metadata.jsonl line 5)"])
    caption_case("whitespace caption", " \t  ", ["pic.png: empty caption (metadata.jsonl line 5)"])
    caption_case("10,000-character caption (cut)", "a very long caption " * 500, ["metadata.jsonl line 5: caption truncated"], accepted=5)
    caption_case("emoji caption (kept)", "🍕 a slice of pizza 🍕", [], accepted=5)
    caption_case("right-to-left caption (kept)", "تفاحة حمراء", [], accepted=5)
    bad_utf8 = {**good_set(), "pic.png": png, "pic.txt": b"a red \xff\xfe apple"}
    for n in good_set():
        bad_utf8[n.replace(".png", ".txt")] = b"a good picture"
    cases.append(Case("non-UTF-8 caption bytes (replaced)", write_files(root / "utf8", bad_utf8), ["pic.txt: invalid UTF-8"], 5))

    # ---- metadata.jsonl
    def meta_case(name, lines, expect, extra_files=None, accepted=4):
        cases.append(Case(name, with_metadata_lines(root / name, lines, extra_files), expect, accepted))

    meta_case("bad JSON line", ['{"file_name": "x.png", "text": '], ["metadata.jsonl line 5", "bad JSON"])
    meta_case("missing text field", [{"file_name": "pic.png"}], ["metadata.jsonl line 5", "text"], {"pic.png": png})
    meta_case("missing file_name field", [{"text": "a picture"}], ["metadata.jsonl line 5", "file_name"])
    meta_case("duplicate entry", [{"file_name": "good-0.png", "text": "again"}], ["good-0.png", "duplicate"])
    meta_case("listed file missing", [{"file_name": "ghost.png", "text": "nobody"}], ["ghost.png", "missing"])
    meta_case("../ in file_name", [{"file_name": "../../etc/passwd", "text": "escape"}], ["../../etc/passwd", "unsafe"])
    # the app shows no absolute path, not even one the upload names: the line and the file's last part are enough
    meta_case("absolute file_name", [{"file_name": "/etc/passwd", "text": "escape"}],
              ["metadata.jsonl line 5", "unsafe path", "passwd"])

    # ---- zips
    def zip_case(name, members, expect, accepted=4):
        cases.append(Case(name, zip_of(root / name / "upload.zip", members), expect, accepted))

    zip_case("zip with ../ member", [*good_zip_members(), ("../../" + ESCAPE, b"escaped")], [ESCAPE, "unsafe"])
    zip_case("zip with absolute member", [*good_zip_members(), ("/tmp/" + ESCAPE, b"escaped")], [ESCAPE, "unsafe"])
    link = zipfile.ZipInfo("link.png")
    link.external_attr = (0o120777 << 16)
    zip_case("zip with symlink member", [*good_zip_members(), (link, b"/etc/passwd")], ["link.png", "symlink"])
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("inner.png", png)
    zip_case("nested zip", [*good_zip_members(), ("inner.zip", inner.getvalue())], ["inner.zip", "nested"])
    many = [(f"f{i}.txt", b"") for i in range(50_001)]
    cases.append(Case("zip over the file-count limit", zip_of(root / "many" / "upload.zip", many),
                      ["50001", "50000"], None))
    cases.append(Case("zip bomb (100 MB of zeros, ratio ~1000:1)", zip_bomb(root / "bomb" / "upload.zip"),
                      ["upload.zip", "zeros.png has compression ratio"], None))
    corrupt_zip = root / "corrupt zip" / "upload.zip"
    corrupt_zip.parent.mkdir(parents=True)
    corrupt_zip.write_bytes(b"PK\x03\x04 this is not really a zip")
    cases.append(Case("corrupt zip", [corrupt_zip], ["upload.zip", "not a valid zip"], None))
    return cases


def zip_bomb(path: Path) -> list[Path]:
    """A zip whose one member inflates to 100 MB (~100 kB on disk), written without holding it in memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = b"\x00" * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.jsonl", metadata(good_entries()))
        for n, data in good_set().items():
            zf.writestr(n, data)
        with zf.open("zeros.png", "w", force_zip64=True) as f:
            for _ in range(100):
                f.write(block)
    return [path]
