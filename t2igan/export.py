"""Export the generator to ONNX for fast CPU serving, checked against torch with onnxruntime."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .atomic import write_file


class ExportError(RuntimeError):
    """The export could not be made or does not match torch."""


def export_onnx(pipe, path: str | os.PathLike, check: bool = True, atol: float = 1e-4) -> dict:
    """Write `generator(z, sentence) → image in [-1, 1]` as ONNX with a dynamic batch; compare with onnxruntime.

    The text encoder stays in transformers: a server embeds the prompt once and feeds the ONNX generator.
    """
    try:
        import onnxruntime as ort  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the extras: pip install 'onnx' 'onnxruntime' 'onnxscript' "
                          "(or pip install t2igan[onnx])") from None
    gen = pipe.generator.float().eval().cpu().to(memory_format=torch.contiguous_format)
    cfg = gen.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    z = torch.randn(2, cfg.z_dim)
    e = torch.nn.functional.normalize(torch.randn(2, cfg.text_dim), dim=1)
    batch = torch.export.Dim("batch", min=1, max=1024)

    def write(tmp: Path) -> None:
        with torch.no_grad():
            torch.onnx.export(gen, (z, e), str(tmp), input_names=["noise", "sentence"], output_names=["image"],
                              dynamic_shapes={"z": {0: batch}, "e": {0: batch}}, dynamo=True, external_data=False)

    write_file(path, write)
    result = {"path": str(path), "bytes": path.stat().st_size}
    if check:
        result["max_abs_diff"] = check_onnx(gen, path)
        if result["max_abs_diff"] > atol:
            raise ExportError(f"ONNX output differs from torch by {result['max_abs_diff']:.2e} (> {atol})")
    return result


def check_onnx(gen, path: str | os.PathLike, batch: int = 3, seed: int = 0) -> float:
    """Largest absolute difference between torch and onnxruntime images for random inputs."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, gen.config.z_dim, generator=g)
    e = torch.nn.functional.normalize(torch.randn(batch, gen.config.text_dim, generator=g), dim=1)
    with torch.no_grad():
        ref = gen(z, e).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(["image"], {"noise": z.numpy(), "sentence": e.numpy()})[0]
    return float(np.abs(out - ref).max())
