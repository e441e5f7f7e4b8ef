"""Training checkpoints as one safetensors file: tensors (models, optimiser moments, RNG) + JSON metadata.

No pickle anywhere. Writes go to a temp file that is fsynced and then renamed over the old checkpoint, so a kill at
any moment leaves either the previous checkpoint or the new one, both loadable.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import write_file

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
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, "s", tensors)
    write_file(path, lambda tmp: save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(skeleton)}))
    return path


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
