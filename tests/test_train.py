import json
import os
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from t2igan import T2IGANPipeline
from t2igan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from t2igan.job import JobError, TrainingJob
from t2igan.training import CHECKPOINT, TrainConfig, TrainingDiverged, train

from helpers import COLORS, SHAPES, make_shapes_folder

TINY = dict(resolution=32, g_channels=[32, 32, 16, 8], d_channels=[8, 16, 16, 32], z_dim=16, cond_dim=32,
            batch_size=4, log_every=1, sample_every=2, checkpoint_every=2, sample_seeds=[0, 1], precision="fp32")


@pytest.fixture()
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes")


def cfg(tmp_path, data, **kw):
    return TrainConfig(data=str(data), out=str(tmp_path / "model"), run_dir=str(tmp_path / "run"),
                       **{**TINY, "steps": 3, **kw})


def collect():
    events = []
    return events, events.append


def test_losses_finite_weights_change_and_export(tmp_path, shapes):
    events, emit = collect()
    result = train(cfg(tmp_path, shapes, steps=4), progress=emit)
    assert result["status"] == "completed" and result["step"] == 4
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    for e in steps:
        assert all(torch.isfinite(torch.tensor(e[k])) for k in ("d", "d_real", "d_fake", "d_mismatch", "penalty", "g"))
    assert any(e["penalty"] > 0 for e in steps), "MA-GP is applied"
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 4 and stats[-1]["step"] == 4
    samples = sorted((tmp_path / "run" / "samples").glob("step-*.png"))
    assert [p.name for p in samples] == ["step-0000000.png", "step-0000002.png", "step-0000004.png"]
    pipe = T2IGANPipeline.from_pretrained(tmp_path / "model")
    assert pipe.discriminator is not None
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert ckpt["step"] == 4
    # the exported generator is the EMA copy, and it moved away from the random init
    ema = ckpt["G_ema"]
    for k, v in pipe.generator.state_dict().items():
        assert torch.equal(v, ema[k])
    assert ckpt["G"]["stem.weight"].ne(ckpt["G_ema"]["stem.weight"]).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_samples_and_exports_on_cuda(tmp_path, shapes):
    # found on an H100: the EMA generator stayed on the CPU while accelerate moved G to the GPU
    events, emit = collect()
    result = train(cfg(tmp_path, shapes, steps=4, device="cuda", precision="auto"), progress=emit)
    assert result["status"] == "completed" and result["step"] == 4
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert any(e["type"] == "log" and e["message"].endswith(precision) for e in events)
    assert len(list((tmp_path / "run" / "samples").glob("step-*.png"))) == 3
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["step"] == 4
    image = T2IGANPipeline.from_pretrained(tmp_path / "model").to("cuda")("a red circle", seed=0).images[0]
    assert image.size == (32, 32)


def test_bilinear_generator_and_bad_settings(tmp_path, shapes):
    assert train(cfg(tmp_path, shapes, steps=2, upsample="bilinear"))["status"] == "completed"
    assert T2IGANPipeline.from_pretrained(tmp_path / "model").generator.config.upsample == "bilinear"
    for bad, message in ((dict(upsample="bicubic"), "upsample must be"), (dict(gp_every=0), "gp_every must be"),
                         (dict(keep=-1.0), "keep must be")):
        with pytest.raises(ValueError, match=message):
            train(cfg(tmp_path / "bad", shapes, **bad))


def test_feature_critic_pretrain_and_train(tmp_path):
    """The Projected-GAN-style critic: pretrain a (tiny) FeatureNet on the data, then train with it; its heads learn,
    the feature network stays frozen, and both are in the checkpoint for an exact resume."""
    from t2igan.cli import main
    from t2igan.features import FeatureNet, ProjectedCritic

    shapes = make_shapes_folder(tmp_path / "shapes64", size=64)
    assert main(["features", "--data", str(shapes), "--out", str(tmp_path / "features"), "--minutes", "0.02",
                 "--batch-size", "8"]) == 0
    net = FeatureNet.from_pretrained(tmp_path / "features")
    assert net.config.num_classes == 12  # no "base" field: the first caption is the concept (4 colours × 3 shapes)
    kw = dict(resolution=64, g_channels=[32, 32, 16, 8, 8], d_channels=[8, 8, 16, 16, 32], feature_critic=str(tmp_path / "features"))
    result = train(cfg(tmp_path, shapes, steps=2, **kw))
    assert result["status"] == "completed"
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all(s["d_feature"] > 0 for s in stats)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    frozen = FeatureNet.from_pretrained(tmp_path / "features").state_dict()
    assert all(torch.equal(state["P"][f"net.{k}"], v) for k, v in frozen.items()), "the feature network is frozen"
    assert train(cfg(tmp_path, shapes, steps=3, resume=True, **kw))["step"] == 3
    with pytest.raises(ValueError, match="64-px"):
        train(cfg(tmp_path / "small", shapes, feature_critic=str(tmp_path / "features")))
    assert net.config.concepts == sorted(f"a {c} {s}" for c in COLORS for s in SHAPES)
    critic = ProjectedCritic(net)
    x, e1, e2 = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 384), torch.randn(2, 384)
    with torch.no_grad():
        own, other = critic.scores(x, e1, e2)
        assert torch.allclose(own, critic(x, e1), atol=1e-5) and torch.allclose(other, critic(x, e2), atol=1e-5)


def test_fine_tune_from_model_folder(tmp_path, shapes):
    train(cfg(tmp_path, shapes, steps=2))
    before = T2IGANPipeline.from_pretrained(tmp_path / "model")
    out2 = tmp_path / "model2"
    train(TrainConfig(data=str(shapes), out=str(out2), run_dir=str(tmp_path / "run2"), init=str(tmp_path / "model"),
                      steps=2, batch_size=4, precision="fp32", sample_every=100, checkpoint_every=100))
    after = T2IGANPipeline.from_pretrained(out2)
    assert after.generator.config.channels == before.generator.config.channels
    diff = sum((a - b).abs().sum() for a, b in zip(before.generator.parameters(), after.generator.parameters()))
    assert diff > 0


def test_a_trained_model_gets_a_card_and_a_hand_written_one_is_kept(tmp_path, shapes):
    """The saved folder's README.md: a Hugging Face card naming the base, the data and the steps, with the base's
    licence; rewritten at each save while generated; never over a card written by hand."""
    import dataclasses

    import yaml

    from t2igan.card import GENERATED

    train(cfg(tmp_path, shapes, steps=1))
    scratch = (tmp_path / "model" / "README.md").read_text()
    meta = yaml.safe_load(scratch.split("---\n")[1])
    assert meta["license"] == "other" and "base_model" not in meta and "from scratch" in scratch
    pairs = len(list(shapes.glob("*.png")))
    assert f"on {pairs} captioned pictures" in scratch and "1 steps at batch" in scratch
    card = (tmp_path / "model" / "README.md")
    card.write_text(scratch.replace("license: other", "license: cc-by-sa-4.0"))  # the user set a licence
    train(cfg(tmp_path / "ft", shapes, init=str(tmp_path / "model"), steps=2))
    tuned = (tmp_path / "ft" / "model" / "README.md").read_text()
    meta = yaml.safe_load(tuned.split("---\n")[1])
    assert meta["license"] == "cc-by-sa-4.0" and meta["base_model"] == "model" and GENERATED in tuned
    assert "A fine-tune of `model`" in tuned and "2 steps at batch" in tuned
    for section in ("## Uses", "## How to use", "## Training data", "## Training procedure", "## Evaluation",
                    "## Known limitations"):
        assert section in tuned, section
    hand = "---\nlicense: mit\n---\n# mine\nWritten by hand.\n"
    (tmp_path / "ft" / "model" / "README.md").write_text(hand)
    again = cfg(tmp_path / "again", shapes, init=str(tmp_path / "model"), steps=1)
    train(dataclasses.replace(again, out=str(tmp_path / "ft" / "model")))  # a new run saving into that folder
    assert (tmp_path / "ft" / "model" / "README.md").read_text() == hand


@pytest.mark.parametrize("rampup, decay", [(True, 0.1), (False, 0.999)])
def test_fine_tune_ema_rampup_or_full_decay(tmp_path, shapes, rampup, decay):
    """After one fine-tuning step the exported EMA sits (1 - decay) of the way from the init to the trained G: ramped
    (decay 0.1 at step 0) for short fine-tunes, full decay when continuing a long run (--no-ema-rampup)."""
    train(cfg(tmp_path, shapes, steps=2))
    init = T2IGANPipeline.from_pretrained(tmp_path / "model").generator.state_dict()
    train(cfg(tmp_path / "fine-tune", shapes, init=str(tmp_path / "model"), steps=1, ema_rampup=rampup))
    state = load_checkpoint(tmp_path / "fine-tune" / "run" / CHECKPOINT)
    moved = 0
    for k, v in init.items():
        if v.is_floating_point():
            assert torch.allclose(state["G_ema"][k], v + (1 - decay) * (state["G"][k] - v), atol=1e-6), k
            moved += int(not torch.equal(state["G"][k], v))
    assert moved > 0, "the fine-tuning step changed G"


def test_fine_tune_keeps_the_inits_default_truncation(tmp_path, shapes):
    """A new model draws at truncation 1.0 by default; a fine-tune draws as its init did (model_index.json)."""
    train(cfg(tmp_path, shapes, steps=1))
    index_file = tmp_path / "model" / "model_index.json"
    index = json.loads(index_file.read_text())
    assert index["default_truncation"] == 1.0
    index_file.write_text(json.dumps({**index, "default_truncation": 0.6}))
    train(cfg(tmp_path / "fine-tune", shapes, init=str(tmp_path / "model"), steps=1))
    exported = json.loads((tmp_path / "fine-tune" / "model" / "model_index.json").read_text())
    assert exported["default_truncation"] == 0.6


def test_keep_holds_what_the_init_draws_for_other_prompts(tmp_path, shapes):
    """A fine-tune that learns the data fast (high lr) redraws everything; with keep, G's images for prompts outside
    the data stay close to the init's, while its images for the data's own captions still change."""
    from t2igan.pipeline import noise_for_seeds

    train(cfg(tmp_path, shapes, steps=2))
    others = ["a cup of hot coffee", "an airplane in the sky"]
    fast = dict(init=str(tmp_path / "model"), steps=6, lr_g=5e-3, lr_d=5e-3, keep_prompts=others)
    train(cfg(tmp_path / "free", shapes, keep=0.0, **fast))
    train(cfg(tmp_path / "kept", shapes, keep=50.0, **fast))
    pipes = {k: T2IGANPipeline.from_pretrained(p / "model") for k, p in
             (("init", tmp_path), ("free", tmp_path / "free"), ("kept", tmp_path / "kept"))}

    def moved(name: str, prompts: list[str]) -> float:
        z = noise_for_seeds(list(range(4)), 16)
        draw = lambda pipe: torch.cat([pipe([p] * 4, latents=z, output_type="pt").images for p in prompts])  # noqa: E731
        return float((draw(pipes[name]) - draw(pipes["init"])).abs().mean())

    # fp32 on an AVX2 CPU: 0.0217 vs 0.0715 (a ratio of 0.30); bf16 machines train and draw these numbers differently
    assert moved("kept", others) < 0.4 * moved("free", others)
    assert moved("kept", ["a red circle"]) > 0.2 * moved("free", ["a red circle"])


def test_keep_prompts_near_the_data_are_left_out_and_bad_settings_named(tmp_path, shapes):
    train(cfg(tmp_path, shapes, steps=2))
    events, emit = collect()
    train(cfg(tmp_path / "ft", shapes, init=str(tmp_path / "model"), steps=1, keep=1.0,
              keep_prompts=["a red circle", "an airplane in the sky"]), progress=emit)
    logged = [e["message"] for e in events if e["type"] == "log" and "holding" in e["message"]]
    assert logged and "keep 1: holding 1 prompts" in logged[0]
    assert "left out as too close to the data's captions: a red circle" in logged[0]
    with pytest.raises(ValueError, match="every keep prompt is a near-paraphrase"):
        train(cfg(tmp_path / "ft2", shapes, init=str(tmp_path / "model"), steps=1, keep=1.0, keep_prompts=["a blue square"]))
    with pytest.raises(ValueError, match="keep needs init"):
        train(cfg(tmp_path / "ft3", shapes, keep=1.0))
    with pytest.raises(ValueError, match="keep must be a number >= 0"):
        train(cfg(tmp_path / "ft4", shapes, init=str(tmp_path / "model"), keep=-1.0))


def test_keep_is_on_by_default_for_fine_tunes_only():
    from t2igan.training.config import KEEP, keep_weight as _keep_weight

    assert _keep_weight(TrainConfig(data="d", out="o", init="emoji-64")) == KEEP > 0
    assert _keep_weight(TrainConfig(data="d", out="o")) == 0
    assert _keep_weight(TrainConfig(data="d", out="o", init="emoji-64", keep=0.0)) == 0
    assert _keep_weight(TrainConfig(data="d", out="o", init="emoji-64"), grown=True) == 0  # growing is for learning more
    assert _keep_weight(TrainConfig(data="d", out="o", init="emoji-64", keep=5.0), grown=True) == 5


def test_balanced_sampler_draws_every_group_equally_often():
    from t2igan.training.state import EpochSampler, _balance_weights

    groups = ["person"] * 10 + ["pizza", "rocket"]  # one emoji in 10 skin-tone/vendor images, two in one each
    logs = []
    sampler = EpochSampler(len(groups), seed=0, weights=_balance_weights(groups, "base", logs.append))
    assert logs == ["balanced by 'base': 3 groups drawn equally often (1–10 images each, median 1)"]
    drawn = []
    for epoch in range(300):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    share = {g: sum(groups[i] == g for i in drawn) / len(drawn) for g in set(groups)}
    assert all(abs(v - 1 / 3) < 0.03 for v in share.values()), share  # unbalanced: person 0.83, others 0.08
    sampler.set_epoch(7)
    assert list(sampler) == list(sampler)  # fixed by (seed, epoch): a resume replays the same batches
    assert sorted(EpochSampler(12, seed=0)) == list(range(12))  # no weights: a permutation per epoch
    assert _balance_weights(None, None, logs.append) is None


def test_train_balanced_by_a_metadata_field(tmp_path, shapes):
    from t2igan.cli import main
    from t2igan.data import DatasetError

    lines = [json.loads(x) for x in (shapes / "metadata.jsonl").read_text().splitlines()]
    for x in lines:
        x["shape"] = x["file_name"].split("-")[1]
    (shapes / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    events, emit = collect()
    assert train(cfg(tmp_path, shapes, steps=2, balance_by="shape"), progress=emit)["step"] == 2
    assert "balanced by 'shape': 3 groups drawn equally often (8–8 images each, median 8)" in \
        [e.get("message") for e in events]
    with pytest.raises(DatasetError, match="no row of metadata.jsonl has the field 'colour' to group \\(balance\\) images by"):
        train(cfg(tmp_path / "b", shapes, steps=1, balance_by="colour"))
    assert main(["train", "--data", str(shapes), "--out", str(tmp_path / "c"), "--run-dir", str(tmp_path / "run-c"),
                 "--steps", "1", "--batch-size", "4", "--resolution", "32", "--precision", "fp32", "--quiet",
                 "--set", "balance_by=shape"]) == 0
    assert json.loads((tmp_path / "run-c" / "config.json").read_text())["balance_by"] == "shape"


def test_resume_reproduces_uninterrupted_run(tmp_path, shapes):
    full_events, emit = collect()
    train(cfg(tmp_path / "a", shapes, steps=4, checkpoint_every=100), progress=emit)
    part = cfg(tmp_path / "b", shapes, steps=2, checkpoint_every=100)
    train(part)
    resumed_events, emit2 = collect()
    train(cfg(tmp_path / "b", shapes, steps=4, checkpoint_every=100, resume=True), progress=emit2)
    full = {e["step"]: e for e in full_events if e["type"] == "step"}
    resumed = {e["step"]: e for e in resumed_events if e["type"] == "step"}
    assert sorted(resumed) == [3, 4]
    for s in (3, 4):
        for k in ("d", "d_real", "d_fake", "d_mismatch", "g"):
            assert resumed[s][k] == pytest.approx(full[s][k], rel=1e-5, abs=1e-6), (s, k)


def test_channels_last_is_the_same_training_in_another_memory_layout(tmp_path, shapes, monkeypatch):
    """NHWC convolutions (the default on CPU) change the speed, not the run: the same losses as NCHW."""
    layouts = []
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):  # the layout the optimiser sees is the one the step ran in
        layouts.append(next(p for g in self.param_groups for p in g["params"] if p.dim() == 4)
                       .is_contiguous(memory_format=torch.channels_last))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    runs = {}
    for nhwc in (True, False):
        layouts.clear()
        events, emit = collect()
        train(cfg(tmp_path / str(nhwc), shapes, steps=3, channels_last=nhwc), progress=emit)
        assert set(layouts) == {nhwc}
        runs[nhwc] = [e for e in events if e["type"] == "step"]
    for a, b in zip(runs[True], runs[False]):
        for k in ("d", "d_real", "d_fake", "d_mismatch", "g"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (a["step"], k)


def test_resume_applies_this_runs_learning_rates_and_betas(tmp_path, shapes):
    """Resuming with new learning rates (e.g. to decay them) or Adam betas must not be overridden by the checkpoint's
    Adam state."""
    train(cfg(tmp_path, shapes, steps=2))
    events, emit = collect()
    train(cfg(tmp_path, shapes, steps=3, resume=True, lr_g=1e-4, lr_d=5e-5, beta1=0.5), progress=emit)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["step"] == 3
    assert {g["lr"] for g in state["opt_g"]["param_groups"]} == {1e-4}
    assert {g["lr"] for g in state["opt_d"]["param_groups"]} == {5e-5}
    assert {tuple(g["betas"]) for g in state["opt_g"]["param_groups"]} == {(0.5, 0.9)}
    assert any("learning rate 0.0002 -> 0.0001" in e.get("message", "") for e in events)
    assert any("Adam betas (0.0, 0.9) -> (0.5, 0.9)" in e.get("message", "") for e in events)


def test_a_run_folder_is_never_overwritten_and_a_mismatched_resume_is_one_line(tmp_path, shapes):
    train(cfg(tmp_path, shapes, steps=2))
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    with pytest.raises(ValueError, match="already holds a training run.*--resume"):
        train(cfg(tmp_path, shapes, steps=1))
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before  # the earlier run is untouched
    wider = [c * 2 for c in TINY["g_channels"]]
    with pytest.raises(CheckpointError, match="from a different model than this run builds \\(it was started with "
                                              "g_channels \\[32, 32, 16, 8\\], now \\[64, 64, 32, 16\\]\\)") as e:
        train(cfg(tmp_path, shapes, steps=3, resume=True, g_channels=wider))
    assert "\n" not in str(e.value)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before


def test_checkpoint_survives_crash_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    import t2igan.checkpoint as ck

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"], "temp file cleaned up"
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_nan_guard_stops_without_writing(tmp_path, shapes, monkeypatch):
    train(cfg(tmp_path, shapes, steps=2))
    good = (tmp_path / "run" / CHECKPOINT).read_bytes()
    import t2igan.training.loop as tr

    monkeypatch.setattr(tr, "diff_augment", lambda x, policy: x * float("nan"))  # a NaN reaches every loss
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        train(cfg(tmp_path, shapes, steps=4, resume=True))
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == good


@pytest.mark.parametrize("stop_at", [None, 5])
def test_nan_between_log_lines_is_caught_before_any_checkpoint(tmp_path, shapes, monkeypatch, stop_at):
    """The losses are read at log lines only (no GPU stall per step): a NaN from step 4 on, with log lines and
    checkpoints every 6 steps, still ends the run naming step 4, whether it reaches a checkpoint step or is stopped
    (should_stop) before one, and the step-2 checkpoint stays as it was."""
    train(cfg(tmp_path, shapes, steps=2))
    good = (tmp_path / "run" / CHECKPOINT).read_bytes()
    import t2igan.training.loop as tr

    calls, plain = [0], tr.diff_augment

    def nan_from_step_4(x, policy):  # 3 calls a step (real and fake for D, fake for G); resumed at step 2
        calls[0] += 1
        return plain(x, policy) * (float("nan") if calls[0] > 3 else 1.0)

    monkeypatch.setattr(tr, "diff_augment", nan_from_step_4)
    stop = (lambda: calls[0] >= 3 * (stop_at - 2)) if stop_at else None  # asked once step `stop_at` is done
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 4"):
        train(cfg(tmp_path, shapes, steps=12, resume=True, log_every=6, checkpoint_every=6, sample_every=100),
              should_stop=stop)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == good


def test_train_from_zip_and_bad_config(tmp_path, shapes):
    z = tmp_path / "shapes.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in shapes.iterdir():
            zf.write(p, f"shapes/{p.name}")
    assert train(cfg(tmp_path, z, steps=1))["step"] == 1
    with pytest.raises(ValueError, match="steps must be"):
        train(cfg(tmp_path, shapes, steps=0))
    with pytest.raises(ValueError, match="unknown augmentation"):
        train(cfg(tmp_path, shapes, augment="flip"))
    events, emit = collect()  # a few pictures and the app's batch 16: every batch holds all of them
    assert train(cfg(tmp_path / "few", shapes, batch_size=64, steps=1), progress=emit)["step"] == 1
    assert any("batch size 64 is more than the 24 pairs of the data: using 24" in e.get("message", "") for e in events)


def test_background_job_pause_resume_stop(tmp_path, shapes):
    job = TrainingJob(cfg(tmp_path, shapes, steps=10_000, sample_every=5, checkpoint_every=50), nice=2)
    job.start()
    with pytest.raises(JobError, match="already running"):
        TrainingJob(cfg(tmp_path / "other", shapes)).start()
    deadline = time.time() + 60
    while job.status()["step"] < 3 and time.time() < deadline:
        time.sleep(0.1)
    if sys.platform.startswith("linux"):  # the app's jobs train at a lower priority than its requests
        nice = os.getpriority(os.PRIO_PROCESS, job._thread.native_id)
        assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 2)
    job.pause()
    time.sleep(0.5)
    paused_at = job.status()["step"]
    time.sleep(1.0)
    assert job.status()["state"] == "paused" and job.status()["step"] <= paused_at + 1
    job.resume()
    while job.status()["step"] < paused_at + 3 and time.time() < deadline:
        time.sleep(0.1)
    t0 = time.time()
    job.stop()
    assert job.wait(60)
    assert time.time() - t0 < 30
    assert job.status()["state"] == "stopped"
    kinds = {e["type"] for e in job.events()}
    assert {"start", "step", "sample", "checkpoint", "saved", "done", "state"} <= kinds
    last = job.events()[-1]["seq"]
    assert job.events(after=last) == []
    assert T2IGANPipeline.from_pretrained(tmp_path / "model") is not None
    TrainingJob(cfg(tmp_path / "next", shapes, steps=1)).start().wait(60)  # the slot is free again


def test_running_job_is_checkpointed_when_the_process_exits(tmp_path, shapes):
    """A script (or the app) that ends while a job trains: the job stops with a checkpoint, no crash at exit."""
    script = tmp_path / "exits.py"
    script.write_text(
        "import time\nfrom t2igan.job import TrainingJob\nfrom t2igan.training import TrainConfig\n"
        f"job = TrainingJob(TrainConfig(**{cfg(tmp_path, shapes, steps=100_000, checkpoint_every=10_000).__dict__!r}))\n"
        "job.start()\nwhile job.status()['step'] < 3: time.sleep(0.05)\nprint('leaving at', job.status()['step'])\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "terminate called" not in proc.stderr, proc.stderr[-2000:]
    left_at = int(proc.stdout.split("leaving at")[1])
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["step"] >= left_at
    assert T2IGANPipeline.from_pretrained(tmp_path / "model") is not None


def test_background_job_failure_is_reported(tmp_path):
    job = TrainingJob(cfg(tmp_path, tmp_path / "missing-folder"))
    job.start()
    assert job.wait(60)
    status = job.status()
    assert status["state"] == "failed" and "missing-folder" in status["error"]
    assert any(e["type"] == "error" for e in job.events())


def test_cli_train_then_generate(tmp_path, shapes, weights_root):
    from t2igan.cli import main

    out = weights_root / "shapes"
    assert main(["train", "--data", str(shapes), "--out", str(out), "--run-dir", str(tmp_path / "run"), "--steps", "2",
                 "--batch-size", "4", "--resolution", "32", "--precision", "fp32", "--quiet"]) == 0
    assert main(["train", "--data", str(shapes), "--out", str(out), "--run-dir", str(tmp_path / "run"), "--steps", "3",
                 "--batch-size", "4", "--resolution", "32", "--precision", "fp32", "--resume", "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["step"] == 3
    assert main(["generate", "a red circle", "--model", "shapes", "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()


def test_cli_train_sets_widths_and_rejects_wrong_ones(tmp_path, shapes, capsys):
    from t2igan.cli import main

    base = ["train", "--data", str(shapes), "--steps", "1", "--batch-size", "4", "--resolution", "32",
            "--precision", "fp32", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "m"), "--run-dir", str(tmp_path / "run"),
                        "--set", "g_channels=[24,16,8,8]", "--set", "d_channels=[8,8,16,16]"]) == 0
    pipe = T2IGANPipeline.from_pretrained(tmp_path / "m")
    assert pipe.generator.config.channels == [24, 16, 8, 8]
    assert pipe.discriminator.config.channels == [8, 8, 16, 16]
    assert main(base + ["--out", str(tmp_path / "bad"), "--run-dir", str(tmp_path / "run-bad"),
                        "--set", "g_channels=[24,16,8]"]) == 1
    assert "32-px needs 4 channel widths" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # with --init, wider generator widths grow the model (grow.py), narrower ones prune it (a distillation's
    # student), a mix is an error; the discriminator keeps the init's widths
    assert main(base + ["--out", str(tmp_path / "ft"), "--run-dir", str(tmp_path / "run-ft"), "--init",
                        str(tmp_path / "m"), "--set", "g_channels=[32,24,12,12]", "--set", "d_channels=[12,12,16,16]",
                        "--set", "keep=5", "--set", 'keep_prompts=["an airplane in the sky", "a red circle"]']) == 0
    out = capsys.readouterr().out
    assert "keep 5: holding 1 prompts" in out and "too close to the data's captions: a red circle" in out
    assert "generator widened [24, 16, 8, 8] -> [32, 24, 12, 12]" in out
    assert "d_channels [12, 12, 16, 16] ignored: fine-tuning keeps the architecture" in out
    grown = T2IGANPipeline.from_pretrained(tmp_path / "ft")
    assert grown.generator.config.channels == [32, 24, 12, 12]
    assert grown.discriminator.config.channels == [8, 8, 16, 16]
    grow = ["--out", str(tmp_path / "ft"), "--run-dir", str(tmp_path / "run-ft"), "--init", str(tmp_path / "m"),
            "--set", "g_channels=[32,24,12,12]"]
    assert main(base + grow + ["--steps", "2", "--resume"]) == 0  # a grown run resumes from its checkpoint
    assert load_checkpoint(tmp_path / "run-ft" / CHECKPOINT)["step"] == 2
    assert main(base + ["--out", str(tmp_path / "ft2"), "--run-dir", str(tmp_path / "run-ft2"), "--init",
                        str(tmp_path / "m"), "--set", "g_channels=[32,8,8,8]"]) == 1
    assert "each at least the init's (to widen it) or each at most" in capsys.readouterr().err


def test_distillation_trains_a_narrower_student_towards_its_teacher(tmp_path, shapes, capsys):
    """teacher + narrower g_channels: a pruned copy that learns the teacher's images, reading its conditions; with
    adversarial 0 the critic is never trained (the student's folder keeps the teacher's discriminator)."""
    from t2igan.cli import main

    base = ["train", "--data", str(shapes), "--batch-size", "4", "--resolution", "32", "--precision", "fp32", "--quiet"]
    teacher = tmp_path / "teacher"
    assert main(base + ["--steps", "2", "--out", str(teacher), "--run-dir", str(tmp_path / "run-t"),
                        "--set", "g_channels=[24,16,8,8]"]) == 0
    capsys.readouterr()
    student = ["--out", str(tmp_path / "student"), "--run-dir", str(tmp_path / "run-s"), "--init", str(teacher),
               "--set", f"teacher={teacher}", "--set", "g_channels=[16,12,6,4]", "--set", "adversarial=0",
               "--set", "lr_g=0.002", "--set", "ema_decay=0", "--set", "log_every=1", "--set", "mode_seeking=0"]
    assert main(base + ["--steps", "40"] + student) == 0
    out = capsys.readouterr().out
    assert "generator narrowed [24, 16, 8, 8] -> [16, 12, 6, 4]" in out and "distilling" in out
    stats = [json.loads(line) for line in (tmp_path / "run-s" / "stats.jsonl").read_text().splitlines()]
    first, last = stats[0], stats[-1]
    assert last["step"] == 40 and last["d"] == 0  # no critic steps
    assert last["distill"] < 0.7 * first["distill"], (first["distill"], last["distill"])
    t, s = T2IGANPipeline.from_pretrained(teacher), T2IGANPipeline.from_pretrained(tmp_path / "student")
    assert s.generator.config.channels == [16, 12, 6, 4]
    e = torch.nn.functional.normalize(torch.randn(3, t.generator.config.text_dim), dim=1)
    assert torch.equal(s.generator.conditions(e), t.generator.conditions(e))  # the teacher's latents fit the student
    for a, b in zip(s.discriminator.parameters(), t.discriminator.parameters()):
        assert torch.equal(a, b)
    # a student saved without a critic goes on (the adversarial polish) against the teacher's
    s.register_modules(discriminator=None)
    s.save_pretrained(tmp_path / "bare")
    assert main(base + ["--steps", "1", "--out", str(tmp_path / "polished"), "--run-dir", str(tmp_path / "run-p"),
                        "--init", str(tmp_path / "bare"), "--set", f"teacher={teacher}"]) == 0
    assert f"has no discriminator: starting from {teacher}'s" in capsys.readouterr().out
    assert main(base + ["--steps", "1", "--out", str(tmp_path / "x"), "--run-dir", str(tmp_path / "run-x"),
                        "--set", "adversarial=0"]) == 1
    assert "adversarial 0 leaves nothing to learn from" in capsys.readouterr().err


def test_critics_can_judge_a_student_against_its_teachers_drawings(tmp_path, shapes, monkeypatch, capsys):
    """critic_real = "teacher": the critics' real side is the teacher's drawing of the fake side's noise and
    captions. A student that starts as a copy of its teacher (no augmentation) therefore shows the critic the same
    images on both sides; with the data as real it does not. Asking for it without a teacher is refused."""
    from t2igan.cli import main
    from t2igan.training import loop

    seen = []

    class Recording(loop.CriticLoss):
        def __call__(self, critic, real, fake, *args, **kwargs):
            seen.append((real.detach().clone(), fake.detach().clone()))
            return super().__call__(critic, real, fake, *args, **kwargs)

    monkeypatch.setattr(loop, "CriticLoss", Recording)
    base = ["train", "--data", str(shapes), "--batch-size", "4", "--resolution", "32", "--precision", "fp32", "--quiet",
            "--set", "augment=none", "--set", "keep=0"]
    teacher = tmp_path / "teacher"
    assert main(base + ["--steps", "1", "--out", str(teacher), "--run-dir", str(tmp_path / "run-t"),
                        "--set", "g_channels=[16,12,8,8]"]) == 0
    for real_side in ("teacher", "data"):
        seen.clear()
        run = ["--out", str(tmp_path / real_side), "--run-dir", str(tmp_path / f"r-{real_side}"), "--steps", "1"]
        assert main(base + run + ["--init", str(teacher), "--set", f"teacher={teacher}",
                                  "--set", f"critic_real={real_side}"]) == 0
        real, fake = seen[0]
        assert real.shape == fake.shape
        assert torch.allclose(real, fake, atol=1e-5) == (real_side == "teacher")
    assert main(base + ["--steps", "1", "--out", str(tmp_path / "x"), "--run-dir", str(tmp_path / "run-x"),
                        "--set", "critic_real=teacher"]) == 1
    assert "critic_real 'teacher' needs a teacher" in capsys.readouterr().err


def test_cli_train_with_another_text_encoder_from_a_folder(tmp_path, shapes, capsys):
    """--encoder: a new model on any transformers encoder; one from a local folder travels inside the model folder."""
    import shutil

    from t2igan.cli import main

    from helpers import save_tiny_clip

    clip = save_tiny_clip(tmp_path / "clip")
    base = ["train", "--data", str(shapes), "--steps", "2", "--batch-size", "4", "--resolution", "32",
            "--precision", "fp32", "--quiet", "--set", "ema_decay=0.5"]
    assert main(base + ["--out", str(tmp_path / "m"), "--run-dir", str(tmp_path / "run"), "--encoder", str(clip)]) == 0
    shutil.rmtree(clip)  # the model must not need the folder it was trained from
    pipe = T2IGANPipeline.from_pretrained(tmp_path / "m")
    assert pipe.text_encoder.config.model_type == "clip_text_model" and pipe.text.pooling == "projected"
    assert pipe.generator.config.text_dim == 24 and (tmp_path / "m" / "text_encoder").is_dir()
    a, b = (pipe("a red circle", seed=0, output_type="np").images, pipe("a blue square", seed=0, output_type="np").images)
    assert a.shape == (1, 32, 32, 3) and (a != b).any()
    # fine-tuning keeps the init's encoder and says so when another is asked for
    assert main(base + ["--out", str(tmp_path / "f"), "--run-dir", str(tmp_path / "run-f"), "--init", str(tmp_path / "m"),
                        "--encoder", "minilm-other", "--set", "keep=0"]) == 0
    assert "encoder minilm-other ignored" in capsys.readouterr().out
    assert T2IGANPipeline.from_pretrained(tmp_path / "f").generator.config.text_dim == 24
    # the EMA decay is checked before anything is written
    assert main(base[:-2] + ["--set", "ema_decay=1.0", "--out", str(tmp_path / "bad"), "--run-dir", str(tmp_path / "rb")]) == 1
    assert "ema_decay must be a number from 0" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_cli_progressive_training_grows_a_32px_model_to_64(tmp_path, shapes, capsys):
    from t2igan.cli import main

    base = ["train", "--data", str(shapes), "--steps", "1", "--batch-size", "4", "--precision", "fp32", "--quiet"]
    assert main(base + ["--resolution", "32", "--out", str(tmp_path / "m32"), "--run-dir", str(tmp_path / "r32"),
                        "--set", "g_channels=[24,16,8,8]", "--set", "d_channels=[8,8,16,16]"]) == 0
    grow = base + ["--init", str(tmp_path / "m32"), "--resolution", "64", "--out", str(tmp_path / "m64"),
                   "--run-dir", str(tmp_path / "r64")]
    assert main(grow) == 0
    out = capsys.readouterr().out
    assert "model grown from 32 px to 64 px" in out and "holding" not in out  # no keep by default for a grown model
    pipe = T2IGANPipeline.from_pretrained(tmp_path / "m64")
    assert pipe.generator.config.resolution == pipe.discriminator.config.resolution == 64
    assert pipe.generator.config.channels == [24, 16, 8, 8, 8] and pipe.discriminator.config.channels == [8, 8, 8, 16, 16]
    assert pipe("a red circle", seed=0).images[0].size == (64, 64)
    assert main(grow + ["--steps", "2", "--resume"]) == 0  # the grown run resumes from its checkpoint
    assert load_checkpoint(tmp_path / "r64" / CHECKPOINT)["step"] == 2
    assert main(base + ["--init", str(tmp_path / "m64"), "--resolution", "32", "--out", str(tmp_path / "bad"),
                        "--run-dir", str(tmp_path / "rbad")]) == 1
    assert "grows to 2x, 4x" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_two_process_run_with_accelerate(tmp_path, shapes):
    """The same loop under `accelerate launch` with 2 CPU processes (gloo): rank 0 logs and checkpoints."""
    script = tmp_path / "run2.py"
    script.write_text(
        "import sys\nfrom t2igan.training import TrainConfig, train\n"
        f"train(TrainConfig(**{cfg(tmp_path, shapes, steps=3).__dict__!r}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3], "one log line per step, written by rank 0 only"
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["step"] == 3
    assert T2IGANPipeline.from_pretrained(tmp_path / "model") is not None


def test_cli_train_writes_plain_progress_lines_to_a_log(tmp_path, shapes, capsys):
    """Under nohup or CI the output is a file: progress lines, not a bar's \\r updates; --quiet silences them."""
    from t2igan.cli import main, progress_line

    base = ["train", "--data", str(shapes), "--steps", "3", "--batch-size", "4", "--resolution", "32",
            "--precision", "fp32", "--set", "log_every=1"]
    assert main(base + ["--out", str(tmp_path / "a"), "--run-dir", str(tmp_path / "run-a")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    steps = [line for line in err.splitlines() if line.startswith("step ")]
    assert steps[-1].startswith("step 3/3  D ") and "it/s" in steps[-1] and steps[-1].endswith(" left")
    assert len(steps) == 1  # the default interval (60 s) is longer than this run: only the last step's line
    assert main(base + ["--out", str(tmp_path / "b"), "--run-dir", str(tmp_path / "run-b"), "--quiet"]) == 0
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    line = progress_line({"step": 5, "total": 10, "d": 1.0, "g": 2.0, "penalty": 0.01, "it_s": 0.5, "img_s": 16.0,
                          "eta_s": 7200.0})
    assert line == "step 5/10  D 1.000  G 2.000  gp 0.010  0.50 it/s (16 img/s)  2.0 h left"


def test_a_model_knows_the_styles_its_captions_named(tmp_path, shapes):
    """Captions like 'a red circle, flat style' make 'flat' a style of the model (pipe(..., style='flat')); a
    fine-tune keeps its base's styles and adds those its own captions name."""
    from t2igan.training.state import styles_in

    assert styles_in([["a cat, flat style", "a cat"], ["a dog, outlined style"], ["a cow"]]) == ["flat", "outlined"]
    assert styles_in([["a, flat style"]] + [["b"]] * 199) == [], "a style on under 1 % of the images is noise"
    lines = [json.loads(x) for x in (shapes / "metadata.jsonl").read_text().splitlines()]
    for x in lines:
        x["text"] = x["text"] + [f"{x['text'][0]}, flat style"]
    (shapes / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    train(cfg(tmp_path, shapes, steps=1))
    pipe = T2IGANPipeline.from_pretrained(tmp_path / "model")
    assert pipe.config.styles == ["flat"] and pipe("a red circle", style="flat", seed=0).images
    plain = make_shapes_folder(tmp_path / "plain")
    train(cfg(tmp_path / "ft", plain, steps=1, init=str(tmp_path / "model"), keep=0.0))
    assert T2IGANPipeline.from_pretrained(tmp_path / "ft" / "model").config.styles == ["flat"]
    lines = [json.loads(x) for x in (plain / "metadata.jsonl").read_text().splitlines()]
    for x in lines:
        x["text"] = x["text"] + [f"{x['text'][0]}, outlined style"]
    (plain / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    train(cfg(tmp_path / "more", plain, steps=1, init=str(tmp_path / "model"), keep=0.0))
    assert T2IGANPipeline.from_pretrained(tmp_path / "more" / "model").config.styles == ["flat", "outlined"]
