"""Image to image on held-out emoji: how well pictures go into the model, and how well they take edits.

    python benchmarks/invert.py [--model emoji-64-v2] [--data data/emoji-v2] [--per-set 6] [--steps 60] [--threads 2]

Takes `--per-set` pictures of each emoji set (vendor) from the held-out split (emoji the model never trained on),
projects each (`Projector`, the model's inversion encoder if it has one, no prompt by default), then edits it toward
the name of another held-out emoji: `--targets related` the one whose name means the most alike to the pipeline's
text encoder ("lock" → "open lock", "softball" → "handball": an edit, as a user asks for one), `random` any other.
`--source-prompt no|name`: edit without a source prompt, or with the original's name as the source ("lock" →
"open lock" moves the picture by the difference of the two, as the Edit tab's "changing from" does). `--shows name`
projects with the original's name as the prompt (the Edit tab's "what it shows"): the fit starts from that name's
condition, and edits without a source prompt then move by the difference from it. Several targets, sources,
`--strength` and `--split` give one line per combination, from the same projections. One JSON line per edit setting
with, over all pictures:

* reconstruction: LPIPS (shift-tolerant AlexNet) and PSNR of the redrawn picture; `same_top1`: how often the project's
  evaluator ranks the same emoji first for the redrawing as for the original, among the split's emoji names
  (`original_recognised`: how often that first emoji is the right one); median seconds per picture; for scale, the
  same figure for the original against itself moved by one pixel (`same_top1_shifted`) and resampled 64 → 48 → 64 px
  (`same_top1_resampled`): how much the evaluator's first choice moves with changes a viewer hardly sees;
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

from t2igan.device import cpu_name, keep_freed_memory  # noqa: E402
from t2igan.evaluate import load_evaluator  # noqa: E402
from t2igan.images import picture_tensor  # noqa: E402
from t2igan.invert import Projector, load_encoder  # noqa: E402
from t2igan.weights import DEFAULT_MODEL, load_pipeline, resolve_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
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
    ap.add_argument("--targets", nargs="+", default=["related", "random"], choices=["related", "random"],
                    help="edits toward the held-out name nearest in meaning, or toward any other")
    ap.add_argument("--shows", default="none", choices=["none", "name"],
                    help="the projection's prompt ('what it shows' in the Edit tab): none, or the original's name")
    ap.add_argument("--source-prompt", nargs="+", default=["no", "name"], choices=["no", "name"],
                    help="edits without a source prompt, or from the original's name")
    args = ap.parse_args()
    keep_freed_memory()  # as the CLI and the app run
    pipe = load_pipeline(args.model, threads=args.threads)
    projector = Projector(pipe, encoder=load_encoder(resolve_model(args.model)))
    evaluator = load_evaluator(args.evaluator)
    test = Path(args.data) / "test"
    rows = [json.loads(line) for line in open(test / "metadata.jsonl", encoding="utf-8")]
    names = sorted({r["name"] for r in rows})
    text = F.normalize(pipe.encode_prompt(names).float(), dim=1)
    alike = text @ text.T
    alike.fill_diagonal_(-2.0)
    related = {n: names[int(i)] for n, i in zip(names, alike.argmax(1))}
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

    edits = [(t, src, s, k) for t in args.targets for src in args.source_prompt for s in args.strength
             for k in args.split]
    out = {"lpips": [], "psnr": [], "same_top1": [], "original_recognised": [], "same_top1_shifted": [],
           "same_top1_resampled": [], "seconds": []}
    fresh_out = {t: {"generated_recognised": [], "random_l1_8px": []} for t in args.targets}
    edit_out = {e: {"edit_recognised": [], "edit_l1_8px": []} for e in edits}
    for r in chosen:
        original = picture_tensor(str(test / r["file_name"]), pipe.generator.config.resolution)
        fit = projector(str(test / r["file_name"]), steps=args.steps, pixel_weight=args.pixel_weight, hold=args.hold,
                        critic_weight=args.critic_weight, precision=args.precision,
                        prompt=r["name"] if args.shows == "name" else None)
        redrawn = pipe(latents=fit.latent, output_type="pt").images * 2 - 1
        out["lpips"].append(fit.lpips)
        out["psnr"].append(fit.psnr)
        out["seconds"].append(fit.seconds)
        shifted = torch.cat([original[..., :1], original[..., :-1]], dim=3)  # one pixel right, edge repeated
        resampled = F.interpolate(F.interpolate(original, size=48, mode="bilinear", antialias=True), size=64,
                                  mode="bilinear")
        a, b, c, d = top1(torch.cat([original, redrawn, shifted, resampled]))
        out["same_top1"].append(float(a == b))
        out["same_top1_shifted"].append(float(a == c))
        out["same_top1_resampled"].append(float(a == d))
        out["original_recognised"].append(float(names[a] == r["name"]))
        other = rng.choice([n for n in names if n != r["name"]])  # drawn for every picture: the same pairs whatever
        targets = {"related": related[r["name"]], "random": other}  # the other options
        for t in args.targets:
            target = targets[t]
            fresh = pipe(target, seed=0, output_type="pt").images * 2 - 1
            mine = [setting for setting in edits if setting[0] == t]
            edited = torch.cat([pipe(target, latents=fit.latent, strength=s, split=k, output_type="pt",
                                     source_prompt=r["name"] if src == "name" else None).images * 2 - 1
                                for _, src, s, k in mine])
            g, *e = top1(torch.cat([fresh, edited]))
            fresh_out[t]["generated_recognised"].append(float(names[g] == target))
            fresh_out[t]["random_l1_8px"].append((small(fresh) - small(original)).abs().mean().item())
            for setting, e_i, image in zip(mine, e, edited):
                edit_out[setting]["edit_recognised"].append(float(names[e_i] == target))
                edit_out[setting]["edit_l1_8px"].append((small(image[None]) - small(original)).abs().mean().item())
    for (t, src, s, k), figures in edit_out.items():  # one line per edit setting; the projection figures repeat
        result = {"bench": "invert", "model": args.model, "pictures": len(chosen), "steps": args.steps,
                  "pixel_weight": args.pixel_weight, "hold": args.hold, "critic_weight": args.critic_weight,
                  "precision": args.precision, "shows": args.shows, "targets": t, "source_prompt": src,
                  "strength": s, "split": k,
                  "encoder": projector.encoder is not None,
                  **{name: round(statistics.mean(v), 4)
                     for name, v in {**out, **fresh_out[t], **figures}.items() if name != "seconds"},
                  "median_seconds": round(statistics.median(out["seconds"]), 2),
                  "cpu": cpu_name(), "threads": args.threads}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
