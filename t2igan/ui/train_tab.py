"""Train tab: upload captioned pictures (or pick the emoji set), fine-tune in the background, watch it learn."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import Image

from ..data import DataConfig, DatasetError, load_captioned_images
from ..job import JobError, TrainingJob, active_job
from ..text import DEFAULT_ENCODER
from ..paths import EMOJI_DATA
from ..pipeline import finite_number, whole_number
from ..training import CHECKPOINT, KEEP, TrainConfig
from ..training.recipes import DEFAULT_FINE_TUNE, DEFAULT_NEW, configs_from_recipe, load_recipe
from ..uploads import UploadError, stage_uploads
from ..weights import check_new_name, list_encoders, list_models, weights_dir
from .inputs import number, slider
from .messages import public, refusal
from .state import Studio, browser_id, outputs_dir, visitor

SCRATCH = "(new model from scratch)"
EMOJI = f"built emoji dataset ({EMOJI_DATA}/train)"
UPLOAD = "my upload"
MAX_STEPS, MAX_BATCH, MAX_SLIDER_STEPS = 100_000, 1024, 5000
AUGMENT = ["translation", "cutout"]  # the form's DiffAugment default
JOB_NICE = 10  # the training job's nice value above the app's (Linux)
LOSSES = {"d": "D total", "d_real": "D real", "d_fake": "D fake", "d_mismatch": "D mismatch", "g": "G", "penalty": "MA-GP",
          "keep": "keep (L1 to the base)"}


def emoji_data_dir() -> Path:
    return weights_dir().parent / EMOJI_DATA / "train"


def resolve_data(studio: Studio, source: str, files) -> Path:
    if source == EMOJI:
        path = emoji_data_dir()
        if not path.is_dir():
            raise DatasetError(f"the emoji dataset is not built yet: run `t2igan data emoji` (it writes {EMOJI_DATA})")
        return path
    paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
    return stage_uploads(paths, outputs_dir() / "uploads")


def check_data(studio: Studio, source: str, files, base: str, balance_by: str = ""):
    """Validate the data now and show the report (accepted pairs, skipped files and why; the groups to balance)."""
    try:
        path = resolve_data(studio, source, files)
        resolution = 64
        if base and base != SCRATCH:
            resolution = studio.pipeline(base).generator.config.resolution
        field = (balance_by or "").strip() or None
        data, report = load_captioned_images(path, DataConfig(resolution=resolution, group_by=field))
        groups = f", balanced by '{field}': {len(set(data.groups))} groups" if field else ""
        return (public(f"✅ **{report.num_pairs} pairs ready** ({report.format}{groups})\n\n```\n{report.summary()}\n```"),
                str(path))
    except (DatasetError, UploadError, OSError, ValueError) as e:
        return refusal("check data", e), None


def check_encoder(choice: str | None, init: str | None) -> str:
    """The text encoder for a new model: one of list_encoders() (never a path from the browser); a fine-tune keeps
    its base's encoder, so the choice must be left at the default there."""
    choice = (choice or DEFAULT_ENCODER).strip()
    available = list_encoders()
    if choice not in available:
        raise ValueError(f"unknown text encoder '{choice}': copy its folder (config.json, tokenizer and safetensors "
                         f"weights) to weights/encoders/<name>/ (available: {', '.join(available)})")
    if init and choice != DEFAULT_ENCODER:
        raise ValueError(f"a fine-tune keeps the text encoder of '{init}': pick '{SCRATCH}' to train on '{choice}'")
    return choice


def recipe_defaults(base: str | None) -> dict:
    """The settings the form starts from: the fine-tune recipe for a base model, from-scratch for a new one (the
    same files the CLI and Python use)."""
    stages = load_recipe(DEFAULT_NEW if base in (None, "", SCRATCH) else DEFAULT_FINE_TUNE)["stages"]
    first = stages[0]
    return {"steps": sum(int(s.get("steps", TrainConfig.steps)) for s in stages),
            "batch_size": first.get("batch_size", TrainConfig.batch_size),
            "lr_g": first.get("lr_g", TrainConfig.lr_g), "lr_d": first.get("lr_d", TrainConfig.lr_d)}


def base_changed(base: str):
    """A new base: re-read weights/encoders/ (the encoder can only be chosen for a new model) and start the form
    from that kind of run's recipe."""
    d = recipe_defaults(base)
    encoder = gr.update(choices=list_encoders(), interactive=base == SCRATCH,
                        **({} if base == SCRATCH else {"value": DEFAULT_ENCODER}))
    return (encoder, gr.update(value=min(d["steps"], MAX_SLIDER_STEPS)), gr.update(value=d["batch_size"]),
            gr.update(value=d["lr_g"]), gr.update(value=d["lr_d"]))


def job_configs(data: Path, init: str | None, out: Path, run_dir: Path, steps: int, batch_size: int, lr_g: float,
                lr_d: float, augment: list[str], keep: float = KEEP, balance_by: str = "",
                encoder: str = DEFAULT_ENCODER) -> list[TrainConfig]:
    """The run the Train tab starts from its form (benchmarks/fine_tune.py times the same one): the fine-tune
    recipe from a base model (`init`, a name under weights/), from-scratch without one, with the form's values."""
    return configs_from_recipe(
        DEFAULT_FINE_TUNE if init else DEFAULT_NEW, data=str(data), out=str(out), run_dir=str(run_dir), init=init,
        encoder=encoder, steps=steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d,
        augment=",".join(augment) if augment else "none", balance_by=(balance_by or "").strip() or None,
        log_every=1, sample_every=max(5, steps // 20), checkpoint_every=max(10, steps // 5), min_pairs=4,
        **({"keep": keep} if init else {}))


def start(studio: Studio, source, files, staged, base, name, steps, batch_size, lr_g, lr_d, augment, keep=KEEP,
          balance_by="", encoder=DEFAULT_ENCODER, who: str = "local"):
    """Start the background job (one per app) for visitor `who`; returns the status line."""
    try:
        name = check_new_name((name or "").strip())
        runs = outputs_dir() / "runs"
        if runs.is_dir() and any(p.name.lower() == name.lower() and any(p.rglob(CHECKPOINT))
                                 for p in runs.iterdir()):  # the trainer never overwrites a run (or its stages)
            raise ValueError(f"outputs/runs/{name} holds an earlier training run of that name: choose another name")
        if active_job() is not None:
            raise JobError("a training job is already running: wait for it to end before starting another")
        steps = whole_number(steps, "steps", 1, MAX_STEPS)
        batch_size = whole_number(batch_size, "batch size", 1, MAX_BATCH)
        lr_g, lr_d = finite_number(lr_g, "G learning rate", 0.0, 1.0), finite_number(lr_d, "D learning rate", 0.0, 1.0)
        keep = finite_number(keep or 0, "keep", 0.0, 1000.0)
        data = Path(staged) if staged and source == UPLOAD and Path(staged).exists() else resolve_data(studio, source, files)
        # the job keeps torch's default threads at a lower CPU priority, so that the app's requests (one thread
        # each while it runs, ui/state.py) and the visitor's browser get the cores first
        init = None if base in (None, "", SCRATCH) else studio.model_name(base)  # a name under weights/, never a path
        configs = job_configs(data, init, weights_dir() / name, runs / name, steps, batch_size, lr_g, lr_d, augment,
                              keep, balance_by, check_encoder(encoder, init))
        studio.start_job(TrainingJob(configs, nice=JOB_NICE), who)
        return f"▶️ training **{name}**: {steps} steps"
    except (JobError, ValueError, DatasetError, UploadError, OSError) as e:
        return refusal("train start", e)


def control(studio: Studio, action: str, who: str = "local") -> str:
    """Pause, resume or stop the job: only the visitor who started it may."""
    job = studio.job
    if job is None:
        return "no training job yet"
    if not studio.owns_job(who):
        return refusal(f"train {action}", "this training job was started by another visitor: you can see its "
                                          "progress, not pause, resume or stop it")
    getattr(job, action)()
    return f"{action}: job is {job.status()['state']}"


def _progress_line(s: dict) -> str:
    it_s = f"{s['it_s']:.2f} it/s" if s.get("it_s") else "–"
    eta = f"{s['eta_s'] / 60:.1f} min" if s.get("eta_s") is not None else "–"
    eta = f" · ETA {eta}" if s["state"] in ("running", "paused") else ""  # a finished job has none left
    return f"**{s['state']}** · step {s['step']} / {s['total']} · {it_s}{eta} · model → `{Path(s['out']).name}`"


def poll(studio: Studio, known_models: list[str], shown_sample: str | None, who: str = "local"):
    """Timer tick: status, loss chart, latest sample grid, log, the model list when it changed, and which sample grid
    this page shows. Another visitor's job shows only its name, step and ETA."""
    job = studio.job
    menus = model_lists(known_models)
    if job is None:
        return "No training job yet.", None, None, "", *menus, None
    s = job.status()
    line = _progress_line(s)
    if not studio.owns_job(who):
        return (line + "\n\n*(started by another visitor: its data, samples and log are theirs)*", None, None, "",
                *menus, None)
    if s["error"]:
        line += f"\n\n⚠️ {public(s['error'])}"
    events = job.events()
    steps = [e for e in events if e["type"] == "step"]
    steps = steps[:: max(1, len(steps) // 400)]  # the chart needs no more than ~400 points per curve
    shown = {k: v for k, v in LOSSES.items() if k != "keep" or any(e.get("keep") for e in steps)}  # keep: fine-tunes only
    rows = [{"step": e["step"], "loss": e[k], "series": label} for e in steps for k, label in shown.items()]
    chart = pd.DataFrame(rows) if rows else None
    samples = [e["path"] for e in events if e["type"] == "sample"]
    # the grid lives in the run folder, which is not served: send the picture itself, and only when it changed
    sample = gr.skip() if not samples or samples[-1] == shown_sample else _read_image(samples[-1])
    log = "\n".join(public(e.get("message") or f"{e['type']} {e.get('path', e.get('state', ''))}")
                    for e in events if e["type"] in ("log", "checkpoint", "saved", "state", "error", "done"))[-4000:]
    return line, chart, sample, log, *menus, samples[-1] if samples else None


def model_lists(known: list[str] | None = None) -> tuple:
    """Page load and timer tick: (Generate's model menu, Train's "Start from" menu, the models under weights/), the
    menus updated only where the list differs from `known` (a model saved or removed since)."""
    models = list_models()
    if models == known:
        return gr.skip(), gr.skip(), models
    return gr.update(choices=models), gr.update(choices=[*models, SCRATCH]), models


def _read_image(path: str):
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError:
        return gr.skip()  # a grid being replaced right now: the next tick shows it


def status_api(studio: Studio, who: str = "local") -> dict:
    """Training status for API clients: anyone sees whether a job runs (its model name, step, ETA); the visitor who
    started it also sees its losses, error and event count."""
    if studio.job is None:
        return {"state": "idle"}
    s = studio.job.status()
    mine = studio.owns_job(who)
    status = {"state": s["state"], "model": Path(s["out"]).name, "step": s["step"], "total": s["total"],
              "it_s": s["it_s"], "eta_s": s["eta_s"], "mine": mine}
    if mine:
        steps = [e for e in studio.job.events() if e["type"] == "step"]
        status.update(error=public(s["error"]) if s["error"] else None,
                      last={k: steps[-1][k] for k in LOSSES} if steps else None, events=len(studio.job.events()))
    return status


def build(studio: Studio, model_dropdown: gr.Dropdown, browser: gr.BrowserState) -> dict:
    """The Train tab; `browser` holds the page's browser id (state.browser_id; outside the tabs, which the page builds
    only when first shown). Returns what the app runs on page load: (function, inputs, outputs)."""
    with gr.Row():
        with gr.Column(scale=2):
            source = gr.Radio([UPLOAD, EMOJI], value=UPLOAD, label="Data")
            files = gr.File(label="A .zip, or images + metadata.jsonl / captions.csv / .txt captions",
                            file_count="multiple", elem_id="train-files")
            check_btn = gr.Button("Check data", elem_id="check-data")
            report = gr.Markdown(elem_id="data-report")
        with gr.Column(scale=1):
            models = list_models()
            start_from = recipe_defaults(models[0] if models else SCRATCH)
            base = gr.Dropdown([*models, SCRATCH], value=models[0] if models else SCRATCH, label="Start from",
                               elem_id="train-base")
            name = gr.Textbox(label="Save as (letters, digits, - and _)", value="my-model", elem_id="model-name")
            steps = slider(10, MAX_SLIDER_STEPS, value=min(start_from["steps"], MAX_SLIDER_STEPS), step=10,
                           label="Steps", elem_id="steps")
            batch = slider(2, 64, value=start_from["batch_size"], step=2, label="Batch size", elem_id="batch")
            with gr.Row():
                lr_g = number(value=start_from["lr_g"], label="G learning rate")
                lr_d = number(value=start_from["lr_d"], label="D learning rate")
            augment = gr.CheckboxGroup(["translation", "cutout", "color"], value=AUGMENT,
                                       label="DiffAugment")
            keep = slider(0, 100, value=KEEP, step=1, elem_id="keep",
                             label="Keep what the base model draws for other prompts (0 = off; not from scratch)")
            balance = gr.Textbox(label="Balance by (optional): a metadata field whose values are drawn equally often, "
                                       "e.g. category", value="", elem_id="balance-by")
            # custom values pass gradio's own check so that encoders added after launch can be named; start() accepts
            # only names that list_encoders() finds under weights/encoders/ at that moment
            encoder = gr.Dropdown(list_encoders(), value=DEFAULT_ENCODER, interactive=base.value == SCRATCH,
                                  allow_custom_value=True,
                                  label="Text encoder (new models only; add others under weights/encoders/)",
                                  elem_id="encoder")
    staged = gr.State(None)
    with gr.Row():
        go = gr.Button("Start", variant="primary", elem_id="train-start")
        pause = gr.Button("Pause", elem_id="train-pause")
        resume = gr.Button("Resume", elem_id="train-resume")
        stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
    message = gr.Markdown(elem_id="train-message")
    status = gr.Markdown("No training job yet.", elem_id="train-status")
    with gr.Row():
        chart = gr.LinePlot(x="step", y="loss", color="series", title="Losses", height=300, elem_id="loss-chart")
        sample = gr.Image(label="Latest samples (EMA generator; each row: two prompts, each across the same seeds)",
                          type="pil", elem_id="train-sample", elem_classes=["pixelated"], height=340)
    log = gr.Textbox(label="Log", lines=6, max_lines=12, elem_id="train-log")
    known = gr.State(list_models())

    shown_sample = gr.State(None)

    def check(source: str, files: list | None, base: str, balance_by: str):
        return check_data(studio, source, files, base, balance_by)

    def train_start(source: str, files: list | None, staged: str | None, base: str, name: str, steps: float,
                    batch_size: float, lr_g: float, lr_d: float, augment: list[str], keep: float, balance_by: str,
                    encoder: str, request: gr.Request, browser: str | None = None):
        # browser: the id the page keeps in its browser (state.browser_id), so a reload finds its job; API clients
        # leave it out and own a job by their session
        return start(studio, source, files, staged, base, name, steps, batch_size, lr_g, lr_d, augment, keep,
                     balance_by, encoder, who=visitor(request, browser))

    def train_pause(request: gr.Request, browser: str | None = None):
        return control(studio, "pause", visitor(request, browser))

    def train_resume(request: gr.Request, browser: str | None = None):
        return control(studio, "resume", visitor(request, browser))

    def train_stop(request: gr.Request, browser: str | None = None):
        return control(studio, "stop", visitor(request, browser))

    def train_status(request: gr.Request) -> dict:
        """Whether a job runs (model, step, total, it_s, eta_s, state; 'mine': started by this session); the
        visitor who started it also gets its last losses and error."""
        return status_api(studio, visitor(request))

    def tick(known: list[str], shown: str | None, browser: str | None, request: gr.Request):
        return poll(studio, known, shown, visitor(request, browser))

    def on_load(stored: str | None):
        return (*model_lists(), browser_id(stored))

    check_btn.click(check, [source, files, base, balance], [report, staged], api_name="check_data")
    base.change(base_changed, base, [encoder, steps, batch, lr_g, lr_d], api_visibility="private")
    go.click(train_start,
             [source, files, staged, base, name, steps, batch, lr_g, lr_d, augment, keep, balance, encoder, browser],
             message, api_name="train_start")
    pause.click(train_pause, browser, message, api_name="train_pause")
    resume.click(train_resume, browser, message, api_name="train_resume")
    stop.click(train_stop, browser, message, api_name="train_stop")
    gr.api(train_status, api_name="train_status")
    timer = gr.Timer(1.0)
    timer.tick(tick, [known, shown_sample, browser],
               [status, chart, sample, log, model_dropdown, base, known, shown_sample],
               api_visibility="private", show_progress="hidden", concurrency_id="poll", concurrency_limit=4)
    return {"load": (on_load, browser, [model_dropdown, base, known, browser])}
