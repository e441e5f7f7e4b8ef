"""Train tab: upload captioned pictures (or pick the emoji set), fine-tune in the background, watch it learn."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from ..data import DataConfig, DatasetError, load_captioned_images
from ..job import JobError, TrainingJob, active_job
from ..text import DEFAULT_ENCODER
from ..train import CHECKPOINT, KEEP, TrainConfig
from ..uploads import UploadError, stage_uploads
from ..weights import check_name, list_encoders, list_models, weights_dir
from .state import Studio, outputs_dir

SCRATCH = "(new model from scratch)"
EMOJI = "built emoji dataset (data/emoji/train)"
UPLOAD = "my upload"
LOSSES = {"d": "D total", "d_real": "D real", "d_fake": "D fake", "d_mismatch": "D mismatch", "g": "G", "penalty": "MA-GP",
          "keep": "keep (L1 to the base)"}


def emoji_data_dir() -> Path:
    return weights_dir().parent / "data" / "emoji" / "train"


def resolve_data(studio: Studio, source: str, files) -> Path:
    if source == EMOJI:
        path = emoji_data_dir()
        if not path.is_dir():
            raise DatasetError("the emoji dataset is not built yet: run `t2igan data emoji --out data/emoji`")
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
        return (f"✅ **{report.num_pairs} pairs ready** ({report.format}{groups})\n\n```\n{report.summary()}\n```",
                str(path))
    except (DatasetError, UploadError, OSError, ValueError) as e:
        return f"⚠️ {e}", None


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


def encoder_choices(base: str):
    """Re-read weights/encoders/ when the base changes; the encoder can only be chosen for a new model."""
    return gr.update(choices=list_encoders(), interactive=base == SCRATCH,
                     **({} if base == SCRATCH else {"value": DEFAULT_ENCODER}))


def start(studio: Studio, source, files, staged, base, name, steps, batch_size, lr_g, lr_d, augment, keep=KEEP,
          balance_by="", encoder=DEFAULT_ENCODER):
    """Start the background job (one per app); returns the status line."""
    try:
        name = check_name((name or "").strip())
        if (weights_dir() / name).exists():
            raise ValueError(f"a model named '{name}' already exists: choose another name")
        if (outputs_dir() / "runs" / name / CHECKPOINT).exists():  # the trainer never overwrites a run
            raise ValueError(f"outputs/runs/{name} holds an earlier training run of that name: choose another name")
        if active_job() is not None:
            raise JobError("a training job is already running: stop it before starting another")
        data = Path(staged) if staged and source == UPLOAD and Path(staged).exists() else resolve_data(studio, source, files)
        # the job keeps torch's default threads; generation requests use one thread each (ui/state.py). Measured
        # in one process on 2 cores: 4 images in 31 ms p50 while training ran at 1.27 it/s (1.42 alone)
        threads = None
        init = None if base in (None, "", SCRATCH) else base
        encoder = check_encoder(encoder, init)
        config = TrainConfig(
            data=str(data), out=str(weights_dir() / name), run_dir=str(outputs_dir() / "runs" / name),
            init=init, encoder=encoder, steps=int(steps), batch_size=int(batch_size),
            lr_g=float(lr_g), lr_d=float(lr_d), augment=",".join(augment) if augment else "none",
            keep=float(keep or 0) if init else 0.0, balance_by=(balance_by or "").strip() or None,
            log_every=1, sample_every=max(5, int(steps) // 20), checkpoint_every=max(10, int(steps) // 5),
            min_pairs=4)
        studio.job = TrainingJob(config, threads=threads).start()
        return f"▶️ training **{name}**: {int(steps)} steps"
    except (JobError, ValueError, DatasetError, UploadError, OSError) as e:
        return f"⚠️ {e}"


def control(studio: Studio, action: str) -> str:
    job = studio.job
    if job is None:
        return "no training job yet"
    getattr(job, action)()
    return f"{action}: job is {job.status()['state']}"


def poll(studio: Studio, known_models: list[str]):
    """Timer tick: status, loss chart, latest sample grid, log, and the model list when it changed."""
    job = studio.job
    models = list_models()
    dropdown = gr.update(choices=models) if models != known_models else gr.skip()
    if job is None:
        return "No training job yet.", None, None, "", dropdown, models
    s = job.status()
    events = job.events()
    steps = [e for e in events if e["type"] == "step"]
    steps = steps[:: max(1, len(steps) // 400)]  # the chart needs no more than ~400 points per curve
    shown = {k: v for k, v in LOSSES.items() if k != "keep" or any(e.get("keep") for e in steps)}  # keep: fine-tunes only
    rows = [{"step": e["step"], "loss": e[k], "series": label} for e in steps for k, label in shown.items()]
    chart = pd.DataFrame(rows) if rows else None
    samples = [e for e in events if e["type"] == "sample"]
    sample = samples[-1]["path"] if samples else None
    eta = f"{s['eta_s'] / 60:.1f} min" if s.get("eta_s") is not None else "–"
    it_s = f"{s['it_s']:.2f} it/s" if s.get("it_s") else "–"
    line = f"**{s['state']}** · step {s['step']} / {s['total']} · {it_s} · ETA {eta} · model → `{Path(s['out']).name}`"
    if s["error"]:
        line += f"\n\n⚠️ {s['error']}"
    log = "\n".join(e.get("message") or f"{e['type']} {e.get('path', e.get('state', ''))}"
                    for e in events if e["type"] in ("log", "checkpoint", "exported", "state", "error", "done"))[-4000:]
    return line, chart, sample, log, dropdown, models


def status_api(studio: Studio) -> dict:
    """Training status for API clients (gradio_client)."""
    if studio.job is None:
        return {"state": "idle"}
    s = studio.job.status()
    steps = [e for e in studio.job.events() if e["type"] == "step"]
    s["last"] = {k: steps[-1][k] for k in LOSSES} if steps else None
    s["events"] = len(studio.job.events())
    return s


def build(studio: Studio, model_dropdown: gr.Dropdown) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            source = gr.Radio([UPLOAD, EMOJI], value=UPLOAD, label="Data")
            files = gr.File(label="A .zip, or images + metadata.jsonl / captions.csv / .txt captions",
                            file_count="multiple", elem_id="train-files")
            check = gr.Button("Check data", elem_id="check-data")
            report = gr.Markdown(elem_id="data-report")
        with gr.Column(scale=1):
            models = list_models()
            base = gr.Dropdown([*models, SCRATCH], value=models[0] if models else SCRATCH, label="Start from",
                               elem_id="train-base")
            name = gr.Textbox(label="Save as (letters, digits, - and _)", value="my-model", elem_id="model-name")
            steps = gr.Slider(10, 5000, value=300, step=10, label="Steps", elem_id="steps")
            batch = gr.Slider(2, 64, value=16, step=2, label="Batch size", elem_id="batch")
            with gr.Row():
                lr_g = gr.Number(value=1e-4, label="G learning rate")
                lr_d = gr.Number(value=2e-4, label="D learning rate")
            augment = gr.CheckboxGroup(["translation", "cutout", "color"], value=["translation", "cutout"],
                                       label="DiffAugment")
            keep = gr.Slider(0, 100, value=KEEP, step=1, elem_id="keep",
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
        sample = gr.Image(label="Latest samples (EMA generator; rows = prompts, columns = seeds)", type="filepath",
                          elem_id="train-sample", elem_classes=["pixelated"])
    log = gr.Textbox(label="Log", lines=6, max_lines=12, elem_id="train-log")
    known = gr.State(list_models())

    check.click(lambda *a: check_data(studio, *a), [source, files, base, balance], [report, staged],
                api_name="check_data")
    base.change(encoder_choices, base, encoder, api_visibility="private")
    go.click(lambda *a: start(studio, *a),
             [source, files, staged, base, name, steps, batch, lr_g, lr_d, augment, keep, balance, encoder],
             message, api_name="train_start")
    pause.click(lambda: control(studio, "pause"), None, message, api_name="train_pause")
    resume.click(lambda: control(studio, "resume"), None, message, api_name="train_resume")
    stop.click(lambda: control(studio, "stop"), None, message, api_name="train_stop")
    status_json = gr.JSON(visible=False)
    gr.Button(visible=False).click(lambda: status_api(studio), None, status_json, api_name="train_status")
    timer = gr.Timer(1.0)
    timer.tick(lambda k: poll(studio, k), known, [status, chart, sample, log, model_dropdown, known],
               api_visibility="private", show_progress="hidden", concurrency_id="poll", concurrency_limit=4)
