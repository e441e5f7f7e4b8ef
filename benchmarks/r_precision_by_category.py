"""Text match per emoji category: where does a model draw its prompts, and where not?

    python benchmarks/r_precision_by_category.py MODEL [MODEL ...] [--split test|train] [--n 1000] [--threads 1]

The `t2igan eval` protocol (same prompts, seeds and 99 distractor captions per image, `EvalContext` with seed 0), with
R-precision averaged per concept (each emoji once) within each metadata `category` of data/emoji. Prints one JSON line
for the real images (the ceiling) and one per model, then the model's FD over all images. Needs data/emoji
(`t2igan data emoji --out data/emoji`); about a minute per model for 1,000 training images on one CPU thread.
"""
import argparse
import json
from collections import defaultdict

import torch

from t2igan.device import set_threads
from t2igan.evaluate import (EvalContext, _generate_images, frechet_distance, mean_over_concepts,
                             pipeline_generate_fn, r_precision_hits)
from t2igan.pipeline import T2IGANPipeline
from t2igan.weights import resolve_model


def by_category(ctx: EvalContext, category: list[str], image_emb: torch.Tensor) -> dict:
    """R-precision over all images, per concept, and per concept within each category."""
    hits = r_precision_hits(image_emb, ctx.true_text, ctx.distractors)
    row = {"all": round(float(hits.float().mean()), 3), "concepts": round(mean_over_concepts(hits, ctx.concepts), 3)}
    groups = defaultdict(list)
    for i, c in enumerate(category):
        groups[c].append(i)
    for c, idx in sorted(groups.items()):
        row[c] = round(mean_over_concepts(hits[idx], [ctx.concepts[i] for i in idx]), 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="data/emoji")
    ap.add_argument("--split", default="test", choices=["test", "train"])
    ap.add_argument("--n", type=int, default=None, help="images (default: all, up to 1000)")
    ap.add_argument("--truncation", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    set_threads(a.threads)
    ctx = EvalContext(a.data, a.split, n_prompts=a.n, seed=0, diversity_prompts=0, other_split=False)
    category_of = {}
    with open(f"{a.data}/{a.split}/metadata.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            category_of[r["base"]] = r["category"]
    category = [category_of.get(c, "?") for c in ctx.concepts]
    print(json.dumps({"model": "real images (ceiling)", **by_category(ctx, category, ctx.real_v)}), flush=True)
    for m in a.models:
        pipe = T2IGANPipeline.from_pretrained(resolve_model(m))
        images = _generate_images(pipeline_generate_fn(pipe, a.truncation), ctx.prompts,
                                  [ctx.seed + i for i in ctx.rows], 64)
        f, v = map(torch.cat, zip(*(ctx.evaluator.encode(x) for x in images)))
        print(json.dumps({"model": m, **by_category(ctx, category, v), "fd": round(frechet_distance(f, ctx.real_f), 3)}),
              flush=True)


if __name__ == "__main__":
    main()
