"""The launched app driven through gradio_client, as an API user would."""
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from helpers import gen, make_shapes_folder, wait_for_job, wake
from t2igan.weights import DEFAULT_MODEL


def test_binds_localhost_only(app_env):
    assert app_env["demo"].server_name == "127.0.0.1"


def test_generate_and_seed_determinism(app_env):
    images, status = gen(app_env["client"])
    assert len(images) == 4 and "4 images" in status
    assert [im["caption"] for im in images] == ["seed 3", "seed 4", "seed 5", "seed 6"]
    again, _ = gen(app_env["client"])
    first = Image.open(images[0]["image"])
    assert first.size == (32, 32), "downloads are native resolution"
    assert list(first.getdata()) == list(Image.open(again[0]["image"]).getdata())
    other, _ = gen(app_env["client"], seed=4, n=1)
    # the same seed alone or second in a batch of 4: the same image up to float rounding across batch sizes (a pixel
    # may land one grey level apart; a different seed differs by far more)
    alone, in_batch = (np.asarray(Image.open(x[k]["image"]), dtype=int) for x, k in ((other, 0), (images, 1)))
    assert np.abs(alone - in_batch).max() <= 1
    assert np.abs(alone - np.asarray(Image.open(images[2]["image"]), dtype=int)).mean() > 1


def test_variation_and_mixing(app_env):
    images, status = gen(app_env["client"], variation=0.3, mix="a blue square", w=0.4)
    assert len(images) == 4 and "⚠️" not in status


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=""), "prompt is empty"),
    (dict(n=-3), "between 1 and"),
    (dict(truncation=99.0), "truncation"),  # NaN cannot even be sent as JSON; the pipeline test covers it
    (dict(seed=-5), "seed"),
    (dict(model="../../etc"), "invalid model name"),
    (dict(model="nope"), "not found"),
])
def test_bad_values_get_messages(app_env, kwargs, message):
    """The library's message, whatever the component's bounds (the handler checks every number as sent)."""
    images, status = gen(app_env["client"], **kwargs)
    assert images == [] and message in status
    assert len(gen(app_env["client"], n=1)[0]) == 1, "the app keeps working"


def test_interpolate(app_env):
    frames, gif, status = app_env["client"].predict("a red circle", "a blue square", "tiny", 0, 5, 6, 0.8,
                                                    api_name="/interpolate")
    assert len(frames) == 6 and gif.endswith(".gif")
    assert Image.open(gif).n_frames >= 6
    frames, gif, status = app_env["client"].predict("a red circle", "", "tiny", 3, 3, 6, 0.8, api_name="/interpolate")
    assert frames == [] and gif is None and "⚠️" in status and "another end" in status
    # the page sends the To-seed box's text: empty is the same seed, anything but a whole number is named
    frames, _, status = app_env["client"].predict(prompt_a="a red circle", prompt_b="a blue square", model="tiny",
                                                  seed_a=3, seed_b="", frames=4, truncation=0.8,
                                                  api_name="/interpolate")
    assert len(frames) == 4, status
    frames, _, status = app_env["client"].predict(prompt_a="a red circle", prompt_b="", model="tiny", seed_a=3,
                                                  seed_b=" 5 ", frames=4, truncation=0.8, api_name="/interpolate")
    assert len(frames) == 4, status
    frames, _, status = app_env["client"].predict(prompt_a="a red circle", prompt_b="", model="tiny", seed_a=3,
                                                  seed_b="five", frames=4, truncation=0.8, api_name="/interpolate")
    assert frames == [] and "to seed must be a whole number" in status


def test_bad_upload_is_reported(app_env, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("this is not an image")
    captions = tmp_path / "captions.csv"
    captions.write_text("file_name,text\nphoto.png,a photo of a cat\n")
    report = app_env["client"].predict("my upload", [handle_file(str(fake)), handle_file(str(captions))], "tiny",
                                       api_name="/check_data")
    assert "⚠️" in report and "photo.png" in report


def test_fine_tune_job_from_zip(app_env, tmp_path):
    client = app_env["client"]
    data = make_shapes_folder(tmp_path / "shapes")
    z = tmp_path / "shapes.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in data.iterdir():
            zf.write(p, p.name)
    report = client.predict("my upload", [handle_file(str(z))], "tiny", api_name="/check_data")
    assert "24 pairs ready" in report
    assert "shapes.zip" in report and "uploads" not in report  # named as uploaded, not by its staging folder
    report = client.predict("my upload", [handle_file(str(z))], "tiny", "shape", api_name="/check_data")
    assert "balanced by 'shape': 3 groups" in report
    report = client.predict("my upload", [handle_file(str(z))], "tiny", "colour", api_name="/check_data")
    assert "⚠️" in report and "'colour'" in report
    msg = client.predict("my upload", [handle_file(str(z))], "tiny", "bad/name", 10, 4, 1e-4, 2e-4,
                         ["translation"], api_name="/train_start")
    assert "invalid model name" in msg
    msg = client.predict("my upload", [handle_file(str(z))], "tiny", "shapes-ft", 10, 4, 1e-4, 2e-4,
                         ["translation", "cutout"], 5.0, "shape", api_name="/train_start")
    assert "training" in msg, msg
    again = client.predict("my upload", [handle_file(str(z))], "tiny", "second", 10, 4, 1e-4, 2e-4,
                           [], api_name="/train_start")
    assert "already running" in again
    status = wait_for_job(client, 180)
    assert status["state"] == "completed", status
    assert status["step"] == 10 and status["events"] > 10 and status["last"]["g"] is not None
    assert status["last"]["keep"] > 0, "the keep term (fine-tuning from a base) reached the trainer"
    run_config = json.loads((app_env["root"] / "outputs" / "runs" / "shapes-ft" / "config.json").read_text())
    assert run_config["balance_by"] == "shape"
    images, text = gen(client, model="shapes-ft", n=2)
    assert len(images) == 2, text
    assert (app_env["weights"] / "shapes-ft" / "model_index.json").is_file()
    shutil.rmtree(app_env["weights"] / "shapes-ft")  # the model is gone, its run folder is not: never overwritten
    msg = client.predict("my upload", [handle_file(str(z))], "tiny", "shapes-ft", 10, 4, 1e-4, 2e-4, [],
                         api_name="/train_start")
    assert "outputs/runs/shapes-ft holds an earlier training run" in msg
    assert not (app_env["weights"] / "tiny" / "README.md").exists()


def test_new_model_on_an_encoder_from_weights_encoders(app_env, tmp_path):
    """From scratch in the app on a text encoder picked by name from weights/encoders/ (never a path from the browser);
    the new model carries that encoder and draws from the Generate endpoint."""
    from helpers import save_tiny_clip
    from t2igan.ui.train_tab import SCRATCH

    client = app_env["client"]
    save_tiny_clip(app_env["weights"] / "encoders" / "tiny-clip")
    data = make_shapes_folder(tmp_path / "shapes")
    files = [handle_file(str(p)) for p in sorted(data.iterdir())]
    args = ("my upload", files, SCRATCH, "clip-new", 10, 4, 2e-4, 4e-4, ["translation"], 0.0, "")
    for encoder, message in [(str(app_env["weights"] / "encoders" / "tiny-clip"), "unknown text encoder"),
                             ("../tiny-clip", "unknown text encoder")]:
        assert message in client.predict(*args, encoder, api_name="/train_start")
    msg = client.predict("my upload", files, "tiny", "clip-ft", 10, 4, 1e-4, 2e-4, [], 0.0, "", "tiny-clip",
                         api_name="/train_start")
    assert "a fine-tune keeps the text encoder of 'tiny'" in msg
    msg = client.predict(*args, "tiny-clip", api_name="/train_start")
    assert "training" in msg, msg
    status = wait_for_job(client, 240)
    assert status["state"] == "completed", status
    model = app_env["weights"] / "clip-new"
    assert json.loads((model / "generator" / "config.json").read_text())["text_dim"] == 24
    assert (model / "text_encoder").is_dir() and json.loads((model / "model_index.json").read_text())["text_encoder_id"] is None
    (red, _), (blue, _) = gen(client, "a red circle", model="clip-new", n=1), gen(client, "a blue square", model="clip-new", n=1)
    assert len(red) == 1 and Image.open(red[0]["image"]).size == (64, 64)
    assert np.abs(np.asarray(Image.open(red[0]["image"]), dtype=int)
                  - np.asarray(Image.open(blue[0]["image"]), dtype=int)).mean() > 0.5, "same seed, other prompt"
    shutil.rmtree(model)


def test_export_zip_stays_in_outputs(app_env):
    archive, msg = app_env["client"].predict("tiny", api_name="/export_zip")
    assert archive.endswith(".zip") and "exported" in msg
    with zipfile.ZipFile(archive) as zf:
        assert "tiny/model_index.json" in zf.namelist()


def test_export_onnx_through_the_app(app_env):
    pytest.importorskip("onnxruntime")
    path, msg = app_env["client"].predict("tiny", api_name="/export_onnx")
    assert path.endswith(".onnx") and "max |onnxruntime − torch|" in msg


def test_file_routes_serve_nothing_outside_the_app(app_env, tmp_path):
    import urllib.error
    import urllib.request

    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    base = f"http://127.0.0.1:{app_env['port']}"
    for path in (str(secret), "/etc/passwd", str(app_env["weights"] / "tiny" / "model_index.json"),
                 "../../../../etc/passwd"):
        for route in ("/gradio_api/file=", "/file="):
            try:
                with urllib.request.urlopen(base + route + path, timeout=10) as r:
                    body = r.read()
                assert b"do not serve" not in body and b"root:" not in body and b"T2IGANPipeline" not in body
            except urllib.error.HTTPError as e:
                assert e.code in (400, 403, 404), (route, path, e.code)


def test_upload_over_the_size_limit_is_refused(app_env, tmp_path):
    """The server itself refuses the upload (not only the client's own check)."""
    import httpx

    big = tmp_path / "big.zip"
    with open(big, "wb") as f:
        f.truncate(51 * 1024 * 1024)  # 51 MB of zeros, over the 50 MB limit
    with open(big, "rb") as f:
        r = httpx.post(f"http://127.0.0.1:{app_env['port']}/gradio_api/upload", files={"files": ("big.zip", f)},
                       timeout=60)
    assert r.status_code == 413, (r.status_code, r.text[:200])
    uploads = app_env["root"] / "outputs" / "uploads"
    assert not any(p.name == "big.zip" for p in uploads.rglob("*")) if uploads.exists() else True


def test_model_card_hides_images_the_app_cannot_serve(tiny_pipe, tmp_path, monkeypatch):
    from t2igan.ui.model_tab import card

    monkeypatch.setenv("T2IGAN_WEIGHTS", str(tmp_path))
    tiny_pipe.save_pretrained(tmp_path / "carded")
    (tmp_path / "carded" / "README.md").write_text(
        "# carded\n![prompt sheet](../../assets/sheet.png)\n![logo](https://example.org/logo.png)\n"
        "A student of [`teacher`](../teacher/README.md), see [DF-GAN](https://arxiv.org/abs/2008.05865).\n")
    text = card("carded")
    assert "A student of `teacher`, see [DF-GAN](https://arxiv.org/abs/2008.05865)." in text  # no dead link
    assert "../../assets/sheet.png" not in text and "prompt sheet" in text  # a note instead of a broken image
    assert "![logo](https://example.org/logo.png)" in text                  # web images are left to the browser
    assert card("missing").startswith("⚠️")


def test_truncation_sliders_start_at_the_models_default(tmp_path, monkeypatch, tiny_pipe):
    """The app opens drawing as `t2igan generate` and `pipe(prompt)` do: at the default model's default_truncation."""
    from t2igan import T2IGANPipeline
    from t2igan.ui import build_app

    monkeypatch.setenv("T2IGAN_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("T2IGAN_OUTPUTS", str(tmp_path / "outputs"))
    # build_app points Gradio's upload folder (a process-wide setting) at its outputs/: put the running app's back
    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", str(tmp_path / "gradio")))
    T2IGANPipeline(generator=tiny_pipe.generator, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer,
                   default_truncation=0.55).save_pretrained(tmp_path / "weights" / "tiny")
    demo = build_app(device="cpu")
    sliders = [b for b in demo.blocks.values() if getattr(b, "label", None) in
               ("Truncation (noise scale: lower = more typical)", "Truncation")]
    assert len(sliders) == 2 and [s.value for s in sliders] == [0.55, 0.55]


def test_the_readmes_api_examples_run_as_written(app_env, tmp_path):
    """The README's HTTP API block, run against the launched app (the tiny model and a small zip stand in for
    the shipped model and my_pictures.zip; the fine-tune is shortened)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### The HTTP API.*?```python\n(.*?)```", readme, re.S).group(1)
    data = make_shapes_folder(tmp_path / "shapes")
    z = tmp_path / "pictures.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in data.iterdir():
            zf.write(p, p.name)
    code = (block.replace("http://127.0.0.1:7860/", f"http://127.0.0.1:{app_env['port']}/")
            .replace(f'"{DEFAULT_MODEL}"', '"tiny"').replace('"my_pictures.zip"', repr(str(z)))
            .replace('name="my-model"', 'name="readme-model"').replace("steps=400", "steps=4"))
    scope = {}
    exec(compile(code, "README.md (HTTP API)", "exec"), scope)
    assert len(scope["images"]) == 4 and "images in" in scope["status"]
    assert "24 pairs ready" in scope["report"]
    client = scope["c"]
    status = wait_for_job(client, 120)
    assert status["state"] == "completed" and status["model"] == "readme-model" and status["mine"]
    shutil.rmtree(app_env["weights"] / "readme-model")


def test_style_control_through_the_api(app_env):
    """`style` is a keyword of /generate: 'any' by default; a style the model was not trained on is a message."""
    from t2igan import T2IGANPipeline

    styled = app_env["weights"] / "styled"
    pipe = T2IGANPipeline.from_pretrained(app_env["weights"] / "tiny")
    T2IGANPipeline(generator=pipe.generator, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                   styles=["flat"]).save_pretrained(styled)
    client = app_env["client"]
    args = dict(prompt="a red circle", seed=0, n=1, truncation=0.8, variation=0.0, mix_prompt="", mix_weight=0.5)
    (plain, _), (flat, status) = (client.predict(**args, model="styled", api_name="/generate"),
                                  client.predict(**args, model="styled", style="flat", api_name="/generate"))
    assert len(flat) == 1 and "images in" in status
    assert (np.asarray(Image.open(plain[0]["image"]), dtype=int)
            != np.asarray(Image.open(flat[0]["image"]), dtype=int)).any(), "the style words change the image"
    images, status = client.predict(**args, model="tiny", style="flat", api_name="/generate")
    assert images == [] and "style 'flat' is not one this model was trained on (it knows: any)" in status
    shutil.rmtree(styled)


def test_layout_and_details_prompts_through_the_api(app_env):
    """`fine_prompt` + `split` on /generate: the fine levels follow the second prompt; split = all levels is off."""
    client = app_env["client"]
    args = dict(prompt="a red circle", model="tiny", seed=0, n=1, truncation=0.8, variation=0.0, mix_prompt="",
                mix_weight=0.5)
    pixels = lambda result: np.asarray(Image.open(result[0][0]["image"]), dtype=int)  # noqa: E731
    plain = pixels(client.predict(**args, api_name="/generate"))
    levels = 4  # the tiny model is 32 px: 4, 8, 16, 32
    assert (pixels(client.predict(**args, fine_prompt="a blue square", split=levels, api_name="/generate"))
            == plain).all()
    # split 0: every level follows the details prompt (an untrained tiny model reads text in its first level only)
    mixed = client.predict(**args, fine_prompt="a blue square", split=0, api_name="/generate")
    assert "images in" in mixed[1] and (pixels(mixed) != plain).any()
    images, status = client.predict(**args, fine_prompt="a blue square", split=9, api_name="/generate")
    assert images == [] and "split must be between 0 and 4" in status


def test_direction_sliders_through_the_api(app_env):
    """direction_1…8 on /generate move the picture along the model's sliders; a model without them says so."""
    from t2igan import T2IGANPipeline
    from t2igan import directions as sliders

    folder = app_env["weights"] / "sliders"
    pipe = wake(T2IGANPipeline.from_pretrained(app_env["weights"] / "tiny"))
    pipe.directions = (sliders.discover(pipe.generator, 3), ["a", "b", "c"], [])
    pipe.save_pretrained(folder)
    client = app_env["client"]
    args = dict(prompt="a red circle", seed=0, n=1, truncation=0.8, variation=0.0, mix_prompt="", mix_weight=0.5)
    pixels = lambda result: np.asarray(Image.open(result[0][0]["image"]), dtype=int)  # noqa: E731
    still = pixels(client.predict(**args, model="sliders", api_name="/generate"))
    moved = client.predict(**args, model="sliders", direction_1=2.5, api_name="/generate")
    assert "images in" in moved[1] and (pixels(moved) != still).any()
    images, status = client.predict(**args, model="sliders", direction_5=1.0, api_name="/generate")
    assert images == [] and "3 direction sliders (0 to 2)" in status
    images, status = client.predict(**args, model="tiny", direction_1=1.0, api_name="/generate")
    assert images == [] and "no direction sliders" in status
    shutil.rmtree(folder)


def test_video_through_the_api(app_env):
    """/video answers an MP4 and an animated WebP with every frame; bad input is a message."""
    client = app_env["client"]
    args = dict(model="tiny", seed=0, seconds=0.5, size=64, direction=1, truncation=0.8)
    mp4, webp, status = client.predict(prompts="a red circle\na blue square", mode="walk", **args,
                                       api_name="/video")
    assert "24 frames at 24 fps" in status  # 12 frames per prompt, looping back to the first
    assert Path(mp4 if isinstance(mp4, str) else mp4["video"]).read_bytes()[4:8] == b"ftyp"
    with Image.open(webp) as im:
        assert im.n_frames == 24 and im.size == (64, 64)
    mp4, webp, status = client.predict(prompts="a red circle", mode="seeds", **args, api_name="/video")
    assert "48 frames" in status  # four seeds, 12 frames each
    for prompts, mode, message in [("", "walk", "type a prompt"), ("a red circle", "direction", "no direction sliders"),
                                   ("a red circle", "zoom", "mode must be one of")]:
        mp4, webp, status = client.predict(prompts=prompts, mode=mode, **args, api_name="/video")
        assert mp4 is None and message in status


def test_invert_and_edit_through_the_api(app_env, tmp_path):
    """/invert: a picture in → its redrawing, a latent file and the fit's quality; /edit: words move it."""
    client = app_env["client"]
    Image.new("RGBA", (300, 200), (255, 0, 0, 128)).save(tmp_path / "mine.png")
    pair, latent, status = client.predict(picture=handle_file(str(tmp_path / "mine.png")), prompt="a red circle",
                                          model="tiny", steps=3, api_name="/invert")
    assert len(pair) == 2 and "LPIPS" in status and "PSNR" in status
    assert str(latent).endswith(".safetensors")
    args = dict(latent=handle_file(latent), model="tiny", strength=1.0, split=0, source_prompt="", seed=0,
                variation=0.3)
    (same,), _ = client.predict(prompt="", n=1, **args, api_name="/edit")
    edited, status = client.predict(prompt="a blue square", n=3, **args, api_name="/edit")
    assert len(edited) == 3 and "3 images in" in status
    pixels = lambda item: np.asarray(Image.open(item["image"]), dtype=int)  # noqa: E731
    assert (pixels(edited[0]) != pixels(same)).any()
    images, status = client.predict(prompt="x", n=1, **{**args, "latent": None}, api_name="/edit")
    assert images == [] and "put a picture into the model first" in status
    (tmp_path / "fake.png").write_text("no picture")
    pair, latent, status = client.predict(picture=handle_file(str(tmp_path / "fake.png")), prompt="", model="tiny",
                                          steps=3, api_name="/invert")
    assert pair == [] and latent is None and "fake.png is not a picture this can read" in status
    assert "/" not in status.split("fake.png", 1)[1], status  # no server path (Gradio's upload cache) after the name


def test_requests_take_turns_on_one_compute_thread():
    """Torch work from many request threads runs on the studio's one thread (one warm OpenMP team); a handler
    that calls another on it does not wait for itself."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from t2igan.ui.state import Studio

    studio = Studio(device="cpu")
    where = lambda: threading.current_thread().name  # noqa: E731
    with ThreadPoolExecutor(8) as pool:
        names = set(pool.map(lambda _: studio.compute(where), range(32)))
    assert len(names) == 1 and names.pop().startswith("t2igan-compute")
    with ThreadPoolExecutor(1) as pool:
        nested = pool.submit(studio.compute, studio.compute, where)
        assert nested.result(timeout=10).startswith("t2igan-compute")


def test_progress_line_gives_an_eta_only_while_a_job_has_steps_left():
    from t2igan.ui.train_tab import _progress_line

    s = {"state": "running", "step": 20, "total": 300, "it_s": 4.0, "eta_s": 70.0, "out": "weights/mine"}
    assert _progress_line(s) == "**running** · step 20 / 300 · 4.00 it/s · ETA 1.2 min · model → `mine`"
    for done in ("stopped", "completed", "failed"):
        assert "ETA" not in _progress_line({**s, "state": done}) and f"**{done}** · step 20 / 300" in _progress_line(
            {**s, "state": done})
