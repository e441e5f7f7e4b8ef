"""Offline evaluation: FD, R-precision and diversity measured with a small evaluator trained on the dataset itself.

No internet, no Inception weights: the feature space comes from `Evaluator`, a 0.75 M-parameter CNN (3 MB) for
64-px images, trained CLIP/DAMSM-style on the dataset's *train* split to match images with their captions' sentence
embeddings (the same frozen text encoder the generator uses, 'minilm' by default). Shipped in `weights/evaluator/`;
train one with `train_evaluator` / `t2igan evaluator`.

    image ─► [stride-2 conv stage] × 4 (32-64-128-256) ─► mean pool ─► f (256-d) ─► Linear ─► L2-norm ─► v (384-d)
                                                                                │                            │
                                                    Fréchet distance, diversity ┘       R-precision (cos v·text) ┘

**Never use the evaluator as a training loss** (not for the generator, not for a re-ranker during training): a
generator optimised against it learns to fool this particular small network, and every number below then stops
measuring image quality. It is a ruler, not a teacher. The trainer may only *report* `quick_metrics`.

Metrics (`evaluate_model`, `t2igan eval MODEL`), each beside a reference measured the same way on real images:

* **FD** — Fréchet distance between Gaussian fits of evaluator features `f` of generated images (one per real image
  of the split, from one of its captions, seed = `seed` + image index) and of the real images. FD is biased upward
  at small N, so each model number sits beside a reference at the same N: `fd` (all N generated vs all N real) beside
  `fd_other_split` (real train vs real test images at equal N: real quality, other concepts — roughly what a model
  that draws the training emoji perfectly but not the held-out ones would score), and `fd_halves` (images generated
  for a random half A of the captions vs the real images of the other half B) beside `fd_real_halves` (real A vs
  real B: the floor from sampling noise alone), with two quality anchors on that row: half A's real images blurred
  (down-sampled to 16 px / 8 px and back) vs real half B. The space is semantic (trained to match captions): it
  reacts strongly to wrong content, collapse and noise, less to blur, so it does not replace looking at samples.
* **R-precision** — for each generated image, is its caption ranked first (cosine in the evaluator's joint space)
  among the true caption and 99 random captions of *other* concepts (captions shared with the true concept are never
  used as distractors)? The *ceiling* is the same test on the real images with the same captions and distractors;
  chance is 1 / (1 + 99). Random distractors are mostly easy (a face caption against a flag's); **R-precision among
  look-alikes** ranks the same caption against the names of the 9 other concepts nearest to it in the evaluator's text
  space instead ("frowning face" against "angry face", "grimacing face", ...; chance 1 / 10), with its ceiling on
  the real images the same way: whether the image shows *which* of several similar things was asked for.
* **Diversity** — mean pairwise cosine distance between mean-centred features `f` of K seeds of one prompt (the
  concept's name, e.g. "nail polish"), averaged over prompts. The real reference is the same statistic over the
  real images that share that exact name: for the emoji set the Google and Twitter drawings of one emoji, i.e. the
  spread that one prompt legitimately covers. ratio = generated / real: ≈ 1 is healthy, ≪ 1 is mode collapse, ≫ 1
  means the image ignores the prompt (compare with "any two real images", the spread of the whole split).

A concept is the metadata field `base` where metadata.jsonl has one (emoji: all skin tones and vendors of an
emoji), else the image's first caption. Held-out (test) concepts are hard for a GAN trained on ~1.8 k concepts;
`split='train'` measures the same on a subsample of the training images (the evaluator saw those too, so its
ceiling there is optimistic).
"""
from .evaluation import (
                         EvalContext,
                         GenerateFn,
                         compare_models,
                         concept_keys,
                         evaluate_model,
                         pipeline_generate_fn,
                         quick_metrics,
)
from .metrics import frechet_distance, r_precision
from .network import EVALUATOR_NAME, Evaluator, evaluator_path, load_evaluator
from .report import format_comparison, format_report
from .training import contrastive_loss, train_evaluator

__all__ = ["EVALUATOR_NAME", "EvalContext", "Evaluator", "GenerateFn", "compare_models", "concept_keys",
           "contrastive_loss", "evaluate_model", "evaluator_path", "format_comparison", "format_report",
           "frechet_distance", "load_evaluator", "pipeline_generate_fn", "quick_metrics", "r_precision",
           "train_evaluator"]
