"""Generation benchmark: images/s and ms/image per batch size, text-encoding time, peak memory — one JSON line."""
from __future__ import annotations

import random
import resource
import statistics
import time

import torch

from .device import cpu_name, describe, fast_bf16, keep_freed_memory, pick_device, resolve_precision, set_threads
from .drawing import Drawing
from .models import Generator, count_flops
from .pipeline import T2IGANPipeline
from .training import TrainConfig, train
from .weights import NoModelError, load_pipeline, resolve_model


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
                   batches: tuple[int, ...] = (1, 16, 64), repeats: int = 5, precision: str = "auto") -> dict:
    """Measure the generator as the pipeline draws (`pipe.render`, in `precision`) on the current device; uses the
    default model, or a random-init one if none exists."""
    try:
        source = str(resolve_model(model))
        pipe = load_pipeline(model, device=device, threads=threads, precision=precision)
    except NoModelError:
        if model is not None:
            raise
        set_threads(threads)
        source = "random-init Generator() (no trained model found)"
        pipe = T2IGANPipeline(generator=Generator()).to(pick_device(device))
        pipe.precision = precision
    gen = pipe.generator.eval()
    z_dim, t_dim = gen.config.z_dim, gen.config.text_dim
    dev = gen.device
    result = {"bench": "generate", "model": source, "device": describe(dev), "torch": torch.__version__,
              "cpu": cpu_name(), "precision": resolve_precision(precision, dev), "resolution": gen.config.resolution,
              "params_M": round(sum(p.numel() for p in gen.parameters()) / 1e6, 3),
              "gflop_per_image": round(count_flops(gen.cpu(), torch.randn(1, z_dim), torch.randn(1, t_dim)) / 1e9, 3)}
    if gen.config.get("upsample", "nearest") == "nearest":  # as a CPU draws it: drawing.py
        conditions = gen.conditions(torch.randn(1, t_dim))
        result["gflop_per_image_as_drawn"] = round(count_flops(Drawing.of(gen).synthesize, torch.randn(1, z_dim),
                                                               conditions) / 1e9, 3)
    gen.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for b in batches:
        latent = pipe.latent(["a red apple"], num_images_per_prompt=b, seed=0)
        seconds = _timed(lambda: (pipe.render(latent), sync()), repeats)
        result[f"batch{b}_ms_per_image"] = round(1000 * seconds / b, 3)
        result[f"batch{b}_images_per_s"] = round(b / seconds, 1)
    prompts = [f"a prompt number {i}" for i in range(repeats + 1)]
    encode_one = iter(prompts)
    result["text_encode_ms_per_prompt"] = round(1000 * _timed(lambda: pipe.text.encode(next(encode_one)), repeats), 2)
    result["end_to_end_ms_4_images"] = round(
        1000 * _timed(lambda: pipe("a red apple", num_images_per_prompt=4, seed=0), repeats), 2)
    result["peak_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


@torch.no_grad()
def bench_vs_peer(model: str | None = None, threads: int | None = None, batch: int = 16, rounds: int = 30) -> dict:
    """Our generator as the pipeline draws (`render`, default precision) against DF-GAN's 64-px generator (peer.py),
    at `batch`, every variant timed once per round, in a shuffled order (interleaved medians: the machine's drift hits
    all of them alike). The peer runs fp32 and bf16 autocast, each in NCHW and channels-last; its best layout counts.
    Both run on the CPU. Where the CPU has no native bf16 (device.fast_bf16), bf16 is emulated many times slower
    than fp32 and nobody would draw in it: the bf16 variants are left out and their ratio is None."""
    import copy

    from .peer import DFGANGenerator

    keep_freed_memory()  # the peer at its best however this is called: glibc's default re-faults its activations
    pipe = load_pipeline(model, device="cpu", threads=threads)  # layout and precision as users get them
    latent = pipe.latent(["a red apple"], num_images_per_prompt=batch, seed=0)
    nchw = DFGANGenerator().eval()
    peers = {torch.contiguous_format: nchw,
             torch.channels_last: copy.deepcopy(nchw).to(memory_format=torch.channels_last)}
    z, s = torch.randn(batch, nchw.z_dim), torch.randn(batch, nchw.text_dim)

    def ours(precision: str):
        def run():
            pipe.precision = precision
            pipe.render(latent)
        return run

    def theirs(bf16: bool, layout: torch.memory_format):
        def run():  # one copy per layout, converted once: a layout change is not part of a forward pass
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                peers[layout](z, s).float()
        return run

    def ours_autocast():  # the generator as trained, under bf16 autocast: what drawing.py rearranges
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pipe.generator.synthesize(latent.noise, latent.conditions).float()

    native_bf16 = fast_bf16("cpu")
    variants = {"ours": ours("auto"), "ours_fp32": ours("fp32"),
                "peer_fp32_nchw": theirs(False, torch.contiguous_format),
                "peer_fp32_channels_last": theirs(False, torch.channels_last)}
    if native_bf16:
        variants.update({"ours_bf16": ours("bf16"), "ours_bf16_autocast": ours_autocast,
                         "peer_bf16_nchw": theirs(True, torch.contiguous_format),
                         "peer_bf16_channels_last": theirs(True, torch.channels_last)})
    times: dict[str, list[float]] = {name: [] for name in variants}
    order, shuffle = list(variants), random.Random(0).shuffle
    for r in range(rounds + 2):  # the first two rounds warm up
        shuffle(order)  # in a fixed order each variant ran after the same one and inherited its memory state
        for name in order:
            t0 = time.perf_counter()
            variants[name]()
            if r >= 2:
                times[name].append(time.perf_counter() - t0)
    ms = {name: 1000 * statistics.median(t) / batch for name, t in times.items()}
    peer_fp32 = min(ms["peer_fp32_nchw"], ms["peer_fp32_channels_last"])
    peer_bf16 = min(ms["peer_bf16_nchw"], ms["peer_bf16_channels_last"]) if native_bf16 else None
    return {"bench": "vs_peer", "model": str(resolve_model(model)), "cpu": cpu_name(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "batch": batch, "rounds": rounds,
            "ours_precision": resolve_precision("auto", "cpu"),
            **{f"{name}_ms_per_image": round(v, 3) for name, v in ms.items()},
            "ratio_ours_vs_peer_fp32": round(peer_fp32 / ms["ours"], 2),
            "ratio_bf16_vs_peer_bf16": round(peer_bf16 / ms["ours_bf16"], 2) if native_bf16 else None}


def bench_train(steps: int = 20, batch_size: int = 32, precision: str = "auto", threads: int | None = None,
                device: str | None = None, resolution: int = 64, channels_last: bool = True) -> dict:
    """Time the real training loop (default 64-px models) on a generated dataset; steady-state it/s from its stats."""
    import tempfile
    from pathlib import Path

    set_threads(threads)
    events: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _synthetic_dataset(Path(tmp) / "data", n=max(2 * batch_size, 64), size=resolution)
        cfg = TrainConfig(data=str(data), out=str(Path(tmp) / "model"), run_dir=str(Path(tmp) / "run"),
                          steps=steps, batch_size=batch_size, precision=precision, resolution=resolution,
                          log_every=5, sample_every=10**9, checkpoint_every=10**9, device=device, threads=threads,
                          channels_last=channels_last)
        train(cfg, progress=events.append)
    rates = [e["it_s"] for e in events if e["type"] == "step"][1:]  # the first window includes warm-up
    it_s = statistics.median(rates) if rates else float("nan")
    return {"bench": "train", "device": describe(pick_device(device)), "cpu": cpu_name(), "torch": torch.__version__,
            "resolution": resolution, "batch_size": batch_size, "steps": steps, "channels_last": channels_last,
            "precision": resolve_precision(precision, pick_device(device)),
            "it_per_s": round(it_s, 3), "s_per_it": round(1 / it_s, 3), "images_per_s": round(it_s * batch_size, 1),
            "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _synthetic_dataset(root, n: int, size: int):
    """Random coloured shapes with captions, written as an imagefolder (benchmarks need no downloads)."""
    import json
    import random

    from PIL import Image, ImageDraw

    root.mkdir(parents=True)
    rng = random.Random(0)
    lines = []
    for i in range(n):
        color = tuple(rng.randrange(256) for _ in range(3))
        im = Image.new("RGB", (size, size), "white")
        a, b = sorted(rng.sample(range(4, size - 4), 2))
        (ImageDraw.Draw(im).ellipse if i % 2 else ImageDraw.Draw(im).rectangle)([a, a, b + 4, b + 4], fill=color)
        im.save(root / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "text": f"shape {i} in colour {color}"}))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root
