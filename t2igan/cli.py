"""`t2igan` command line: generate | interpolate | sheet | info | bench | app | train | eval | evaluator | features |
data | export | average | video | directions. Each subcommand calls the library; nothing here that Python cannot do."""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import diffusers
import torch
import transformers

from . import __version__
from .average import average_models
from .bench import bench_generate, bench_train, bench_vs_peer
from .checkpoint import CheckpointError
from .data import DataConfig, load_captioned_images
from .datasets.emoji import ALL_SOURCES, EmojiBuildError, build_emoji_dataset
from .device import describe, keep_freed_memory, pick_device, set_threads
from .paths import EMOJI_DATA
from .evaluate import (compare_models, evaluate_model, evaluator_path, format_comparison, format_report,
                       load_evaluator, train_evaluator)
from .export import ExportError, export_onnx
from .features import train_feature_net
from .images import enlarge, make_grid, picture_tensor, save_animation, to_pil
from . import directions as sliders
from .sheet import PROMPT_SETS, SHEET_PROMPTS, directions_sheet, prompt_sheet
from .text import EncoderNotAvailable
from .invert import ENCODER, Projector, load_encoder, train_encoder
from .latent import Latent
from .training import TrainingDiverged
from .video import FORMATS, prompt_walk, render_frames, seed_loop, slider_sweep, write_video
from .training.recipes import (
    DEFAULT_FINE_TUNE,
    DEFAULT_NEW,
    RecipeError,
    configs_from_recipe,
    list_recipes,
    parse_setting,
    train_stages,
)
from .weights import (
    NoModelError,
    default_truncation,
    list_encoders,
    list_models,
    load_pipeline,
    model_directions,
    model_fingerprint,
    model_index,
    model_styles,
    resolve_model,
    weights_dir,
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name under weights/ or a model folder (default: shipped model)")
    p.add_argument("--device", default=None, help="auto | cuda | mps | cpu (default: $T2IGAN_DEVICE or auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: $T2IGAN_THREADS or torch's)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="the generator's arithmetic (default auto: bf16 where the CPU or GPU has it natively)")


def _whole(lo: int, hi: int | None = None):
    """argparse type: a whole number in [lo, hi] (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            allowed = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {v}")
        return v
    return parse


def _prompt_list(text: str | None, flag: str) -> list[str] | None:
    """'a|b|c' → ['a', 'b', 'c']; None when not given; an error when given but empty."""
    if text is None:
        return None
    prompts = [p.strip() for p in text.split("|") if p.strip()]
    if not prompts:
        raise ValueError(f"{flag} holds no prompt: separate prompts with '|', e.g. \"a red apple|a cat face\"")
    return prompts


def _check_output(out: str, animated: bool = False) -> Path:
    """Fail before generating when -o is a folder or not an image format PIL can write."""
    from PIL import Image

    path = Path(out)
    if path.is_dir():
        raise ValueError(f"-o {out} is a folder: give a file name, e.g. {path / 't2igan.png'}")
    Image.init()
    writable = sorted({ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE})
    if path.suffix.lower() not in writable:
        common = ".png, .jpg, .webp" + (", .gif" if animated else "")
        raise ValueError(f"-o {out}: {path.suffix or 'no extension'} is not an image format; use {common}")
    return path


def _load(args):

    return load_pipeline(args.model, device=args.device, threads=args.threads,
                         precision=getattr(args, "precision", "auto"))


def _save(images, out: str, separate: bool, upscale: int, cols: int | None = None) -> list[Path]:

    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if separate or len(images) == 1:
        paths = [out_path] if len(images) == 1 else [out_path.with_name(f"{out_path.stem}-{i:02d}{out_path.suffix}") for i in range(len(images))]
        for im, p in zip(images, paths):
            enlarge(im, upscale).save(p)
        return paths
    enlarge(make_grid(images, cols=cols), upscale).save(out_path)
    return [out_path]


def cmd_generate(args) -> int:
    if not 0 <= args.mix_weight <= 1:
        raise ValueError("--mix-weight must be between 0 and 1")
    _check_output(args.output)
    pipe = _load(args)
    prompt = {args.prompt: 1.0 - args.mix_weight, args.mix: args.mix_weight} if args.mix else args.prompt
    if args.latent:  # edit a picture put into the model with `t2igan invert`
        latent = read_latent(args.latent, resolve_model(args.model))
        images = pipe(prompt or None, latents=latent, num_images_per_prompt=args.n, seed=args.seed,
                      truncation=args.truncation, variation=args.variation, strength=args.strength,
                      source_prompt=args.source, split=args.split, style=args.style).images
    else:
        images = pipe(prompt, num_images_per_prompt=args.n, seed=args.seed, truncation=args.truncation,
                      style=args.style, fine_prompt=args.fine, split=args.split).images
    for p in _save(images, args.output, args.separate, args.upscale):
        print(p)
    return 0


def cmd_interpolate(args) -> int:
    if args.prompt_b is None and args.seed_b in (None, args.seed_a):
        raise ValueError("interpolate needs another end: a second prompt, or --seed-b other than --seed-a")
    _check_output(args.output, animated=True)
    pipe = _load(args)
    frames = pipe.interpolate(args.prompt_a, args.prompt_b, seed_a=args.seed_a, seed_b=args.seed_b,
                              num_frames=args.frames, truncation=args.truncation).images
    out = Path(args.output)
    if out.suffix.lower() in (".gif", ".webp"):
        out.parent.mkdir(parents=True, exist_ok=True)
        save_animation(frames, out, args.upscale)
        print(out)
    else:
        for p in _save(frames, args.output, False, args.upscale, cols=len(frames)):
            print(p)
    return 0


def cmd_info(args) -> int:

    set_threads(args.threads)
    info = {"t2igan": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": sys.version.split()[0],
            "device": describe(pick_device(args.device)), "weights_dir": str(weights_dir()), "models": list_models(),
            "encoders": list_encoders()}
    try:
        path = resolve_model(args.model)
        index = model_index(path)
        gen = json.loads((path / "generator" / "config.json").read_text())
        info.update(model=str(path), text_encoder=index.get("text_encoder_id") or "stored in the model folder",
                    resolution=gen.get("resolution"), default_truncation=default_truncation(path),
                    styles=model_styles(path), direction_sliders=model_directions(path) or "none",
                    inversion_encoder=(path / ENCODER / "config.json").is_file())
    except NoModelError as e:
        info.update(model=None, note=str(e))
    for k, v in info.items():
        print(f"{k:>18}: {', '.join(v) if isinstance(v, list) else v}")
    return 1 if args.model and info["model"] is None else 0  # an asked-for model that is not there is an error


def cmd_bench(args) -> int:

    if args.peer:
        print(json.dumps(bench_vs_peer(args.model, threads=args.threads, batch=args.batch_size,
                                       rounds=args.repeats)))
    elif args.train:
        print(json.dumps(bench_train(steps=args.steps, batch_size=args.batch_size, precision=args.precision,
                                     threads=args.threads, device=args.device, channels_last=args.channels_last)))
    else:
        print(json.dumps(bench_generate(args.model, device=args.device, threads=args.threads,
                                        batches=tuple(args.batches), repeats=args.repeats, precision=args.precision)))
    return 0


def cmd_train(args) -> int:

    from tqdm import tqdm

    direct = ("data", "out", "init", "resume", "run_dir", "steps", "batch_size", "lr_g", "lr_d", "encoder",
              "resolution", "precision", "device", "threads", "seed")
    settings = {k: getattr(args, k) for k in direct if getattr(args, k) not in (None, False)}
    try:
        settings.update(parse_setting(text) for text in args.settings)
        configs = configs_from_recipe(args.recipe or (DEFAULT_FINE_TUNE if args.init else DEFAULT_NEW), **settings)
    except (RecipeError, TypeError) as e:
        raise ValueError(str(e)) from None
    stop = {"asked": False}

    def on_sigint(signum, frame):
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True
        tqdm.write("stopping after this step (writing a checkpoint); press Ctrl-C again to abort at once")

    previous = signal.signal(signal.SIGINT, on_sigint)
    # a terminal gets a live bar; a log file (nohup, CI) gets a plain line every --progress-every seconds instead of
    # the bar's \r updates
    live = sys.stderr.isatty()
    bar = tqdm(total=configs[0].steps, unit="step", dynamic_ncols=True, disable=args.quiet or not live)
    last_line = {"at": time.monotonic()}

    def progress(event: dict) -> None:
        kind = event["type"]
        if kind == "start":  # of each stage
            bar.reset(total=event["total"])
            bar.n = event["step"]
            bar.refresh()
        elif kind == "step":
            bar.update(event["step"] - bar.n)
            bar.set_postfix(D=f"{event['d']:.3f}", G=f"{event['g']:.3f}", gp=f"{event['penalty']:.3f}")
            now = time.monotonic()
            due = now - last_line["at"] >= args.progress_every or event["step"] == event["total"]
            if due and not (live or args.quiet):
                last_line["at"] = now
                print(progress_line(event), file=sys.stderr, flush=True)
        elif kind == "dataset":
            tqdm.write(event["summary"])
        elif kind in ("log", "sample", "checkpoint", "saved"):
            tqdm.write(event.get("message") or f"{kind}: {event.get('path')}")

    try:
        result = train_stages(configs, progress=progress, should_stop=lambda: stop["asked"])
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    print(f"{result['status']} at step {result['step']}; model: {result['out']}; run: {result['run_dir']}")
    return 0


def cmd_app(args) -> int:
    from .ui import build_app, launch  # gradio: only the app needs it (about 2 s to import)

    auth = None
    if args.auth:
        if ":" not in args.auth:
            raise ValueError("--auth must look like user:password")
        auth = tuple(args.auth.split(":", 1))
    launch(build_app(device=args.device, threads=args.threads), host=args.host, port=args.port, share=args.share,
           auth=auth)
    return 0


def _recipes_epilog() -> str:

    lines = [f"  {name:<14}{description}" for name, description in list_recipes().items()]
    return "recipes (t2igan/recipes/*.toml):\n" + "\n".join(lines)


def progress_line(event: dict) -> str:
    """One training 'step' event as a log line: where the run is, its losses, speed and time left."""
    eta = event["eta_s"]
    eta = f"{eta / 3600:.1f} h" if eta >= 5400 else f"{eta / 60:.0f} min" if eta >= 90 else f"{eta:.0f} s"
    return (f"step {event['step']}/{event['total']}  D {event['d']:.3f}  G {event['g']:.3f}  gp {event['penalty']:.3f}  "
            f"{event['it_s']:.2f} it/s ({event['img_s']:.0f} img/s)  {eta} left")


def cmd_export(args) -> int:

    out = Path(args.output)
    if args.onnx:
        try:
            result = export_onnx(_load(args), out)
        except ExportError as e:
            print(f"t2igan: error: {e}", file=sys.stderr)
            return 1
        print(f"{result['path']} ({result['bytes'] / 2**20:.1f} MB; onnxruntime vs torch max |diff| "
              f"{result['max_abs_diff']:.1e})")
    else:
        folder = resolve_model(args.model)
        archive = shutil.make_archive(str(out.with_suffix("")), "zip", root_dir=folder.parent, base_dir=folder.name)
        print(archive)
    return 0


def cmd_average(args) -> int:

    # errors: main() prints them
    result = average_models(args.base, args.tuned, args.output, weight=args.weight, seed=args.seed)
    if result["widened"]:
        print(f"{result['base']}: generator widened to {result['widened']} (seed {args.seed}) to match {result['tuned']}")
    print(f"{result['out']}: generator = {1 - result['weight']:g} × {result['base']} + {result['weight']:g} × "
          f"{result['tuned']} ({result['parameters']:,} weights); discriminator and the rest from {result['tuned']}")
    return 0


def cmd_sheet(args) -> int:

    prompts = _prompt_list(args.prompts, "--prompts") or PROMPT_SETS[args.set]
    out = _check_output(args.output)
    pipe = _load(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    prompt_sheet(pipe, prompts, seeds=tuple(args.seeds), truncation=args.truncation, style=args.style).save(out)
    print(out)
    return 0


def cmd_directions(args) -> int:

    pipe = _load(args)
    folder = resolve_model(args.model)
    if args.names is not None:  # rename the sliders a model has, after looking at their sheet
        if pipe.directions is None:
            raise ValueError(f"{folder.name} has no direction sliders yet: run `t2igan directions {folder.name}`")
        vectors, _, report = pipe.directions
        names = [n.strip() for n in args.names.split("|")]
    else:
        evaluator = None if args.no_eval else load_evaluator(args.evaluator)
        vectors, report = sliders.find(pipe, SHEET_PROMPTS, args.count, evaluator=evaluator)
        names = [f"direction {k + 1}" for k in range(len(vectors))]
    sliders.save(folder, vectors, names, report)
    pipe.directions = vectors, names, report
    for row, name in zip(pipe.directions[2], pipe.directions[1]):
        print(json.dumps({"name": name, **row}))
    if args.sheet:
        out = _check_output(args.sheet)
        directions_sheet(pipe, _prompt_list(args.prompts, "--prompts") or SHEET_PROMPTS[:4]).save(out)
        print(out)
    return 0


def read_latent(path: str, model: Path):
    """A latent file for `model`; a warning when it was fitted to another model or another version of it."""
    latent, meta = Latent.load(path)
    now = model_fingerprint(model)
    if meta.get("fingerprint") and meta["fingerprint"] != now:
        print(f"t2igan: warning: {Path(path).name} was fitted to {meta.get('model', 'another model')} "
              f"({meta['fingerprint']}); {model.name} is {now}: it will draw something else",
              file=sys.stderr)
    return latent


def cmd_invert(args) -> int:

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise ValueError(f"-o must end in .safetensors, got {out.name}")
    folder = resolve_model(args.model)
    pipe = _load(args)
    projector = Projector(pipe, encoder=load_encoder(folder))
    fit = projector(args.picture, prompt=args.prompt, steps=args.steps)
    fit.latent.save(out, {"model": folder.name, "fingerprint": model_fingerprint(folder),
                          "picture": Path(args.picture).name, "prompt": args.prompt or "",
                          "lpips": f"{fit.lpips:.4f}", "psnr": f"{fit.psnr:.2f}"})
    if args.preview:
        enlarge(make_grid([*to_pil(picture_tensor(args.picture, pipe.generator.config.resolution)),
                           *pipe(latents=fit.latent).images], cols=2), args.upscale).save(args.preview)
    print(json.dumps({"latent": str(out), "lpips": round(fit.lpips, 4), "psnr": round(fit.psnr, 2),
                      "seconds": round(fit.seconds, 2), "start": fit.start}))
    return 0


def cmd_encoder(args) -> int:

    folder = resolve_model(args.model)
    pipe = _load(args)
    data, _ = load_captioned_images(args.data, DataConfig(resolution=pipe.generator.config.resolution))
    train_encoder(pipe, data.unique_captions(), folder, minutes=args.minutes, log=lambda m: print(m, flush=True))
    print(f"inversion encoder saved in {folder.name}/{ENCODER}")
    return 0


def cmd_video(args) -> int:

    out = Path(args.output)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"-o must end in {' or '.join(FORMATS)}, got {out.name}")
    pipe = _load(args)
    fps, frames = args.fps, max(2, round(args.seconds * args.fps))
    if args.direction is not None:
        path = slider_sweep(pipe, args.prompts[0], args.direction, seed=args.seed, amount=args.amount, frames=frames,
                            truncation=args.truncation, style=args.style)
    elif len(args.prompts) > 1:
        path = prompt_walk(pipe, args.prompts, seed=args.seed, frames_per_prompt=frames, loop=args.loop,
                           truncation=args.truncation, style=args.style)
    else:
        seeds = args.seeds or [args.seed + k for k in range(4)]
        path = seed_loop(pipe, args.prompts[0], seeds, frames_per_seed=frames, truncation=args.truncation,
                         style=args.style)
    print(write_video(render_frames(pipe, path), out, fps=fps, size=args.size))
    return 0


def cmd_data_emoji(args) -> int:

    try:
        report = build_emoji_dataset(args.out, vendors=args.vendors, test_fraction=args.test_fraction,
                                     seed=args.seed, resolution=args.resolution,
                                     colour_captions=args.colour_captions)
    except EmojiBuildError as e:
        print(f"t2igan: error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def cmd_features(args) -> int:

    set_threads(args.threads)
    train_feature_net(args.data, args.out, minutes=args.minutes, batch_size=args.batch_size)
    print(f"feature network saved to {args.out}: use it with `t2igan train ... --feature-critic {args.out}`")
    return 0


def cmd_eval(args) -> int:

    common = dict(data_dir=args.data, split=args.split, evaluator=args.evaluator, n_prompts=args.n,
                  diversity_prompts=args.diversity_prompts, diversity_seeds=args.diversity_seeds,
                  truncation=args.truncation, device=args.device, threads=args.threads, by=args.by)
    if len(args.model) > 1 or len(args.seed) > 1:  # models side by side, each metric per seed and its mean
        result = compare_models(args.model or [None], seeds=args.seed, **common)
        print(json.dumps(result) if args.json else format_comparison(result))
        return 0
    result = evaluate_model(args.model[0] if args.model else None, seed=args.seed[0], **common)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


def cmd_evaluator(args) -> int:

    def progress(event: dict) -> None:
        if args.quiet:
            return
        if event["type"] == "step":
            print(f"step {event['step']}: loss {event['loss']:.3f}, temperature {event['temperature']:.4f}, "
                  f"{event['elapsed_s']:.0f} s ({100 * event['fraction']:.0f}%)", flush=True)
        elif event["type"] in ("log", "dataset"):
            print(event.get("message") or event.get("summary"), flush=True)

    info = train_evaluator(args.data, args.out or evaluator_path(None), minutes=args.minutes, steps=args.steps,
                           val_data=args.val, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                           resolution=args.resolution, threads=args.threads, device=args.device, progress=progress)
    print(json.dumps(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t2igan", description="Text-to-image GAN studio: generate, train, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="prompt → PNG (a grid, or one file per image with --separate)")
    g.add_argument("prompt")
    g.add_argument("-n", type=_whole(1, 256), default=1, help="images for the prompt")
    g.add_argument("--seed", type=_whole(0), default=0, help="image k uses seed + k")
    g.add_argument("--truncation", type=float, default=None,
                   help="noise scale: lower = more typical, less varied (default: the model's, see `t2igan info`)")
    g.add_argument("--style", default=None, help="one of the model's drawing styles (`t2igan info`), e.g. google")
    g.add_argument("--mix", default=None, help="a second prompt to blend in")
    g.add_argument("--mix-weight", type=float, default=0.5, help="weight of --mix in the blend (0..1)")
    g.add_argument("--fine", default=None, metavar="PROMPT",
                   help="the fine levels (colour, texture) follow this prompt, the coarse ones (layout) PROMPT")
    g.add_argument("--split", type=_whole(0), default=None,
                   help="with --fine: the first level that follows it (0 = all … levels = none; default: the middle)")
    g.add_argument("-o", "--output", default="t2igan.png")
    g.add_argument("--separate", action="store_true", help="one file per image (out-00.png, ...)")
    g.add_argument("--upscale", type=_whole(1, 32), default=1, help="nearest-neighbour enlargement factor (1-32)")
    g.add_argument("--latent", default=None, metavar="FILE",
                   help="a picture put into the model (`t2igan invert`): PROMPT edits it (\"\" redraws it)")
    g.add_argument("--strength", type=float, default=1.0, help="--latent: how far toward PROMPT (0 = unchanged)")
    g.add_argument("--source", default=None, metavar="PROMPT",
                   help="--latent: what the picture shows; the edit moves by PROMPT minus this")
    g.add_argument("--variation", type=float, default=0.0, help="--latent with -n: small moves around the picture")
    _common(g)
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("interpolate", help="frames between two prompts and/or two seeds (PNG strip, GIF or WebP)")
    i.add_argument("prompt_a")
    i.add_argument("prompt_b", nargs="?", default=None)
    i.add_argument("--seed-a", type=_whole(0), default=0)
    i.add_argument("--seed-b", type=_whole(0), default=None)
    i.add_argument("--frames", type=_whole(2, 256), default=8)
    i.add_argument("--truncation", type=float, default=None, help="noise scale (default: the model's)")
    i.add_argument("-o", "--output", default="interpolation.png")
    i.add_argument("--upscale", type=_whole(1, 32), default=1, help="nearest-neighbour enlargement factor (1-32)")
    _common(i)
    i.set_defaults(func=cmd_interpolate)

    ex = sub.add_parser("export", help="a model as a .zip of its pipeline folder, or its generator as ONNX (--onnx)")
    ex.add_argument("--onnx", action="store_true", help="ONNX generator, checked against torch with onnxruntime")
    ex.add_argument("-o", "--output", required=True)
    _common(ex)
    ex.set_defaults(func=cmd_export)

    av = sub.add_parser("average", help="interpolate the generators of a model and a continuation of it (WiSE-FT)")
    av.add_argument("base", help="model name or folder, e.g. emoji-64-v2")
    av.add_argument("tuned", help="a model trained from BASE (--init or --resume), name or folder")
    av.add_argument("--weight", type=float, default=0.5, help="share of TUNED, 0..1 (default 0.5)")
    av.add_argument("-o", "--output", required=True, help="model folder to write (replaced atomically)")
    av.add_argument("--seed", type=int, default=0,
                    help="TUNED's training --seed, used when TUNED was trained wider (--g-channels) than BASE (default 0)")
    av.set_defaults(func=cmd_average)

    sh = sub.add_parser("sheet", help="render a labelled prompt × seed sheet (PNG) to judge a model by eye")
    sh.add_argument("-o", "--output", default="prompt-sheet.png")
    sh.add_argument("--prompts", default=None, help="prompts separated by '|' (default: the --set)")
    sh.add_argument("--set", choices=sorted(PROMPT_SETS), default="categories",
                    help="24 prompts: 'categories' (across emoji categories, with paraphrases) or 'objects' "
                         "(objects, animals and faces, to see what seeds change: use --seeds 0 1 2 3 4 5)")
    sh.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    sh.add_argument("--style", default=None, help="one of the model's styles (default: any: seeds choose)")
    sh.add_argument("--truncation", type=float, default=None, help="noise scale (default: the model's)")
    _common(sh)
    sh.set_defaults(func=cmd_sheet)

    inv = sub.add_parser("invert", help="put a picture into the model: a latent file that generate --latent edits")
    inv.add_argument("picture", help="PNG, JPEG, WebP, GIF (first frame), … any size (the centre square is used)")
    inv.add_argument("-o", "--output", default="latent.safetensors")
    inv.add_argument("--prompt", default=None, help="what the picture shows (a better start than the encoder's)")
    inv.add_argument("--steps", type=_whole(0, 2000), default=60, help="refinement steps (default 60)")
    inv.add_argument("--preview", default=None, metavar="PNG", help="also write the picture beside its redrawing")
    inv.add_argument("--upscale", type=_whole(1, 32), default=4)
    _common(inv)
    inv.set_defaults(func=cmd_invert)

    en = sub.add_parser("encoder", help="train a model's inversion encoder (its first guess for `invert`)")
    en.add_argument("model", nargs="?", default=None, help="model name under weights/ or a folder (default: shipped)")
    en.add_argument("--data", required=True, help="captioned pictures whose captions the encoder practises on")
    en.add_argument("--minutes", type=float, default=10.0)
    en.add_argument("--device", default=None)
    en.add_argument("--threads", type=int, default=None)
    en.set_defaults(func=cmd_encoder)

    v = sub.add_parser("video", help="a smooth walk as MP4 or animated WebP: between prompts, around seeds, "
                                      "or along a direction slider")
    v.add_argument("prompts", nargs="+", metavar="PROMPT",
                   help="two or more: a walk from each to the next; one: a loop around seeds (or --direction)")
    v.add_argument("-o", "--output", default="walk.mp4", help="walk.mp4 (H.264) or walk.webp (animated)")
    v.add_argument("--seed", type=_whole(0), default=0)
    v.add_argument("--seeds", type=_whole(0), nargs="+", default=None,
                   help="one prompt: the seeds the loop goes through (default: SEED … SEED+3)")
    v.add_argument("--direction", type=_whole(0), default=None, help="one prompt: sweep this direction slider")
    v.add_argument("--amount", type=float, default=2.0, help="--direction: how far (in standard deviations)")
    v.add_argument("--seconds", type=float, default=1.5, help="seconds per prompt or seed (the sweep's length)")
    v.add_argument("--fps", type=_whole(1, 60), default=24)
    v.add_argument("--size", type=_whole(16, 1024), default=256, help="frame size in pixels (crisp enlargement)")
    v.add_argument("--loop", action="store_true", help="a walk returns to its first prompt")
    v.add_argument("--truncation", type=float, default=None)
    v.add_argument("--style", default=None)
    _common(v)
    v.set_defaults(func=cmd_video)

    di = sub.add_parser("directions", help="find a model's direction sliders (SeFa) and save them in its folder")
    di.add_argument("model", nargs="?", default=None, help="model name under weights/ or a folder (default: shipped)")
    di.add_argument("--device", default=None)
    di.add_argument("--threads", type=int, default=None)
    di.add_argument("--count", type=_whole(1, 64), default=8, help="how many sliders (default 8)")
    di.add_argument("--names", default=None, metavar="A|B|…",
                    help="instead: rename the model's sliders (one name per slider, separated by '|')")
    di.add_argument("--sheet", default=None, metavar="PNG", help="also render each slider's sweep on a few prompts")
    di.add_argument("--prompts", default=None, help="prompts for --sheet, separated by '|'")
    di.add_argument("--evaluator", default=None, help="evaluator folder (default: weights/evaluator)")
    di.add_argument("--no-eval", action="store_true", help="skip measuring recognition with the evaluator")
    di.set_defaults(func=cmd_directions)

    f = sub.add_parser("info", help="device, model, text encoder and versions")
    _common(f)
    f.set_defaults(func=cmd_info)

    t = sub.add_parser("train", help="train or fine-tune on captioned images (folder or .zip)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_recipes_epilog())
    t.add_argument("--data", required=True, help="folder or .zip: metadata.jsonl, captions.csv or .txt per image")
    t.add_argument("--out", required=True, help="model folder to write, e.g. weights/my-model")
    t.add_argument("--recipe", default=None, metavar="NAME|PATH",
                   help="settings to start from: a shipped recipe (below) or a .toml file (default: fine-tune with "
                        "--init, else from-scratch)")
    t.add_argument("--init", default=None, help="fine-tune (or grow) this model: a name under weights/ or a folder")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    t.add_argument("--run-dir", default=None, help="checkpoints, stats.jsonl and samples (default: runs/<name>)")
    t.add_argument("--steps", type=_whole(1), default=None, help="steps of the whole run (split between stages)")
    t.add_argument("--batch-size", type=_whole(2), default=None)
    t.add_argument("--lr-g", type=float, default=None, help="generator learning rate")
    t.add_argument("--lr-d", type=float, default=None, help="discriminator learning rate")
    t.add_argument("--encoder", default=None, metavar="NAME_OR_PATH",
                   help="new models: the text encoder, 'minilm' (default, bundled) or any transformers encoder by hub "
                        "name, local folder or name under weights/encoders/")
    t.add_argument("--resolution", type=int, choices=[32, 64, 128], default=None,
                   help="image size; with --init: grow the model to it")
    t.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=None,
                   help="auto (default): bf16 where this device runs it fast, else fp32")
    t.add_argument("--device", default=None)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="any other TrainConfig setting, e.g. --set balance_by=base --set keep=0 "
                        "--set g_channels=[256,192,128,96,32] (repeatable)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    t.add_argument("--progress-every", type=_whole(1), default=60, metavar="SECONDS",
                   help="when the output is not a terminal (a log file): a progress line every SECONDS (default 60)")
    t.set_defaults(func=cmd_train)

    ap = sub.add_parser("app", help="launch the studio in the browser (Gradio; what `python app.py` does)")
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    ap.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                    help="require a login (a training job then belongs to the login, on any browser)")
    ap.add_argument("--device", default=None, help="auto | cuda | mps | cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads per request (default: every core, one while a job trains)")
    ap.set_defaults(func=cmd_app)

    fe = sub.add_parser("features", help="pretrain a frozen feature network for --feature-critic (minutes on CPU)")
    fe.add_argument("--data", required=True, help="training images (folder or .zip; metadata 'base' = concept)")
    fe.add_argument("--out", required=True)
    fe.add_argument("--minutes", type=float, default=6.0)
    fe.add_argument("--batch-size", type=int, default=64)
    fe.add_argument("--threads", type=int, default=None)
    fe.set_defaults(func=cmd_features)

    d = sub.add_parser("data", help="build a training dataset")
    dsub = d.add_subparsers(dest="dataset", required=True)
    de = dsub.add_parser("emoji", help="64-px emoji with captions from the emoji-datasource npm packages (needs npm)")
    de.add_argument("--out", default=EMOJI_DATA)
    de.add_argument("--vendors", nargs="+", default=list(ALL_SOURCES),
                    help="image sets (default: all five): google twitter (PNG), fluent openmoji emojione (SVG)")
    de.add_argument("--test-fraction", type=float, default=0.05, help="held-out share of base emoji")
    de.add_argument("--seed", type=int, default=0)
    de.add_argument("--resolution", type=int, default=64)
    de.add_argument("--no-colour-captions", dest="colour_captions", action="store_false",
                    help="leave out the caption with each image's drawn colour ('a yellow grinning face')")
    de.set_defaults(func=cmd_data_emoji)

    b = sub.add_parser("bench", help="generation (default) or --train speed benchmark (one JSON line)")
    b.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--train", action="store_true", help="time the training loop instead")
    b.add_argument("--peer", action="store_true",
                   help="instead: against DF-GAN's 64-px generator, interleaved, at --batch-size (use 16)")
    b.add_argument("--steps", type=int, default=30)
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="with --train: time NCHW convolutions (the trainer's default is NHWC)")
    _common(b)
    b.set_defaults(func=cmd_bench)

    ev = sub.add_parser("eval", help="offline metrics (FD, R-precision, diversity) against real held-out images")
    ev.add_argument("model", nargs="*", default=[],
                    help="model names under weights/ or folders (default: shipped); several: side by side")
    ev.add_argument("--data", default=EMOJI_DATA, help="dataset root with train/ and test/, or one image folder")
    ev.add_argument("--split", choices=["test", "train"], default="test", help="held-out concepts or (subsampled) train")
    ev.add_argument("--evaluator", default=None, help="evaluator folder (default: weights/evaluator)")
    ev.add_argument("--n", type=_whole(2), default=None,
                    help="images (= prompts) to evaluate (default: all, at most 1000)")
    ev.add_argument("--seed", type=_whole(0), nargs="+", default=[0],
                    help="images, captions and noise drawn with this seed; several (e.g. 0 1 2): each metric per "
                         "seed and its mean")
    ev.add_argument("--truncation", type=float, default=None,
                    help="noise scale for every model (default: each model's own, as generate and the app draw)")
    ev.add_argument("--diversity-prompts", type=int, default=32)
    ev.add_argument("--diversity-seeds", type=int, default=8)
    ev.add_argument("--by", default=None, metavar="FIELD",
                    help="also R-precision per concept within each value of this metadata field (emoji: category)")
    ev.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    ev.add_argument("--device", default=None)
    ev.add_argument("--threads", type=int, default=None)
    ev.set_defaults(func=cmd_eval)

    te = sub.add_parser("evaluator", help="train the evaluator network that `t2igan eval` measures with")
    te.add_argument("--data", required=True, help="training images (the dataset's train split), folder or .zip")
    te.add_argument("--out", default=None, help="evaluator folder (default: weights/evaluator, where eval looks)")
    te.add_argument("--val", default=None, help=f"held-out images for the reported ceiling, e.g. {EMOJI_DATA}/test")
    te.add_argument("--minutes", type=float, default=None, help="time budget (default: --steps, else 2000 steps)")
    te.add_argument("--steps", type=int, default=None)
    te.add_argument("--batch-size", type=int, default=128)
    te.add_argument("--lr", type=float, default=2e-3)
    te.add_argument("--resolution", type=int, default=64)
    te.add_argument("--seed", type=int, default=0)
    te.add_argument("--quiet", action="store_true")
    te.add_argument("--device", default=None)
    te.add_argument("--threads", type=int, default=None)
    te.set_defaults(func=cmd_evaluator)
    return parser


def _no_loading_bars() -> None:
    """The command's own output only: no "Loading pipeline components / weights" bars from diffusers/transformers."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # every command draws or trains: reuse freed memory instead of faulting it in again
    if args.command != "data":
        _no_loading_bars()
    try:
        return args.func(args)
    except (NoModelError, EncoderNotAvailable, CheckpointError, TrainingDiverged, ValueError, OSError) as e:
        print(f"t2igan: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("t2igan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
