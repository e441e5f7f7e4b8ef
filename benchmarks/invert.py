"""Image to image on held-out emoji: how well pictures go into the model, and how well they take edits.

    python benchmarks/invert.py [--model emoji-64] [--data data/emoji-v2] [--per-set 6] [--steps 60] [--threads 2]

Takes `--per-set` pictures of each emoji set (vendor) from the held-out split (emoji the model never trained on),
projects each (`Projector`, the model's inversion encoder if it has one, no prompt), then edits it toward the name of
another held-out emoji (strength 1, the default levels). One JSON line with, over all pictures:

* reconstruction: LPIPS (shift-tolerant AlexNet) and PSNR of the redrawn picture; `same_top1`: how often the project's
  evaluator ranks the same emoji first for the redrawing as for the original, among the split's emoji names
  (`original_recognised`: how often that first emoji is the right one); median seconds per picture;
* edits: `edit_recognised`: how often the evaluator ranks the target's name first for the edit, beside
  `generated_recognised` for a fresh image of the target (seed 0); `edit_l1_8px`: mean |edit − source| at 8 px in
  [0, 1], beside `random_l1_8px`: the fresh target image against the source.

The CPU name and thread count are in the line. Needs the dataset (`t2igan data emoji --out data/emoji-v2 --vendors
google twitter fluent openmoji emojione`).
"""
import argparse
import json
import random
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from t2igan.device import cpu_name  # noqa: E402
from t2igan.evaluate import load_evaluator  # noqa: E402
from t2igan.images import picture_tensor  # noqa: E402
from t2igan.invert import Projector, load_encoder  # noqa: E402
from t2igan.weights import load_pipeline, resolve_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="emoji-64")
    ap.add_argument("--data", default="data/emoji-v2")
    ap.add_argument("--per-set", type=int, default=6)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pixel-weight", type=float, default=1.0)
    ap.add_argument("--hold", type=float, default=0.5)
    ap.add_argument("--critic-weight", type=float, default=0.3)
    ap.add_argument("--evaluator", default=None, help="evaluator folder (default: weights/evaluator)")
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--split", type=int, default=None, help="edits: first level that takes the edit (default: the pipeline's)")
    args = ap.parse_args()
    pipe = load_pipeline(args.model, threads=args.threads)
    projector = Projector(pipe, encoder=load_encoder(resolve_model(args.model)))
    evaluator = load_evaluator(args.evaluator)
    test = Path(args.data) / "test"
    rows = [json.loads(line) for line in open(test / "metadata.jsonl", encoding="utf-8")]
    names = sorted({r["name"] for r in rows})
    text = F.normalize(pipe.encode_prompt(names).float(), dim=1)
    rng = random.Random(args.seed)
    chosen = []
    for vendor in sorted({r["vendor"] for r in rows}):
        pool = [r for r in rows if r["vendor"] == vendor and not r.get("skin_tone")]
        chosen += rng.sample(pool, min(args.per_set, len(pool)))

    def top1(images: torch.Tensor) -> list[int]:
        _, v = evaluator.encode(images)
        return (v @ text.T).argmax(1).tolist()

    def small(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate((x + 1) / 2, size=(8, 8), mode="area")

    out = {"lpips": [], "psnr": [], "same_top1": [], "original_recognised": [], "seconds": [], "edit_recognised": [],
           "generated_recognised": [], "edit_l1_8px": [], "random_l1_8px": []}
    for r in chosen:
        original = picture_tensor(str(test / r["file_name"]), pipe.generator.config.resolution)
        fit = projector(str(test / r["file_name"]), steps=args.steps, pixel_weight=args.pixel_weight, hold=args.hold,
                        critic_weight=args.critic_weight)
        redrawn = pipe(latents=fit.latent, output_type="pt").images * 2 - 1
        out["lpips"].append(fit.lpips)
        out["psnr"].append(fit.psnr)
        out["seconds"].append(fit.seconds)
        a, b = top1(torch.cat([original, redrawn]))
        out["same_top1"].append(float(a == b))
        out["original_recognised"].append(float(names[a] == r["name"]))
        target = rng.choice([n for n in names if n != r["name"]])
        edited = pipe(target, latents=fit.latent, strength=args.strength, split=args.split,
                      output_type="pt").images * 2 - 1
        fresh = pipe(target, seed=0, output_type="pt").images * 2 - 1
        e, g = top1(torch.cat([edited, fresh]))
        out["edit_recognised"].append(float(names[e] == target))
        out["generated_recognised"].append(float(names[g] == target))
        out["edit_l1_8px"].append((small(edited) - small(original)).abs().mean().item())
        out["random_l1_8px"].append((small(fresh) - small(original)).abs().mean().item())
    result = {"bench": "invert", "model": args.model, "pictures": len(chosen), "steps": args.steps,
              "pixel_weight": args.pixel_weight, "hold": args.hold, "critic_weight": args.critic_weight,
              "strength": args.strength, "split": args.split,
              "encoder": projector.encoder is not None,
              **{k: round(statistics.mean(v), 4) for k, v in out.items() if k != "seconds"},
              "median_seconds": round(statistics.median(out["seconds"]), 2),
              "cpu": cpu_name(), "threads": args.threads}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
