"""Load image-caption pairs for training from a folder or a .zip, safely.

Supported layouts (auto-detected, first match wins) at the root, or inside a
single top-level subfolder (``myset/metadata.jsonl``):

1. Hugging Face imagefolder: ``metadata.jsonl`` (one JSON object per line with
   ``file_name`` and ``text``; ``text`` may be a list = several captions), or
   ``metadata.csv`` with columns ``file_name,text``.
2. ``captions.csv`` with columns ``file_name,text``.
3. A ``.txt`` beside each image with the same stem (``cat.png`` + ``cat.txt``),
   one caption per non-empty line.

Everything is validated up front and preloaded into one uint8 tensor; every
file that is left out is listed in a :class:`DatasetReport` with a short
reason. Uploads are untrusted: zips are read in memory only (never extracted),
unsafe names, symlinks and nested archives are skipped, and zip bombs, huge
files and decompression bombs are refused before any large allocation.

Design choices:

* Captions are decoded as UTF-8 (a BOM is allowed). Invalid UTF-8 is *not*
  fatal: bytes are replaced with U+FFFD and a warning names the file, so one
  badly-encoded file does not silently lose its image.
* Skip reasons are short fixed strings (``Skipped.reason``) so UIs and tests
  can match them; specifics go in ``Skipped.detail``.
* A file name listed twice in a metadata file keeps the first entry; later
  entries are skipped as "duplicate entry" (give several captions with a JSON
  list in metadata.jsonl, or several lines in a .txt).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import warnings
import zipfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DataConfig",
    "Skipped",
    "DatasetReport",
    "DatasetError",
    "CaptionedImages",
    "load_captioned_images",
]

METADATA_FILES = ("metadata.jsonl", "metadata.csv", "captions.csv")
ARCHIVE_EXTS = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz", ".tbz2", ".xz",
                ".txz", ".7z", ".rar", ".zst", ".lz", ".lzma", ".jar", ".whl")
# Files we never try to decode as images and never complain about.
TEXT_EXTS = (".txt", ".csv", ".json", ".jsonl", ".md", ".yaml", ".yml")
IGNORED_NAMES = {"Thumbs.db", "desktop.ini"}
# Members smaller than this cannot expand to anything dangerous, so the
# compression-ratio check (which would flag e.g. a long repetitive caption
# file) only applies above it.
RATIO_CHECK_MIN_BYTES = 64 * 1024
MAX_CAPTION_FILE_BYTES = 1 << 20    # a .txt caption file larger than this is "too large"
_DRIVE = re.compile(r"^[A-Za-z]:")
_EXIF_ORIENTATION = 0x0112
_ORIENT_OPS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# --------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------

@dataclass
class DataConfig:
    """Loading options and safety limits (the defaults suit small uploads)."""

    resolution: int = 64
    background: tuple[int, int, int] = (255, 255, 255)
    min_pairs: int = 4
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 64_000_000     # declared width*height
    max_caption_chars: int = 300
    max_files: int = 50_000                # zip entries (files, not dirs)
    max_total_bytes: int = 1 << 30         # zip, declared uncompressed
    max_ratio: float = 200.0               # zip, per member
    group_by: str | None = None            # metadata field naming each image's group (emoji: 'base', every
                                           # style and skin tone of one emoji): CaptionedImages.groups

    def __post_init__(self) -> None:
        if self.resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {self.resolution}")
        if len(self.background) != 3 or not all(0 <= int(c) <= 255 for c in self.background):
            raise ValueError(f"background must be an (r, g, b) tuple of 0..255, got {self.background!r}")
        self.background = tuple(int(c) for c in self.background)


@dataclass
class Skipped:
    """A file (or metadata line) that was left out, and why."""

    file: str      # relative path inside the folder/zip (or 'metadata.jsonl line 7')
    reason: str    # short fixed reason, e.g. 'unreadable', 'no caption'
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class DatasetReport:
    """What was loaded and what was left out, for the UI/CLI and for logs."""

    source: str
    format: str                    # 'metadata.jsonl' | 'metadata.csv' | 'captions.csv' | 'txt'
    num_pairs: int
    num_captions: int
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self, max_items: int = 20) -> str:
        """Human-readable multi-line text: counts, skipped files, warnings."""
        lines = [f"{self.source}: {self.num_pairs} image-caption pairs, "
                 f"{self.num_captions} captions (format: {self.format})"]
        if self.skipped:
            counts = Counter(s.reason for s in self.skipped)
            by_reason = ", ".join(f"{r}: {n}" for r, n in counts.most_common())
            lines.append(f"Skipped {len(self.skipped)} ({by_reason}):")
            lines += _listing([str(s) for s in self.skipped], max_items)
        if self.warnings:
            lines.append(f"Warnings ({len(self.warnings)}):")
            lines += _listing(self.warnings, max_items)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return asdict(self)


class DatasetError(ValueError):
    """The dataset cannot be used; the message names the path and the problem."""


class CaptionedImages(torch.utils.data.Dataset):
    """Images preloaded as one uint8 tensor [N,3,R,R]; captions[i] is a non-empty list[str]; files[i] the source name;
    groups[i] the image's DataConfig.group_by value (None when not asked for)."""

    def __init__(self, images: torch.Tensor, captions: list[list[str]], files: list[str],
                 groups: list[str] | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N,3,R,R], got {images.dtype} {tuple(images.shape)}")
        if not (len(images) == len(captions) == len(files)):
            raise ValueError("images, captions and files must have the same length")
        if any(not caps for caps in captions):
            raise ValueError("every image needs at least one caption")
        if groups is not None and len(groups) != len(files):
            raise ValueError("groups must have one entry per image")
        self.images = images
        self.captions = captions
        self.files = files
        self.groups = groups
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """(float image in [-1, 1] of shape [3,R,R], index i)."""
        return self.images[i].float().div_(127.5).sub_(1.0), i

    def unique_captions(self) -> list[str]:
        """Sorted, deduplicated captions (e.g. to precompute text embeddings)."""
        return sorted({c for caps in self.captions for c in caps})

    def fingerprint(self) -> str:
        """sha256 hex of image bytes + captions, to tie checkpoints to their data."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(repr(tuple(self.images.shape)).encode())
            h.update(self.images.contiguous().numpy().tobytes())
            h.update(json.dumps(self.captions, ensure_ascii=False).encode("utf-8"))
            self._fingerprint = h.hexdigest()
        return self._fingerprint


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------

def load_captioned_images(path: str | os.PathLike, config: DataConfig | None = None
                          ) -> tuple[CaptionedImages, DatasetReport]:
    """Load a folder or .zip of captioned images; raises DatasetError with a clear message."""
    cfg = config or DataConfig()
    label = str(path)
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{label}: no such file or directory")
    log = _Log()
    with _open_source(p, label, cfg, log) as members:
        base = _find_base(list(members))
        fmt, records, used = _read_captions(members, base, label, cfg, log)
        _report_unused(members, used, fmt, log)
        images, captions, files, groups = _load_pairs(records, members, cfg, log)
    if len(files) < cfg.min_pairs:
        first = "; ".join(str(s) for s in log.skipped[:5])
        raise DatasetError(
            f"{label}: only {len(files)} usable image-caption pair(s), need at least "
            f"{cfg.min_pairs}; {len(log.skipped)} skipped" + (f", e.g. {first}" if first else ""))
    if cfg.group_by and fmt == "txt":
        raise DatasetError(f"{label}: grouping (balancing) images by the field {cfg.group_by!r} needs a metadata.jsonl "
                           f"or CSV with that field; this dataset has .txt captions")
    if cfg.group_by and not any(rec.group is not None for rec in records):
        raise DatasetError(f"{label}: no row of {fmt} has the field {cfg.group_by!r} to group (balance) images by")
    dataset = CaptionedImages(images, captions, files, groups if cfg.group_by else None)
    report = DatasetReport(source=label, format=fmt, num_pairs=len(files),
                           num_captions=sum(len(c) for c in captions),
                           skipped=log.skipped, warnings=log.warnings)
    return dataset, report


# --------------------------------------------------------------------------
# Sources: a folder or a zip, as {relative posix name: _Member}
# --------------------------------------------------------------------------

@dataclass
class _Member:
    """A regular file inside the source, readable without touching disk elsewhere."""

    name: str
    size: int                        # declared size in bytes (not trusted for zips)
    open: Callable[[], BinaryIO]


class _Skip(Exception):
    """Internal: this file is skipped with a reason (and optional detail)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class _Log:
    """Collects skipped files and warnings while loading."""

    def __init__(self) -> None:
        self.skipped: list[Skipped] = []
        self.warnings: list[str] = []
        self.rejected: set[str] = set()     # names already reported at scan time

    def skip(self, file: str, reason: str, detail: str = "") -> None:
        self.skipped.append(Skipped(file, reason, detail))

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@contextmanager
def _open_source(p: Path, label: str, cfg: DataConfig, log: _Log) -> Iterator[dict[str, _Member]]:
    """Yield the members of a folder or zip (the zip stays open meanwhile)."""
    if p.is_dir():
        yield _scan_folder(p, label, cfg, log)
        return
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise DatasetError(f"{label}: not a valid zip file") from None
    with zf:
        yield _scan_zip(zf, label, cfg, log)


def _normalize_name(raw: str) -> tuple[str | None, str | None]:
    """Clean a relative path: (name, None), (None, 'unsafe path'), or (None, None) to ignore silently."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        return None, "unsafe path"
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None, "unsafe path"
    if (not parts or parts[0] == "__MACOSX" or parts[-1] in IGNORED_NAMES
            or any(part.startswith(".") for part in parts)):
        return None, None
    return "/".join(parts), None


def _is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_EXTS)


def _add_member(members: dict[str, _Member], member: _Member, log: _Log) -> None:
    if _is_archive(member.name):
        log.skip(member.name, "nested archive")
        log.rejected.add(member.name)
    elif member.name in members:
        log.skip(member.name, "duplicate entry", "the name appears twice in the archive")
    else:
        members[member.name] = member


def _scan_folder(root: Path, label: str, cfg: DataConfig, log: _Log) -> dict[str, _Member]:
    """List regular files under root without following symlinks."""
    members: dict[str, _Member] = {}
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        kept = []
        for d in sorted(dirnames):
            name, _ = _normalize_name(posixpath.join(rel_dir, d))
            if name is None:
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                log.skip(name, "symlink")
                log.rejected.add(name)
            else:
                kept.append(d)
        dirnames[:] = kept
        for f in sorted(filenames):
            name, _ = _normalize_name(posixpath.join(rel_dir, f))
            if name is None:
                continue
            full = os.path.join(dirpath, f)
            count += 1
            if count > cfg.max_files:
                raise DatasetError(f"{label}: too many files (more than max_files={cfg.max_files})")
            try:
                st = os.lstat(full)
            except OSError as e:
                log.skip(name, "unreadable", _short(e))
                continue
            if stat.S_ISLNK(st.st_mode):
                log.skip(name, "symlink")
                log.rejected.add(name)
            elif not stat.S_ISREG(st.st_mode):
                log.skip(name, "unreadable", "not a regular file")
                log.rejected.add(name)
            else:
                _add_member(members, _Member(name, st.st_size, partial(open, full, "rb")), log)
    return members


def _scan_zip(zf: zipfile.ZipFile, label: str, cfg: DataConfig, log: _Log) -> dict[str, _Member]:
    """Check a zip's central directory for bombs, then list its safe members."""
    entries = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        name, problem = _normalize_name(info.filename)
        if name is not None or problem is not None:
            entries.append((info, name, problem))
    _check_zip_limits([info for info, _, _ in entries], label, cfg)
    members: dict[str, _Member] = {}
    for info, name, problem in entries:
        if problem is not None:
            log.skip(info.filename, problem)
        elif stat.S_ISLNK(info.external_attr >> 16):
            log.skip(name, "symlink")
            log.rejected.add(name)
        elif info.flag_bits & 0x1:
            log.skip(name, "unreadable", "encrypted")
            log.rejected.add(name)
        else:
            _add_member(members, _Member(name, info.file_size, partial(zf.open, info)), log)
    return members


def _check_zip_limits(infos: list[zipfile.ZipInfo], label: str, cfg: DataConfig) -> None:
    """Refuse zips with too many files, too many declared bytes, or bomb-like ratios."""
    if len(infos) > cfg.max_files:
        raise DatasetError(f"{label}: too many files in zip ({len(infos)} > max_files={cfg.max_files})")
    total = sum(info.file_size for info in infos)
    if total > cfg.max_total_bytes:
        raise DatasetError(f"{label}: zip expands to {_fmt_bytes(total)}, more than "
                           f"max_total_bytes={_fmt_bytes(cfg.max_total_bytes)}")
    for info in infos:
        if info.file_size < RATIO_CHECK_MIN_BYTES:
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > cfg.max_ratio:
            raise DatasetError(f"{label}: {info.filename} has compression ratio {ratio:.0f}:1 "
                               f"(max_ratio={cfg.max_ratio:g}); refusing a possible zip bomb")


def _find_base(names: list[str]) -> str:
    """'' or 'dir/' when everything sits in one top-level folder without root metadata."""
    if not names or any(n in METADATA_FILES for n in names):
        return ""
    if all("/" in n for n in names):
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) == 1:
            return tops.pop() + "/"
    return ""


def _read_member(member: _Member, limit: int) -> bytes:
    """Read at most limit bytes, never trusting the declared size."""
    if member.size > limit:
        raise _Skip("too large", f"{_fmt_bytes(member.size)} > {_fmt_bytes(limit)}")
    try:
        with member.open() as f:
            data = f.read(limit + 1)
    except Exception as e:  # zipfile/zlib/OS raise many types for corrupt members
        raise _Skip("unreadable", _short(e)) from None
    if len(data) > limit:
        raise _Skip("too large", f"more than {_fmt_bytes(limit)}")
    return data


def _decode_text(data: bytes, name: str, log: _Log) -> str:
    """UTF-8 (BOM allowed); invalid bytes become U+FFFD with a warning."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warn(f"{name}: invalid UTF-8, bad bytes replaced with U+FFFD")
        return data.decode("utf-8-sig", errors="replace")


# --------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------

@dataclass
class _Record:
    """An image name (full, inside the source) with its raw captions."""

    name: str
    captions: list[str]
    where: str          # where the captions came from, for messages
    group: str | None = None


def _ext(name: str) -> str:
    return posixpath.splitext(name)[1].lower()


@lru_cache(maxsize=1)
def _image_exts() -> frozenset[str]:
    Image.init()
    return frozenset(Image.registered_extensions())


def _is_image_name(name: str) -> bool:
    return _ext(name) in _image_exts()


def _read_captions(members: dict[str, _Member], base: str, label: str, cfg: DataConfig,
                   log: _Log) -> tuple[str, list[_Record], set[str]]:
    """Detect the format and return (format, records, names used as captions or images)."""
    found = [m for m in METADATA_FILES if base + m in members]
    if found:
        fmt = found[0]
        for other in found[1:]:
            log.warn(f"{base + other}: ignored, using {base + fmt}")
        meta = members[base + fmt]
        try:
            text = _decode_text(_read_member(meta, cfg.max_image_bytes), meta.name, log)
        except _Skip as s:
            raise DatasetError(f"{label}: {meta.name}: {s.reason}"
                               + (f" ({s.detail})" if s.detail else "")) from None
        rows = _parse_jsonl(text, meta.name, log) if fmt.endswith(".jsonl") \
            else _parse_csv(text, meta.name, label)
        records = _resolve(rows, members, base, log, cfg.group_by)
        return fmt, records, {meta.name, *(r.name for r in records)}
    records, used = _txt_records(members, log)
    if not used:
        n_img = sum(_is_image_name(n) for n in members)
        raise DatasetError(
            f"{label}: no captions found ({len(members)} files, {n_img} images); expected "
            f"{', '.join(METADATA_FILES)} (columns file_name,text) at the top level, "
            f"or a .txt caption file beside each image (cat.png + cat.txt)")
    return "txt", records, used


def _parse_jsonl(text: str, meta_name: str, log: _Log) -> list[tuple[dict, str]]:
    """Parse metadata.jsonl into (object, 'metadata.jsonl line N'); bad lines are skipped."""
    rows = []
    # split on '\n' only: str.splitlines() would also split inside JSON strings on U+2028.
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        where = f"{meta_name} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            log.skip(where, "bad JSON", e.msg)
            continue
        if not isinstance(obj, dict):
            log.skip(where, "bad JSON", "expected an object like {\"file_name\": ..., \"text\": ...}")
            continue
        rows.append((obj, where))
    return rows


def _parse_csv(text: str, meta_name: str, label: str) -> list[tuple[dict, str]]:
    """Parse a file_name,text CSV into (row, 'captions.csv line N')."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("file_name", "text") if c not in header]
        if missing:
            raise DatasetError(f"{label}: {meta_name}: missing column {', '.join(repr(c) for c in missing)} "
                               f"in the header (found: {', '.join(header) or 'nothing'})")
        reader.fieldnames = header
        rows = []
        for row in reader:
            rows.append((row, f"{meta_name} line {reader.line_num}"))
        return rows
    except csv.Error as e:
        raise DatasetError(f"{label}: {meta_name} line {reader.line_num}: bad CSV ({e})") from None


def _row_to_record(row: dict, where: str, base: str, log: _Log, group_by: str | None = None) -> _Record | None:
    """Validate one metadata row's fields; returns None (and logs) when unusable."""
    for key in ("file_name", "text"):
        if row.get(key) is None:
            if key in row:  # CSV: a row shorter than the header; JSON: null
                log.skip(where, f"no value for field '{key}'",
                         "the row has fewer values than the header" if ".csv" in where else "it is null")
                return None
            keys = ", ".join(str(k) for k in row if k is not None)
            log.skip(where, f"missing field '{key}'", f"found: {keys or 'nothing'}")
            return None
    file_name, text = row["file_name"], row["text"]
    if not isinstance(file_name, str) or not file_name.strip():
        log.skip(where, "missing field 'file_name'", "expected a non-empty string")
        return None
    captions = [text] if isinstance(text, str) else text
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        log.skip(where, "bad field 'text'", "expected a string or a list of strings")
        return None
    name, problem = _normalize_name(file_name.strip())
    if problem:
        log.skip(where, problem, file_name)
        return None
    if name is None:
        log.skip(file_name, "missing file", f"{where}; hidden files and __MACOSX are ignored")
        return None
    group = row.get(group_by) if group_by else None
    group = None if group is None or group == "" else str(group)
    return _Record(base + name, captions, where, group)


def _resolve(rows: list[tuple[dict, str]], members: dict[str, _Member], base: str,
             log: _Log, group_by: str | None = None) -> list[_Record]:
    """Turn metadata rows into records for files that exist, once each."""
    lower = {n.lower(): n for n in members}
    first_seen: dict[str, str] = {}
    records = []
    for row, where in rows:
        rec = _row_to_record(row, where, base, log, group_by)
        if rec is None:
            continue
        if rec.name in first_seen:
            log.skip(where, "duplicate entry", f"{rec.name} already listed at {first_seen[rec.name]}")
            continue
        first_seen[rec.name] = where
        if rec.name in log.rejected:
            continue                      # already reported (symlink, nested archive...)
        if rec.name not in members:
            hint = f"; did you mean {lower[rec.name.lower()]}?" if rec.name.lower() in lower else ""
            log.skip(rec.name, "missing file", f"listed in {where}{hint}")
            continue
        records.append(rec)
    return records


def _txt_records(members: dict[str, _Member], log: _Log) -> tuple[list[_Record], set[str]]:
    """Pair each image with the .txt of the same stem; one caption per non-empty line."""
    images = [n for n in members if _is_image_name(n)]
    if not any(posixpath.splitext(n)[0] + ".txt" in members for n in images):
        return [], set()
    records, used = [], set()
    for img in images:
        txt = posixpath.splitext(img)[0] + ".txt"
        used.add(img)
        if txt not in members:
            log.skip(img, "no caption", f"expected {txt}")
            continue
        used.add(txt)
        try:
            text = _decode_text(_read_member(members[txt], MAX_CAPTION_FILE_BYTES), txt, log)
        except _Skip as s:
            log.skip(txt, s.reason, s.detail)
            continue
        records.append(_Record(img, text.split("\n"), txt))
    return records, used


def _report_unused(members: dict[str, _Member], used: set[str], fmt: str, log: _Log) -> None:
    """Report files that ended up in no pair, so nothing disappears silently."""
    for name in members:
        if name in used:
            continue
        if _is_image_name(name):
            where = "no matching .txt" if fmt == "txt" else f"not listed in {fmt}"
            log.skip(name, "no caption", where)
        elif _ext(name) == ".txt" and fmt == "txt":
            log.skip(name, "no image", "no image with the same name")
        elif _ext(name) not in TEXT_EXTS:
            log.skip(name, "not an image", "unknown file type")


def _clean_captions(raw: list[str], where: str, cfg: DataConfig, log: _Log) -> list[str]:
    """Strip and collapse whitespace, drop empties and duplicates, truncate long ones."""
    out: list[str] = []
    for caption in raw:
        caption = " ".join(caption.split())
        if len(caption) > cfg.max_caption_chars:
            log.warn(f"{where}: caption truncated from {len(caption)} to {cfg.max_caption_chars} characters")
            caption = caption[:cfg.max_caption_chars].rstrip()
        if caption and caption not in out:
            out.append(caption)
    return out


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------

def _load_pairs(records: list[_Record], members: dict[str, _Member], cfg: DataConfig,
                log: _Log) -> tuple[torch.Tensor, list[list[str]], list[str], list[str]]:
    """Clean captions and decode images; returns (uint8 [N,3,R,R], captions, files, groups). An image without a
    group value is a group of its own."""
    arrays, captions, files, groups = [], [], [], []
    upscaled = ungrouped = 0
    with _pixel_limit(cfg.max_image_pixels):
        for rec in records:
            caps = _clean_captions(rec.captions, rec.where, cfg, log)
            if not caps:
                log.skip(rec.name, "empty caption", rec.where)
                continue
            try:
                data = _read_member(members[rec.name], cfg.max_image_bytes)
                arr, small = _decode_image(data, cfg)
            except _Skip as s:
                log.skip(rec.name, s.reason, s.detail)
                continue
            upscaled += small
            arrays.append(arr)
            captions.append(caps)
            files.append(rec.name)
            groups.append(rec.group if rec.group is not None else rec.name)
            ungrouped += rec.group is None
    if cfg.group_by and 0 < ungrouped < len(files):
        log.warn(f"{ungrouped} image(s) have no field {cfg.group_by!r}: each is a group of its own")
    if upscaled:
        r = cfg.resolution
        log.warn(f"{upscaled} image(s) smaller than {r}x{r} were upscaled")
    r = cfg.resolution
    images = torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(0, 3, r, r, dtype=torch.uint8)
    return images, captions, files, groups


@contextmanager
def _pixel_limit(limit: int) -> Iterator[None]:
    """Temporarily lower Image.MAX_IMAGE_PIXELS to our limit (keeping a lower global one).

    Pillow then refuses oversized headers inside Image.open. This touches a
    module global, so concurrent loads in threads would share it.
    """
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit if old is None else min(old, limit)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _decode_image(data: bytes, cfg: DataConfig) -> tuple[np.ndarray, bool]:
    """Decode bytes to uint8 [3,R,R]; returns (array, was_upscaled). Raises _Skip."""
    if not data:
        raise _Skip("not an image", "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:      # reads the header only
                w, h = im.size
                if w * h > cfg.max_image_pixels:
                    raise _Skip("too large", f"{w}x{h} pixels")
                if w < 1 or h < 1:
                    raise _Skip("not an image", f"{w}x{h} pixels")
                im.draft(None, (cfg.resolution, cfg.resolution))   # JPEG: decode at reduced scale
                im.load()                      # animated images: the frame after open is the first
                orientation = _orientation(im)
                small = min(im.size) < cfg.resolution
                out = _square(_flatten(im, cfg.background), cfg.resolution)
    except _Skip:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _Skip("too large", _short(e)) from None
    except UnidentifiedImageError:
        raise _Skip("not an image") from None
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, struct.error...) on bad data
        raise _Skip("unreadable", _short(e)) from None
    if orientation in _ORIENT_OPS:
        out = out.transpose(_ORIENT_OPS[orientation])
    return np.asarray(out, dtype=np.uint8).transpose(2, 0, 1).copy(), small


def _orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1 = upright); applied after the centre crop, which commutes with it."""
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        return 1


def _flatten(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any mode -> RGB: high bit depth scaled to 8 bits, transparency composited on background."""
    if im.mode.startswith("I") or im.mode == "F":
        im = _to_8bit_gray(im)
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")      # P/LA/tRNS -> RGBA first so transparency is respected
        out = Image.new("RGB", rgba.size, background)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit int / float grayscale -> 8-bit 'L'."""
    arr = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16"):
        arr = arr / 257.0
    elif im.mode == "F":
        arr = np.nan_to_num(arr)
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
    elif arr.size and arr.max() > 255:
        arr = arr / 257.0              # mode 'I' from a 16-bit file
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))


def _square(im: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to size x size (LANCZOS; big images reduced first)."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (side, side):
        # crop first: resize(box=...) would blend in pixels from outside the box
        im = im.crop((left, top, left + side, top + side))
    return im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def _short(e: BaseException, limit: int = 120) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def _listing(items: list[str], max_items: int) -> list[str]:
    lines = [f"  - {item}" for item in items[:max_items]]
    if len(items) > max_items:
        lines.append(f"  ... and {len(items) - max_items} more")
    return lines
