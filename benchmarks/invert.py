"""Image to image on held-out emoji: how well pictures go into the model, and how well they take edits.

    python benchmarks/invert.py [--model emoji-64] [--data data/emoji-v2] [--per-set 6] [--steps 60] [--threads 2]

Takes `--per-set` pictures of each emoji set (vendor) from the held-out split (emoji the model never trained on),
projects each (`Projector`, the model's inversion encoder if it has one, no prompt), then edits it toward the name of
another held-out emoji (`--strength`, `--split`: several of each give one line per pair, from the same projections).
One JSON line per edit setting with, over all pictures:

* reconstruction: LPIPS (shift-tolerant AlexNet) and PSNR of the redrawn picture; `same_top1`: how often the project's
  evaluator ranks the same emoji first for the redrawing as for the original, among the split's emoji names
  (`original_recognised`: how often that first emoji is the right one); median seconds per picture;
* edits: `edit_recognised`: how often the evaluator ranks the target's name first for the edit, beside
  `generated_recognised` for a fresh image of the target (seed 0); `edit_l1_8px`: mean |edit − source| at 8 px in
  [0, 1], beside `random_l1_8px`: the fresh target image against the source.

The CPU name, thread count and precision of the fit (`--precision`: auto = bf16 where the CPU runs it natively) are
in the line. Needs the dataset (`t2igan data emoji --out data/emoji-v2 --vendors
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
    ap.add_argument("--precision", default="auto", help="auto (bf16 where the CPU runs it natively) or fp32")
    ap.add_argument("--strength", type=float, nargs="+", default=[1.0], help="edits: one line per strength × split")
    ap.add_argument("--split", type=int, nargs="+", default=[None],
                    help="edits: first level that takes the edit (default: the pipeline's)")
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

    edits = [(s, k) for s in args.strength for k in args.split]
    out = {"lpips": [], "psnr": [], "same_top1": [], "original_recognised": [], "seconds": [],
           "generated_recognised": [], "random_l1_8px": []}
    edit_out = {e: {"edit_recognised": [], "edit_l1_8px": []} for e in edits}
    for r in chosen:
        original = picture_tensor(str(test / r["file_name"]), pipe.generator.config.resolution)
        fit = projector(str(test / r["file_name"]), steps=args.steps, pixel_weight=args.pixel_weight, hold=args.hold,
                        critic_weight=args.critic_weight, precision=args.precision)
        redrawn = pipe(latents=fit.latent, output_type="pt").images * 2 - 1
        out["lpips"].append(fit.lpips)
        out["psnr"].append(fit.psnr)
        out["seconds"].append(fit.seconds)
        a, b = top1(torch.cat([original, redrawn]))
        out["same_top1"].append(float(a == b))
        out["original_recognised"].append(float(names[a] == r["name"]))
        target = rng.choice([n for n in names if n != r["name"]])
        fresh = pipe(target, seed=0, output_type="pt").images * 2 - 1
        edited = torch.cat([pipe(target, latents=fit.latent, strength=s, split=k, output_type="pt").images * 2 - 1
                            for s, k in edits])
        g, *e = top1(torch.cat([fresh, edited]))
        out["generated_recognised"].append(float(names[g] == target))
        out["random_l1_8px"].append((small(fresh) - small(original)).abs().mean().item())
        for (s, k), e_i, image in zip(edits, e, edited):
            edit_out[s, k]["edit_recognised"].append(float(names[e_i] == target))
            edit_out[s, k]["edit_l1_8px"].append((small(image[None]) - small(original)).abs().mean().item())
    for (s, k), figures in edit_out.items():  # one line per edit setting; the projection figures repeat
        result = {"bench": "invert", "model": args.model, "pictures": len(chosen), "steps": args.steps,
                  "pixel_weight": args.pixel_weight, "hold": args.hold, "critic_weight": args.critic_weight,
                  "precision": args.precision, "strength": s, "split": k, "encoder": projector.encoder is not None,
                  **{name: round(statistics.mean(v), 4) for name, v in {**out, **figures}.items() if name != "seconds"},
                  "median_seconds": round(statistics.median(out["seconds"]), 2),
                  "cpu": cpu_name(), "threads": args.threads}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
