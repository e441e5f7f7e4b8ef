"""Fine-tuning from the Train tab's defaults on 12 pictures: how long it takes, what it learns, what it forgets.

    python benchmarks/fine_tune.py [--keep 30] [--steps N] [--batch-size N] [--threads 2] [--out runs/fine-tune]

Takes the 12 pictures of 4 held-out emoji (doughnut, pretzel, wine glass, mouse face) in three styles (google,
twitter, openmoji) from data/emoji-v2/test with their captions, fine-tunes the default model on them as the app's
Train tab does with its defaults (ui/train_tab.job_configs; --steps, --batch-size and --keep override the form's
values), once per keep weight, and prints one JSON line per model naming the CPU:

* seconds: start of the run to the saved model folder (loading the base and the text encoder, every step, the
  samples and checkpoints the app writes, the final save);
* learned: mean |G − nearest picture of the same emoji| on [-1, 1] at 16 px for the 4 prompts × 8 seeds (lower =
  closer to the pictures it was given);
* forgot: `t2igan eval` on 500 training concepts and on the held-out split (FD, R-precision, diversity), against the
  base model's own numbers on the first line.

It also writes compare.png: learned prompts and other prompts, 2 seeds, one column pair per model. Needs
data/emoji-v2 (`t2igan data emoji --out data/emoji-v2 --vendors google twitter fluent openmoji emojione`).
"""
import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from t2igan.device import cpu_name, keep_freed_memory
from t2igan.evaluate import evaluate_model, pipeline_generate_fn
from t2igan.images import enlarge
from t2igan.training import KEEP
from t2igan.training.recipes import train_stages
from t2igan.ui.train_tab import AUGMENT, job_configs, recipe_defaults
from t2igan.weights import DEFAULT_MODEL, load_pipeline

CONCEPTS = ("doughnut", "pretzel", "wine glass", "mouse face")
STYLES = ("google", "twitter", "openmoji")  # three looks: 4 emoji × 3 = the 12 pictures
OTHERS = ("a cat face", "a police car", "a sunflower", "smiling face with hearts")  # none of them in the sheet's prompts
METRICS = ("fd", "fd_halves", "r_precision", "diversity_ratio")


def few_pictures(data: Path, out: Path) -> dict[str, list[torch.Tensor]]:
    """Copy the concepts' pictures with their captions into `out`; returns {prompt: pictures in [-1, 1]}."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows, pictures = [], {}
    for line in (data / "test" / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["name"] in CONCEPTS and row["vendor"] in STYLES:
            name = row["file_name"].replace("/", "-")
            shutil.copy(data / "test" / row["file_name"], out / name)
            rows.append({"file_name": name, "text": row["text"]})
            image = np.array(Image.open(out / name).convert("RGB"))
            pictures.setdefault(f"a {row['name']}", []).append(torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1)
    if len(rows) != len(CONCEPTS) * len(STYLES):
        raise SystemExit(f"{data / 'test'} holds {len(rows)} of the 12 pictures: build data/emoji-v2 (see above)")
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


def report(name: str, pipe, pictures, data: str, threads: int, **timing) -> dict:
    row = {"bench": "fine_tune", "model": name, "cpu": cpu_name(), "threads": threads, **timing,
           "learned": round(learned(pipe, pictures), 4)}
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
    form = recipe_defaults(DEFAULT_MODEL)  # the Train tab's form for a base model
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=float, nargs="+", default=[KEEP])
    ap.add_argument("--steps", type=int, default=form["steps"])
    ap.add_argument("--batch-size", type=int, default=form["batch_size"])
    ap.add_argument("--data", default="data/emoji-v2")
    ap.add_argument("--base", default=DEFAULT_MODEL)
    ap.add_argument("--out", default="runs/fine-tune")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    keep_freed_memory()  # as the CLI and the app run
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    pictures = few_pictures(Path(args.data), out / "pictures")
    pipes = {args.base: load_pipeline(args.base, device="cpu")}
    report(args.base, pipes[args.base], pictures, args.data, args.threads)
    for w in args.keep:
        name = f"keep {w:g}"
        folder = out / f"keep-{w:g}"
        shutil.rmtree(folder, ignore_errors=True)  # a rerun measures a fresh fine-tune
        configs = job_configs(out / "pictures", args.base, folder / "model", folder / "run", args.steps,
                              args.batch_size, form["lr_g"], form["lr_d"], AUGMENT, keep=w)
        t0 = time.perf_counter()
        train_stages(configs)
        seconds = round(time.perf_counter() - t0, 1)
        pipes[name] = load_pipeline(str(folder / "model"), device="cpu")
        report(name, pipes[name], pictures, args.data, args.threads, seconds=seconds, steps=args.steps,
               batch_size=args.batch_size, keep=w, n_pictures=len(CONCEPTS) * len(STYLES))
    compare(pipes, list(pictures) + list(OTHERS), out / "compare.png")
    print(json.dumps({"figure": str(out / "compare.png")}))


if __name__ == "__main__":
    main()
