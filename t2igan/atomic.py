"""Writing files and folders atomically: a reader (or a kill -9 at any moment) sees the old version or the new one.

Files: written to `.NAME.tmp-PID` beside the target, fsynced, renamed over it. Folders: built in a temp folder
beside the target, then swapped in with two renames (the old one goes to `.NAME.old-PID` first); a kill between
the two renames is undone by `recover_interrupted_save`. Leftovers of writers that no longer run are removed.
Checkpoints, model folders, datasets, the evaluator, ONNX files and caches all write through here.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .model_lock import MODEL_LOCK


def write_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(temp_path)`, then put the file in place of `path` (fsynced, so a crash keeps one whole version)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def new_folder(target: str | os.PathLike) -> Iterator[Path]:
    """`with new_folder(target) as tmp:` fill `tmp`; on success it replaces `target` (an old version is removed), on
    an exception `target` stays as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_save(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; these are ordinary folders
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    with MODEL_LOCK:  # a load in this process sees the old folder or the new one, never the gap between
        if target.exists() or target.is_symlink():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() and not old.is_symlink() else old.unlink()


def recover_interrupted_save(target: str | os.PathLike) -> bool:
    """Undo what a killed folder swap left: put the previous folder back if the swap was cut between its two
    renames, and delete temp folders of writers that no longer run. Returns True if a folder was restored."""
    target = Path(target)
    restored = False
    with MODEL_LOCK:  # this process's own swaps hold the lock: none is half-done here
        if not target.exists():
            olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
            pid = olds[-1].name.rsplit(".old-", 1)[1] if olds else ""
            # another live process may be between its two renames right now: its swap completes by itself
            finished = pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid)))
            if finished and any(olds[-1].iterdir()):
                os.replace(olds[-1], target)
                restored = True
        remove_stale_temps(target)
    return restored


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete `.NAME.tmp-PID…` / `.NAME.old-PID…` siblings left by a writer that was killed (its PID is gone).

    A kill -9 during a write leaves such a file or folder behind; without this a run killed often would fill the disk.
    """
    path = Path(path)
    removed = []
    for kind in ("tmp", "old"):
        for p in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = p.name.rsplit(f".{kind}-", 1)[1].split("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
