"""Training checkpoints as one safetensors file: tensors (models, optimiser moments, RNG) + JSON metadata.

No pickle anywhere. Writes go to a temp file that is fsynced and then renamed over the old checkpoint, so a kill at
any moment leaves either the previous checkpoint or the new one, both loadable.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

META_KEY = "t2igan"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or from an incompatible run."""


def flatten(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """Split a nested state (dicts/lists of tensors and plain values) into flat tensors + a JSON skeleton."""
    if isinstance(obj, torch.Tensor):
        key = prefix
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k if isinstance(k, str) else {"__int__": k}, flatten(v, f"{prefix}.{k}", tensors)]
                             for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}")


def unflatten(skeleton, tensors: dict[str, torch.Tensor]):
    """Inverse of `flatten`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {(k["__int__"] if isinstance(k, dict) else k): unflatten(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            items = [unflatten(v, tensors) for v in skeleton["__list__"]]
            return tuple(items) if skeleton.get("tuple") else items
    return skeleton


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Atomically write `state` (any nesting of dicts/lists/tensors/plain values) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, "s", tensors)
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(skeleton)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by `save_checkpoint`; raise CheckpointError with the reason if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return unflatten(json.loads(meta[META_KEY]), tensors)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is damaged or not a t2igan checkpoint: {e}") from None
