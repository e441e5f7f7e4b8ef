"""Reliability and security, counted: the bad-input corpus through the launched app, every name field against path
traversal, kill -9 during training (slow), and generation load while a training job runs (slow).

Each test reports one JSON line with what it tried and measured, shown in pytest's closing summary under
"measured figures"; the README's "Reliability" section quotes them.
"""
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

import corpus
from helpers import free_port, gen, make_shapes_folder
from t2igan.weights import DEFAULT_MODEL

REPO = Path(__file__).resolve().parent.parent


def report(name: str, **figures) -> None:
    """Print the figures now (-s) and again in pytest's closing summary ("measured figures")."""
    from conftest import FIGURES

    FIGURES.append({"test": name, **figures})
    print(f"\nRELIABILITY {json.dumps(FIGURES[-1])}")


def snapshot(*roots: Path) -> set[str]:
    return {str(p) for r in roots if r.exists() for p in r.rglob("*")}


def still_generates(client) -> bool:
    images, status = gen(client, n=1)
    return len(images) == 1 and "⚠️" not in status


def test_bad_input_corpus_through_the_app(app_env, tmp_path):
    """Every corpus upload gets a report that names the offending file/line/field; nothing lands outside outputs/;
    the app generates after each one."""
    client, root = app_env["client"], app_env["root"]
    cases = corpus.build(tmp_path / "corpus")
    escape_targets = [Path("/tmp") / corpus.ESCAPE, root / corpus.ESCAPE, root.parent / corpus.ESCAPE,
                      Path.cwd() / corpus.ESCAPE, app_env["root"] / "outputs" / corpus.ESCAPE]
    before = snapshot(root) - snapshot(root / "outputs")
    handled, failures = 0, []
    for case in cases:
        answer = client.predict("my upload", [handle_file(str(p)) for p in case.files], "tiny",
                                api_name="/check_data")
        verdict = f"{case.accepted} pairs ready" in answer if case.accepted else answer.startswith("⚠️")
        named = all(e in answer for e in case.expect)
        if verdict and named and still_generates(client):
            handled += 1
        else:
            failures.append((case.name, answer[:400]))
    assert not [p for p in escape_targets if p.exists()], "a zip member escaped"
    assert any((root / "outputs" / "gradio-cache").rglob("upload.zip")), "Gradio's upload copies stay in outputs/"
    assert snapshot(root) - snapshot(root / "outputs") == before, "files written outside outputs/"
    report("bad-input corpus (uploads)", tried=len(cases), handled=handled)
    assert not failures, failures


# prompts and slider values through /generate: (what, kwargs, words the answer must contain)
BAD_VALUES = [
    ("empty prompt", dict(prompt=""), "prompt is empty"),
    ("whitespace prompt", dict(prompt="   \n\t "), "prompt is empty"),
    ("100,000-character prompt (cut, still answered)", dict(prompt="pizza " * 16_667), None),
    ("binary prompt (NUL and control bytes)", dict(prompt="\x00\x01\x02\xff\ufffe pizza \x7f"), None),
    ("negative image count", dict(n=-3), "between 1 and"),
    ("zero images", dict(n=0), "between 1 and"),
    ("image count 10^9", dict(n=10**9), "between 1 and"),
    ("fractional image count", dict(n=2.5), "whole number"),
    ("truncation 99", dict(truncation=99.0), "truncation"),
    ("negative truncation", dict(truncation=-1.0), "truncation"),
    ("seed -5", dict(seed=-5), "seed"),
    ("seed 2^64", dict(seed=2**64), "seed"),
    ("variation -1", dict(variation=-1.0), "variation"),
    ("variation 1e9", dict(variation=1e9), "variation"),
    ("mix weight 7", dict(mix="a blue square", w=7.0), "weight"),
    ("model name ../../etc", dict(model="../../etc"), "invalid model name"),
    ("model name /etc/passwd", dict(model="/etc/passwd"), "invalid model name"),
    ("model name ..\\..\\windows", dict(model="..\\..\\windows"), "invalid model name"),
    ("model name that does not exist", dict(model="nope"), "not found"),
]


def test_bad_prompts_and_slider_values(app_env):
    """Refused by the library with a ⚠️ status naming the field (the handler sees every value as sent: no bare
    Gradio error); huge and binary prompts are answered. The app keeps working after each."""
    client = app_env["client"]
    handled, failures = 0, []
    for what, kwargs, words in BAD_VALUES:
        images, status = gen(client, **kwargs)
        ok = (images == [] and words in status) if words else (len(images) == 4 and "⚠️" not in status)
        if ok and still_generates(client):
            handled += 1
        else:
            failures.append((what, status[:300]))
    report("bad-input corpus (prompts and values)", tried=len(BAD_VALUES), handled=handled)
    assert not failures, failures


NAME_ATTACKS = ["../../etc/passwd", "/etc", "..", "tiny/../../..", "..\\..\\etc", "%2e%2e%2fetc", "tiny\x00.txt"]


def test_path_traversal_through_every_name_field(app_env, tmp_path):
    """Every endpoint that takes a model name or writes a file refuses names that are paths."""
    client, root = app_env["client"], app_env["root"]
    endpoints = {
        "/generate": lambda name: gen(client, model=name)[1],
        "/interpolate": lambda name: client.predict("a", "b", name, 0, 1, 4, 0.8, api_name="/interpolate")[2],
        "/sample_sheet": lambda name: client.predict(name, api_name="/sample_sheet")[1],
        "/export_zip": lambda name: client.predict(name, api_name="/export_zip")[1],
        "/export_onnx": lambda name: client.predict(name, api_name="/export_onnx")[1],
        "/check_data (base model)": lambda name: client.predict("my upload", [handle_file(str(zipped))], name,
                                                                api_name="/check_data"),
        "/train_start (new name)": lambda name: client.predict("my upload", [handle_file(str(zipped))], "tiny", name,
                                                               10, 4, 1e-4, 2e-4, [], api_name="/train_start"),
        "/train_start (base model)": lambda name: client.predict("my upload", [handle_file(str(zipped))], name,
                                                                 "fresh-name", 10, 4, 1e-4, 2e-4, [],
                                                                 api_name="/train_start"),
    }
    import zipfile

    data = make_shapes_folder(tmp_path / "shapes")
    zipped = tmp_path / "shapes.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in data.iterdir():
            zf.write(p, p.name)
    outside = snapshot(root / "weights")
    tried, refused, failures = 0, 0, []
    for endpoint, call in endpoints.items():
        for name in NAME_ATTACKS:
            tried += 1
            try:
                answer = call(name)
            except AppError as e:  # a dropdown without custom values: gradio itself refuses values not offered
                answer = f"⚠️ {e}" if "not in the list of choices" in str(e) else f"unexpected {e}"
            if "⚠️" in answer and any(w in answer for w in ("invalid model name", "not found", "list of choices")):
                refused += 1
            else:
                failures.append((endpoint, name, answer[:200]))
    assert client.predict(api_name="/train_status")["state"] == "idle", "no job was started"
    assert snapshot(root / "weights") == outside, "nothing was written under weights/"
    report("path traversal through name fields", endpoints=len(endpoints), tried=tried, refused=refused)
    assert not failures, failures


# --------------------------------------------------------------------------------------------------- fault injection
TRAINER = """
import json, signal, sys
from t2igan.training import TrainConfig, train
# Ctrl-C stops the last run: make sure it is not ignored, as it is in children of a shell's background job (`cmd &`)
signal.signal(signal.SIGINT, signal.default_int_handler)
cfg = TrainConfig(data=sys.argv[1], out=sys.argv[2], run_dir=sys.argv[3], resume=True, steps=10**6, resolution=32,
                  g_channels=[32, 32, 16, 8], d_channels=[8, 16, 16, 32], z_dim=16, cond_dim=32, batch_size=4,
                  log_every=1, sample_every=10**6, checkpoint_every=1, precision="fp32", threads=1)
def emit(e):
    if e["type"] in ("start", "checkpoint", "saved"):
        print(json.dumps({"type": e["type"], "step": e.get("step")}), flush=True)
train(cfg, progress=emit)
"""


@pytest.mark.slow
def test_kill9_during_training_then_resume(tmp_path):
    """20 × kill -9: ten at a random moment, ten the instant a checkpoint or model-export temp file appears (both are
    written every step): the last checkpoint always loads, its step never goes back, the exported model always loads,
    and killed writers' temp files are cleaned up by the next run."""
    from t2igan import T2IGANPipeline
    from t2igan.checkpoint import load_checkpoint
    from t2igan.training import CHECKPOINT
    from t2igan.weights import resolve_model

    data = make_shapes_folder(tmp_path / "shapes")
    out, run = tmp_path / "weights" / "killed", tmp_path / "run"
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    rng = random.Random(0)
    rounds, last_step, mid_write, resumed_from = 20, 0, 0, []
    for round_ in range(rounds):
        proc = subprocess.Popen([sys.executable, str(script), str(data), str(out), str(run)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)
        started = proc.stdout.readline()  # blocks until the model and data are loaded
        assert '"start"' in started, started
        resumed_from.append(json.loads(started)["step"])
        if round_ % 2:  # odd rounds: the moment a checkpoint or model temp file appears
            deadline = time.time() + 10
            while time.time() < deadline and not (list(run.glob(".*tmp-*")) or list(out.parent.glob(".*tmp-*"))):
                time.sleep(0.0005)
        else:  # even rounds: any moment
            time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        leftovers = [p for p in list(run.glob(".*tmp-*")) + list(out.parent.glob(".*")) if p.exists()]
        mid_write += bool(leftovers)
        state = load_checkpoint(run / CHECKPOINT)  # raises if damaged
        assert state["step"] >= last_step, (state["step"], last_step)
        last_step = state["step"]
        T2IGANPipeline.from_pretrained(resolve_model(str(out)))  # the exported model is whole
    assert resumed_from == sorted(resumed_from) and resumed_from[-1] > 0
    # a last, clean run: resumes from the checkpoint, trains, and removes the killed writers' leftovers
    proc = subprocess.Popen([sys.executable, str(script), str(data), str(out), str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)
    lines = [proc.stdout.readline() for _ in range(4)]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert json.loads(lines[0])["step"] == last_step and any('"checkpoint"' in l for l in lines)
    assert not list(run.glob(".*tmp-*")) and not list(out.parent.glob(".*")), "stale temp files were removed"
    report("kill -9 during training", kills=rounds, killed_mid_write=mid_write, last_step=last_step,
           checkpoint_loads=rounds, model_loads=rounds)


# --------------------------------------------------------------------------------------------------- load
SHIPPED = REPO / "weights" / DEFAULT_MODEL


@contextmanager
def app_process(root: Path, copy_models: tuple[Path, ...] = ()):
    """`python app.py` on a free port in a subprocess, over its own weights/ (tiny + copies) and outputs/."""
    import shutil

    from gradio_client import Client

    from t2igan import Discriminator, Generator, T2IGANPipeline

    from conftest import TINY_D, TINY_G

    weights = root / "weights"
    T2IGANPipeline(generator=Generator(**TINY_G), discriminator=Discriminator(**TINY_D)).save_pretrained(weights / "tiny")
    for folder in copy_models:
        shutil.copytree(folder, weights / folder.name)
    port = free_port()
    env = {**os.environ, "T2IGAN_WEIGHTS": str(weights), "T2IGAN_OUTPUTS": str(root / "outputs")}
    log = open(root / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.time() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError((root / "app.log").read_text()[-3000:]) from None
                time.sleep(1)
        yield {"client": client, "port": port, "root": root, "weights": weights}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_generation_load_while_training(tmp_path):
    """20 concurrent calls, then 200 calls spread over a minute, against `app.py` (its own process, as users run it)
    while it fine-tunes the shipped model (the tiny one if weights/ is absent): every call is answered; p50/p95
    latency and the training step rate with and without the load are printed."""
    import zipfile

    from gradio_client import Client

    shipped = (SHIPPED / "model_index.json").is_file()
    model = SHIPPED.name if shipped else "tiny"
    with app_process(tmp_path / "app", copy_models=(SHIPPED,) if shipped else ()) as env:
        client = env["client"]
        data = make_shapes_folder(tmp_path / "shapes", copies=4, size=64)
        zipped = tmp_path / "shapes.zip"
        with zipfile.ZipFile(zipped, "w") as zf:
            for p in data.iterdir():
                zf.write(p, p.name)
        clients = [Client(f"http://127.0.0.1:{env['port']}/", verbose=False) for _ in range(20)]  # 20 users
        msg = client.predict("my upload", [handle_file(str(zipped))], model, "under-load", 5000, 8, 1e-4, 2e-4,
                             ["translation"], api_name="/train_start")
        assert "training" in msg, msg

        def step_rate(seconds: float) -> float:
            a = client.predict(api_name="/train_status")
            time.sleep(seconds)
            b = client.predict(api_name="/train_status")
            return (b["step"] - a["step"]) / seconds

        while client.predict(api_name="/train_status")["step"] < 5:
            time.sleep(0.5)
        rate_alone = step_rate(15)

        inside = []  # the pipeline's own time per call, from the status line ("4 images in 35 ms · ...")

        def one(i: int) -> float:
            t0 = time.perf_counter()
            images, status = gen(clients[i % len(clients)], prompt=f"a red apple {i}", model=model, seed=i)
            assert len(images) == 4, status
            inside.append(float(status.split(" images in ")[1].split(" ms")[0]))
            return (time.perf_counter() - t0) * 1000

        with ThreadPoolExecutor(20) as pool:
            concurrent = list(pool.map(one, range(20)))
        burst, errors, rate_box = [], [], {}
        watcher = threading.Thread(target=lambda: rate_box.setdefault("rate", step_rate(55)))
        watcher.start()
        with ThreadPoolExecutor(20) as pool:
            futures = []
            for i in range(200):
                futures.append(pool.submit(one, 1000 + i))
                time.sleep(60 / 200)
            for f in futures:
                try:
                    burst.append(f.result(timeout=120))
                except Exception as e:  # counted, then asserted below
                    errors.append(repr(e)[:200])
        watcher.join()
        client.predict(api_name="/train_stop")
        deadline = time.time() + 60
        while client.predict(api_name="/train_status")["state"] == "stopping" and time.time() < deadline:
            time.sleep(0.5)
        state = client.predict(api_name="/train_status")["state"]

    def pct(xs, q):
        return round(sorted(xs)[max(0, math.ceil(q * len(xs)) - 1)], 1)

    report("generation load while training", model=model, images_per_call=4, fine_tune_batch=8,
           concurrent_calls=len(concurrent), concurrent_p50_ms=pct(concurrent, .5),
           concurrent_p95_ms=pct(concurrent, .95), burst_calls=200, burst_answered=len(burst),
           burst_p50_ms=pct(burst, .5) if burst else None, burst_p95_ms=pct(burst, .95) if burst else None,
           pipeline_p50_ms=pct(inside, .5), pipeline_p95_ms=pct(inside, .95), train_it_s_alone=round(rate_alone, 2), train_it_s_under_burst=round(rate_box["rate"], 2),
           cpu_cores=os.cpu_count())
    assert len(concurrent) == 20 and len(burst) == 200 and not errors, errors[:3]
    assert state == "stopped", state
    assert statistics.median(burst) < 10_000
