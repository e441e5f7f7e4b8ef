"""Generation benchmark: images/s and ms/image per batch size, text-encoding time, peak memory — one JSON line."""
from __future__ import annotations

import platform
import resource
import statistics
import time

import torch


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@torch.no_grad()
def bench_generate(model: str | None = None, device: str | None = None, threads: int | None = None,
                   batches: tuple[int, ...] = (1, 16, 64), repeats: int = 5) -> dict:
    """Measure the generator on the current device; uses the default model, or a random-init one if none exists."""
    from .device import describe, pick_device, set_threads
    from .models import Generator, count_flops
    from .pipeline import T2IGANPipeline
    from .weights import NoModelError, load_pipeline, resolve_model

    try:
        source = str(resolve_model(model))
        pipe = load_pipeline(model, device=device, threads=threads)
    except NoModelError:
        if model is not None:
            raise
        set_threads(threads)
        source = "random-init Generator() (no trained model found)"
        pipe = T2IGANPipeline(generator=Generator()).to(pick_device(device))
    gen = pipe.generator.eval()
    z_dim, t_dim = gen.config.z_dim, gen.config.text_dim
    dev = gen.device
    result = {"bench": "generate", "model": source, "device": describe(dev), "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "resolution": gen.config.resolution,
              "params_M": round(sum(p.numel() for p in gen.parameters()) / 1e6, 3),
              "gflop_per_image": round(count_flops(gen.cpu(), torch.randn(1, z_dim), torch.randn(1, t_dim)) / 1e9, 3)}
    gen.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for b in batches:
        z, e = torch.randn(b, z_dim, device=dev), torch.randn(b, t_dim, device=dev)
        seconds = _timed(lambda: (gen(z, e), sync()), repeats)
        result[f"batch{b}_ms_per_image"] = round(1000 * seconds / b, 3)
        result[f"batch{b}_images_per_s"] = round(b / seconds, 1)
    prompts = [f"a prompt number {i}" for i in range(repeats + 1)]
    encode_one = iter(prompts)
    result["text_encode_ms_per_prompt"] = round(1000 * _timed(lambda: pipe.text.encode(next(encode_one)), repeats), 2)
    result["end_to_end_ms_4_images"] = round(
        1000 * _timed(lambda: pipe("a red apple", num_images_per_prompt=4, seed=0), repeats), 2)
    result["peak_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result
