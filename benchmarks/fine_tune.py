"""Fine-tuning on a few pictures, with and without `keep`: what it learns and what it forgets.

    python benchmarks/fine_tune_keep.py [--keep 0 10 30] [--threads 2] [--out runs/fine-tune-keep]

Takes the 8 pictures (Noto + Twemoji) of 4 held-out emoji (doughnut, pretzel, wine glass, mouse face) from
data/emoji/test, fine-tunes the shipped model on them with the app's defaults (300 steps, batch 16 → 8, lr 1e-4 / 2e-4)
once per keep weight, and prints one JSON line per model:

* learned: mean |G − nearest picture of the same emoji| on [-1, 1] at 16 px for the 4 prompts × 8 seeds (lower = closer
  to the pictures it was given);
* forgot: `t2igan eval` on 500 training concepts and on the held-out split (FD, R-precision, diversity), against the
  shipped model's own numbers on the first line.

It also writes compare.png: learned prompts and other prompts, 2 seeds, one column pair per model. Needs data/emoji
(`t2igan data emoji --out data/emoji`); about 6 minutes per fine-tune on 2 CPU threads.
"""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from t2igan.evaluate import evaluate_model, pipeline_generate_fn
from t2igan.images import enlarge
from t2igan.training.recipes import configs_from_recipe, train_stages
from t2igan.weights import DEFAULT_MODEL, load_pipeline

CONCEPTS = ("doughnut", "pretzel", "wine glass", "mouse face")
OTHERS = ("a cat face", "a police car", "a sunflower", "smiling face with hearts")  # none of them in the sheet's prompts
METRICS = ("fd", "fd_halves", "r_precision", "diversity_ratio")


def few_pictures(data: Path, out: Path) -> dict[str, list[torch.Tensor]]:
    """Copy the concepts' pictures with their captions into `out`; returns {prompt: pictures in [-1, 1]}."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows, pictures = [], {}
    for line in (data / "test" / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["name"] in CONCEPTS:
            name = row["file_name"].replace("/", "-")
            shutil.copy(data / "test" / row["file_name"], out / name)
            rows.append({"file_name": name, "text": row["text"]})
            image = np.array(Image.open(out / name).convert("RGB"))
            pictures.setdefault(f"a {row['name']}", []).append(torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1)
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pictures


def learned(pipe, pictures: dict[str, list[torch.Tensor]], seeds: int = 8) -> float:
    generate = pipeline_generate_fn(pipe)
    distances = []
    for prompt, pics in pictures.items():
        with torch.no_grad():
            made = F.avg_pool2d(generate([prompt] * seeds, list(range(seeds))), 4)
        real = F.avg_pool2d(torch.stack(pics), 4)
        distances.append((made[:, None] - real[None]).abs().mean((2, 3, 4)).min(1).values)
    return float(torch.cat(distances).mean())


def report(name: str, pipe, pictures, data: str, threads: int) -> dict:
    row = {"model": name, "learned": round(learned(pipe, pictures), 4)}
    for split, extra in (("train", {"n_prompts": 500}), ("test", {})):
        r = evaluate_model(pipe, data_dir=data, split=split, threads=threads, **extra)
        row.update({f"{split}_{k}": round(r[k], 3) for k in METRICS})
    print(json.dumps(row), flush=True)
    return row


def compare(pipes: dict[str, object], prompts: list[str], path: Path, seeds=(0, 1), scale: int = 2) -> None:
    size, label_w, pad, head = 64 * scale, 170, 4, 20
    col_w = len(seeds) * (size + pad) + 2 * pad
    sheet = Image.new("RGB", (label_w + len(pipes) * col_w, head + len(prompts) * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (name, pipe) in enumerate(pipes.items()):
        draw.text((label_w + c * col_w + pad, 4), name, fill=(20, 20, 20))
        for r, prompt in enumerate(prompts):
            y = head + r * (size + pad)
            if c == 0:
                draw.text((8, y + size // 2 - 6), prompt, fill=(20, 20, 20))
            for k, seed in enumerate(seeds):
                image = pipe(prompt, seed=seed, truncation=0.8).images[0]
                sheet.paste(enlarge(image, scale), (label_w + c * col_w + pad + k * (size + pad), y))
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=float, nargs="+", default=[0.0, 10.0, 30.0])
    ap.add_argument("--data", default="data/emoji")
    ap.add_argument("--base", default=DEFAULT_MODEL)
    ap.add_argument("--out", default="runs/fine-tune-keep")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    pictures = few_pictures(Path(args.data), out / "pictures")
    pipes = {args.base: load_pipeline(args.base, device="cpu")}
    report(args.base, pipes[args.base], pictures, args.data, args.threads)
    for w in args.keep:
        name = f"keep {w:g}"
        folder = out / f"keep-{w:g}"
        shutil.rmtree(folder / "run", ignore_errors=True)  # a rerun measures a fresh fine-tune
        # the app's Train tab defaults: the fine-tune recipe
        train_stages(configs_from_recipe("fine-tune", data=str(out / "pictures"), init=args.base,
                                         out=str(folder / "model"), run_dir=str(folder / "run"), keep=w,
                                         threads=args.threads, sample_every=100, checkpoint_every=100))
        pipes[name] = load_pipeline(str(folder / "model"), device="cpu")
        report(name, pipes[name], pictures, args.data, args.threads)
    compare(pipes, list(pictures) + list(OTHERS), out / "compare.png")
    print(json.dumps({"figure": str(out / "compare.png")}))


if __name__ == "__main__":
    main()
