"""One app, several visitors: loads that never collide, fresh weights, private files, no server paths, names, numbers.

The unit tests call the library from several threads; the others drive the launched app with two gradio_client
clients (two Gradio sessions), by keyword.
"""
import json
import re
import shutil
import statistics
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from conftest import TINY_D, TINY_G
from t2igan.ui.train_tab import EMOJI
from helpers import make_shapes_folder, wait_for_job

ORIGINAL_REGISTER_PARAMETER = torch.nn.Module.register_parameter


def save_tiny(folder: Path, seed: int = 0) -> Path:
    from t2igan import Discriminator, Generator, T2IGANPipeline

    torch.manual_seed(seed)
    T2IGANPipeline(generator=Generator(**TINY_G), discriminator=Discriminator(**TINY_D)).save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------- loads in one process
def test_loads_and_builds_from_many_threads_never_collide(tmp_path):
    """Pipelines loaded in three threads while a fourth builds networks and loads the text encoder: every load works,
    every network built has real (CPU) weights, and torch is left unpatched. Before model_lock, loads restored each
    other's `init_empty_weights` patches out of order and every later load failed with 'meta'."""
    from t2igan import Generator
    from t2igan.text import load_encoder_parts
    from t2igan.weights import load_pipeline

    folder = save_tiny(tmp_path / "tiny")
    errors, built = [], []

    def loader():
        for _ in range(4):
            try:
                load_pipeline(str(folder), device="cpu")
            except Exception as e:  # noqa: BLE001 - the test counts every kind of failure
                errors.append(f"load: {e}"[:200])

    def builder():
        for _ in range(12):
            try:
                g = Generator(**TINY_G)
                built.append({p.device.type for p in g.parameters()})
                load_encoder_parts("minilm")
            except Exception as e:  # noqa: BLE001
                errors.append(f"build: {e}"[:200])

    threads = [threading.Thread(target=loader) for _ in range(3)] + [threading.Thread(target=builder)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors[:3]
    assert built and all(devices == {"cpu"} for devices in built), "a network built during a load got meta tensors"
    assert torch.nn.Module.register_parameter is ORIGINAL_REGISTER_PARAMETER
    load_pipeline(str(folder), device="cpu")


def test_a_failed_load_leaves_the_process_able_to_load(tmp_path):
    from t2igan.weights import load_pipeline

    good = save_tiny(tmp_path / "good")
    bad = shutil.copytree(good, tmp_path / "bad")
    weights = next((bad / "generator").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated file: safetensors refuses it mid-load
    with pytest.raises(Exception):
        load_pipeline(str(bad), device="cpu")
    assert torch.nn.Module.register_parameter is ORIGINAL_REGISTER_PARAMETER
    assert load_pipeline(str(good), device="cpu").generator.stem.weight.device.type == "cpu"


def test_pipeline_cache_reloads_a_changed_folder(tmp_path, monkeypatch):
    """The app's cache is keyed by the folder's version, not by name alone: a re-export is picked up at once."""
    from t2igan.ui.state import Studio

    monkeypatch.setenv("T2IGAN_WEIGHTS", str(tmp_path))
    save_tiny(tmp_path / "m", seed=0)
    studio = Studio(device="cpu")
    first = studio.pipeline("m")
    assert studio.pipeline("m") is first, "an unchanged folder is not loaded again"
    save_tiny(tmp_path / "m", seed=1)  # the job's re-export: a new folder swapped in
    second = studio.pipeline("m")
    assert second is not first
    assert not torch.equal(first.generator.stem.weight, second.generator.stem.weight)
    shutil.rmtree(tmp_path / "m")
    save_tiny(tmp_path / "m", seed=2)  # replaced by hand
    assert not torch.equal(second.generator.stem.weight, studio.pipeline("m").generator.stem.weight)


def test_model_names(tmp_path, monkeypatch):
    from t2igan.weights import NoModelError, check_new_name, resolve_model

    monkeypatch.setenv("T2IGAN_WEIGHTS", str(tmp_path))
    save_tiny(tmp_path / "emoji-64")
    for name in ("EMOJI-64", "Emoji-64"):
        with pytest.raises(ValueError, match="differs from the existing 'emoji-64' only in case"):
            check_new_name(name)
    with pytest.raises(ValueError, match="already exists"):
        check_new_name("emoji-64")
    for name in ("con", "NUL", "aux", "com1", "LPT9", "prn"):
        with pytest.raises(ValueError, match="reserved device name on Windows"):
            check_new_name(name)
    assert check_new_name("console") == "console"
    with pytest.raises(NoModelError):  # on macOS and Windows 'EMOJI-64' would open the folder 'emoji-64'
        resolve_model("EMOJI-64", allow_paths=False)


def test_public_messages_hide_server_paths(tmp_path, monkeypatch):
    from t2igan.ui.messages import public

    monkeypatch.setenv("T2IGAN_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("T2IGAN_OUTPUTS", str(tmp_path / "outputs"))
    text = (f"model 'x' not found in {tmp_path / 'weights'} · {tmp_path / 'outputs' / 'uploads' / 'a' / 'tiny.zip'}: "
            f"bad · {tmp_path / 'data' / 'emoji-v2' / 'train'}: 10 pairs · /srv/data/private/set.zip · "
            "see https://example.org/a/b · step 10 / 300 · a/b · C:\\Users\\me\\x.png")
    shown = public(text)
    assert str(tmp_path) not in shown and "/srv" not in shown and "Users" not in shown
    assert "not found in weights" in shown and "· tiny.zip: bad" in shown and "uploads" not in shown
    assert "· data/emoji-v2/train: 10 pairs" in shown and "…/set.zip" in shown
    assert "https://example.org/a/b" in shown and "step 10 / 300" in shown and "a/b" in shown and "…/x.png" in shown


# ------------------------------------------------------------------------------------------- the launched app
def zipped_shapes(tmp_path: Path) -> Path:
    data = make_shapes_folder(tmp_path / "shapes")
    z = tmp_path / "shapes.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in data.iterdir():
            zf.write(p, p.name)
    return z


def start_job(client, z: Path, name: str, steps: int = 10, base: str = "tiny") -> str:
    return client.predict(source="my upload", files=[handle_file(str(z))], base=base, name=name, steps=steps,
                          batch_size=4, lr_g=1e-4, lr_d=2e-4, augment=[], keep=0.0, balance_by="",
                          encoder="minilm", api_name="/train_start")


def generate(client, model: str = "tiny", **kwargs) -> tuple[list, str]:
    args = dict(prompt="a red circle", model=model, seed=3, n=2, truncation=0.8, variation=0.0, mix_prompt="",
                mix_weight=0.5)
    args.update(kwargs)
    return client.predict(**args, api_name="/generate")


def texts(value) -> list[str]:
    """Every string in an API answer, Gradio's own file records (their cache paths) left out."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if "path" in value and ("url" in value or "orig_name" in value or "meta" in value):
            return []
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in texts(v)]
    return []


def test_a_browser_keeps_its_id_across_reloads_and_no_other_has_it():
    """The Train tab's owner of a job: the login, else the id a page stores in its browser, else the page's session."""
    from types import SimpleNamespace

    from t2igan.ui.state import browser_id, visitor

    page, reloaded = SimpleNamespace(username=None, session_hash="s1"), SimpleNamespace(username=None, session_hash="s2")
    mine = browser_id(None)
    assert browser_id(mine) == mine and browser_id(None) != mine  # kept on reload; another browser gets its own
    assert visitor(page, mine) == visitor(reloaded, mine) != visitor(reloaded, browser_id(None))
    for forged in ("", "x" * 31, "../" * 11, 5, {"id": mine}):
        assert visitor(reloaded, forged) == "session:s2" and browser_id(forged) != forged
    assert visitor(SimpleNamespace(username="ann", session_hash="s3"), mine) == "user:ann"
    assert visitor(None, mine) == "local"


def test_second_visitor_sees_that_a_job_runs_not_its_data_or_controls(app_env, tmp_path):
    owner, other = app_env["client"], Client(f"http://127.0.0.1:{app_env['port']}/", verbose=False)
    z = zipped_shapes(tmp_path)
    assert "training" in start_job(owner, z, "owned-job", steps=100_000)
    try:
        deadline = time.time() + 60
        while owner.predict(api_name="/train_status")["step"] < 1 and time.time() < deadline:
            time.sleep(0.2)
        theirs, mine = other.predict(api_name="/train_status"), owner.predict(api_name="/train_status")
        assert theirs["state"] == "running" and theirs["model"] == "owned-job" and theirs["step"] >= 1
        assert theirs["mine"] is False and not {"last", "error", "events", "out", "run_dir"} & set(theirs)
        assert mine["mine"] is True and mine["last"]["g"] is not None
        for action in ("/train_pause", "/train_stop"):
            assert "another visitor" in other.predict(api_name=action)
        assert other.predict(api_name="/train_status")["state"] == "running", "the other visitor changed nothing"
        assert "already running" in start_job(other, z, "second-job")
        assert "pause" in owner.predict(api_name="/train_pause")
        assert owner.predict(api_name="/train_status")["state"] == "paused"
    finally:
        owner.predict(api_name="/train_resume")
        owner.predict(api_name="/train_stop")
        assert wait_for_job(owner, 120)["state"] == "stopped"
    shutil.rmtree(app_env["weights"] / "owned-job")


def test_no_file_of_a_run_is_served_to_anyone(app_env, tmp_path):
    """A finished job's files, found by name (run folder, config, upload, checkpoint, samples, stats): all refused
    to a fresh client without cookies, while what the app showed its visitor (images, a zip) downloads."""
    client = app_env["client"]
    z = zipped_shapes(tmp_path)
    assert "training" in start_job(client, z, "private-run", steps=6)
    assert wait_for_job(client, 180)["state"] == "completed"
    run = app_env["root"] / "outputs" / "runs" / "private-run"
    config = json.loads((run / "config.json").read_text())
    targets = [run / "config.json", Path(config["data"]), run / "checkpoint.safetensors", run / "stats.jsonl",
               *sorted((run / "samples").glob("*.png"))[:1], app_env["weights"] / "private-run" / "model_index.json"]
    assert all(t.is_file() for t in targets), targets
    base = f"http://127.0.0.1:{app_env['port']}"
    with httpx.Client(timeout=10) as fresh:  # a new visitor: no cookies, no session
        for target in targets:
            for route in ("/gradio_api/file=", "/file="):
                r = fresh.get(base + route + str(target))
                assert r.status_code in (403, 404), (route, target.name, r.status_code)
    archive, _ = client.predict(model="private-run", api_name="/export_zip")
    with zipfile.ZipFile(archive) as zf:
        assert "private-run/model_index.json" in zf.namelist()
    images, _ = generate(client, model="private-run")
    assert len(images) == 2 and Image.open(images[0]["image"]).size == (32, 32)
    shutil.rmtree(app_env["weights"] / "private-run")


def test_generation_uses_the_weights_in_the_folder_now(app_env):
    """A model re-exported (or replaced) while the app runs: the next generation draws with the new weights."""
    client, folder = app_env["client"], app_env["weights"] / "changing"
    save_tiny(folder, seed=0)
    first, _ = generate(client, model="changing", n=1)
    save_tiny(folder, seed=1)
    second, _ = generate(client, model="changing", n=1)
    a, b = (np.asarray(Image.open(x[0]["image"]), dtype=int) for x in (first, second))
    assert np.abs(a - b).mean() > 1, "the second generation still used the first weights"
    shutil.rmtree(folder)


def test_no_answer_names_a_server_path(app_env, tmp_path):
    """Every endpoint, with good and bad input: no string in the answer holds a server path (Gradio's file records
    are its own transport and are left out; files are not downloaded, so no path is the client's own)."""
    client = Client(f"http://127.0.0.1:{app_env['port']}/", verbose=False, download_files=False)
    z = zipped_shapes(tmp_path)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not a zip")
    calls = {
        "generate": lambda: generate(client),
        "generate (missing model)": lambda: generate(client, model="missing"),
        "interpolate": lambda: client.predict(prompt_a="a", prompt_b="b", model="missing", seed_a=0, seed_b=1,
                                              frames=4, truncation=0.8, api_name="/interpolate"),
        "check_data": lambda: client.predict(source="my upload", files=[handle_file(str(z))], base="tiny",
                                             balance_by="", api_name="/check_data"),
        "check_data (broken zip)": lambda: client.predict(source="my upload", files=[handle_file(str(broken))],
                                                          base="tiny", balance_by="", api_name="/check_data"),
        "check_data (emoji set not built)": lambda: client.predict(
            source=EMOJI, files=None, base="tiny", balance_by="",
            api_name="/check_data"),
        "sample_sheet (missing)": lambda: client.predict(model="missing", api_name="/sample_sheet"),
        "video": lambda: client.predict(prompts="a\nb", model="tiny", mode="walk", seed=0, seconds=0.5, size=64,
                                        direction=1, truncation=0.8, api_name="/video"),
        "invert (not a picture)": lambda: client.predict(picture=handle_file(str(broken)), prompt="", model="tiny",
                                                         steps=2, api_name="/invert"),
        "edit (no latent)": lambda: client.predict(latent=None, prompt="a", model="tiny", strength=1.0, split=0,
                                                   source_prompt="", seed=0, n=1, variation=0.0, api_name="/edit"),
        "export_zip": lambda: client.predict(model="tiny", api_name="/export_zip"),
        "export_zip (missing)": lambda: client.predict(model="missing", api_name="/export_zip"),
        "train_start (broken zip)": lambda: start_job(client, broken, "broken-run"),
        "train_status (failed job)": lambda: wait_for_job(client, 120),
        "train_start": lambda: start_job(client, z, "path-scan", steps=4),
        "train_status": lambda: wait_for_job(client, 120),
    }
    server_paths = {str(app_env["root"]), str(Path.cwd()), str(Path.home()), str(Path(__file__).parent.parent)}
    absolute = re.compile(r"(?<![\w.~:/\\-])/(?:[^\s/'\"`()]+/)+")
    leaks = []
    for what, call in calls.items():
        for text in texts(call()):
            if any(p in text for p in server_paths) or absolute.search(text):
                leaks.append((what, text[:300]))
    assert not leaks, leaks
    status = client.predict(api_name="/train_status")
    assert status["state"] == "completed" and status["model"] == "path-scan"
    shutil.rmtree(app_env["weights"] / "path-scan")


def test_new_names_differing_only_in_case_or_reserved_on_windows_are_refused(app_env, tmp_path):
    z = zipped_shapes(tmp_path)
    for name, words in [("TINY", "differs from the existing 'tiny' only in case"), ("tiny", "already exists"),
                        ("con", "reserved device name"), ("nul", "reserved device name"),
                        ("AUX", "reserved device name"), ("com1", "reserved device name")]:
        answer = start_job(app_env["client"], z, name)
        assert answer.startswith("⚠️") and words in answer, (name, answer)
    images, status = generate(app_env["client"], model="TINY")
    assert images == [] and "not found" in status
    assert app_env["client"].predict(api_name="/train_status")["state"] in ("idle", "completed", "stopped")


def call_raw(port: int, api_name: str, data: list):
    """One call through Gradio's HTTP API as any client could send it: Python's json writes NaN and Infinity
    (gradio_client refuses to send them). Returns the endpoint's output list, or raises with Gradio's error text."""
    base = f"http://127.0.0.1:{port}/gradio_api/call/{api_name}"
    with httpx.Client(timeout=60) as http:
        event = http.post(base, content=json.dumps({"data": data}), headers={"Content-Type": "application/json"})
        event.raise_for_status()
        stream = http.get(f"{base}/{event.json()['event_id']}").text
    kind = re.findall(r"^event: (\w+)", stream, re.M)[-1]
    payload = re.findall(r"^data: (.*)$", stream, re.M)[-1]
    if kind != "complete":
        raise AssertionError(f"{kind}: {payload}")
    return json.loads(payload)


GENERATE_FIELDS = ["prompt", "model", "seed", "n", "truncation", "variation", "mix_prompt", "mix_weight", "style",
                   "fine_prompt", "split", *(f"direction_{k}" for k in range(1, 9))]


@pytest.mark.parametrize("field, value, words", [
    ("seed", float("nan"), "seed must be a whole number"),
    ("seed", float("inf"), "seed must be a whole number"),
    ("seed", -float("inf"), "seed must be a whole number"),
    ("seed", -5, "seed must be between 0"),
    ("n", float("nan"), "num_images_per_prompt must be a whole number"),
    ("n", 1e9, "num_images_per_prompt must be between 1 and"),
    ("truncation", float("nan"), "truncation must be a number between"),
    ("truncation", float("inf"), "truncation must be a number between"),
    ("variation", -float("inf"), "variation must be a number between"),
    ("mix_weight", float("nan"), "mix weight must be a number between 0.0 and 1.0"),
    ("split", float("nan"), "split must be a whole number"),
    ("direction_1", float("inf"), "direction 1 must be a number between"),
])
def test_nan_inf_and_out_of_range_numbers_get_words_not_tracebacks(app_env, capfd, field, value, words):
    capfd.readouterr()
    args = dict(prompt="a red circle", model="tiny", seed=3, n=2, truncation=0.8, variation=0.0,
                mix_prompt="a blue square" if field == "mix_weight" else "", mix_weight=0.5, style="any",
                fine_prompt="a blue square" if field == "split" else "", split=2,
                **{f"direction_{k}": 0.0 for k in range(1, 9)})
    args[field] = value
    images, status = call_raw(app_env["port"], "generate", [args[f] for f in GENERATE_FIELDS])
    assert images == [] and status.startswith("⚠️") and words in status, status
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    assert len(generate(app_env["client"], n=1)[0]) == 1, "the app keeps working"


def test_nan_in_the_train_form_gets_words(app_env, tmp_path):
    z = zipped_shapes(tmp_path)
    client = Client(f"http://127.0.0.1:{app_env['port']}/", verbose=False, download_files=False)
    upload = client.predict(source="my upload", files=[handle_file(str(z))], base="tiny", balance_by="",
                            api_name="/check_data")
    assert "pairs ready" in upload
    uploaded = httpx.post(f"http://127.0.0.1:{app_env['port']}/gradio_api/upload",
                          files={"files": ("shapes.zip", z.read_bytes())}).json()[0]
    files = [{"path": uploaded, "meta": {"_type": "gradio.FileData"}, "orig_name": "shapes.zip"}]
    for field, value, words in [("steps", float("nan"), "steps must be a whole number"),
                                ("lr_g", float("inf"), "G learning rate must be a number between"),
                                ("batch_size", -3, "batch size must be between")]:
        form = dict(source="my upload", files=files, base="tiny", name="nan-run", steps=10, batch_size=4,
                    lr_g=1e-4, lr_d=2e-4, augment=[], keep=0.0, balance_by="", encoder="minilm", browser=None)
        form[field] = value
        (answer,) = call_raw(app_env["port"], "train_start", list(form.values()))
        assert answer.startswith("⚠️") and words in answer, (field, answer)


# ------------------------------------------------------------------------------------------- two clients, repeated
@pytest.mark.slow
def test_two_clients_job_starts_while_the_other_switches_models(tmp_path):
    """Client A starts a fine-tune (its loads run in the job's thread) while client B generates, switching between
    the previous fine-tune and the base model; 20 times. Then a fresh load and a fresh job still work."""
    from conftest import FIGURES
    from helpers import running_app

    z = zipped_shapes(tmp_path)
    with running_app(tmp_path / "app") as env:
        a, b = env["client"], Client(f"http://127.0.0.1:{env['port']}/", verbose=False)
        trials, failures, latencies, previous = 20, [], [], "tiny"
        for k in range(trials):
            name = f"ft-{k}"
            stop = threading.Event()

            def switch_models(models=("tiny", previous)):
                answers, i = [], 0
                while not stop.is_set() or i < 4:
                    t0 = time.perf_counter()
                    images, status = generate(b, model=models[i % 2], n=1)
                    latencies.append(time.perf_counter() - t0)
                    answers.append((len(images), status))
                    i += 1
                return answers

            with ThreadPoolExecutor(1) as pool:
                switching = pool.submit(switch_models)
                started = start_job(a, z, name, steps=3)
                status = wait_for_job(a, 120)
                stop.set()
                answers = switching.result(timeout=120)
            bad = [s for n, s in answers if n != 1]
            if "training" not in started or status.get("state") != "completed" or bad:
                failures.append({"trial": k, "start": started[:200], "state": status.get("state"),
                                 "error": status.get("error"), "generations": bad[:2]})
            previous = name
        images, status = generate(b, model=previous, n=1)
        assert len(images) == 1, status
        assert "training" in start_job(b, z, "fresh-after", steps=3)
        assert wait_for_job(b, 120)["state"] == "completed"
    figure = {"test": "two clients: job start while the other switches models", "trials": trials,
              "failures": len(failures), "generations": len(latencies),
              "latency_median_ms": round(1000 * statistics.median(latencies)),
              "latency_max_ms": round(1000 * max(latencies))}
    FIGURES.append(figure)
    print(f"\nRELIABILITY {json.dumps(figure)}")
    assert not failures, failures


def test_every_endpoint_names_its_parameters(app_env):
    """Keyword calls work on every endpoint: no parameter is an unnamed param_N (lambdas with *args had 31)."""
    api = app_env["client"].view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/generate", "/interpolate", "/video", "/invert", "/edit", "/check_data", "/train_start", "/train_status",
            "/train_pause", "/train_resume", "/train_stop", "/sample_sheet", "/export_zip", "/export_onnx"} <= set(api)
    unnamed = [(name, p["parameter_name"]) for name, e in api.items() for p in e["parameters"]
               if not p.get("parameter_name") or p["parameter_name"].startswith("param_")]
    assert not unnamed, unnamed
    assert [p["parameter_name"] for p in api["/generate"]["parameters"]] == GENERATE_FIELDS
    assert app_env["client"].predict(api_name="/train_status")["state"] in ("idle", "completed", "stopped")
