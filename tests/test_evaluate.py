import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import make_shapes_folder
from t2igan.evaluate import (Evaluator, EvalContext, compare_models, contrastive_loss, evaluate_model,
                             format_comparison, format_report, load_evaluator, pipeline_generate_fn, quick_metrics,
                             train_evaluator)
from t2igan.evaluate.metrics import (frechet_distance, frechet_distance_from_stats, mean_over_concepts,
                                     mean_pairwise_cosine_distance, r_precision, r_precision_by, sqrtm_psd)

TINY_EVAL = dict(resolution=32, widths=(8, 16, 16, 32))


@pytest.fixture(scope="module", autouse=True)
def _cache_and_threads(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and 10× faster when the cores are busy
    with pytest.MonkeyPatch.context() as mp:  # the caption-embedding cache stays in this module's temp folder
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_folder(root / "train", copies=2)
    make_shapes_folder(root / "test", copies=2)
    return root


@pytest.fixture(scope="module")
def tiny_evaluator(shapes, text_encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "evaluator"
    info = train_evaluator(shapes / "train", out, steps=6, batch_size=8, text_encoder=text_encoder, log_every=2,
                           val_data=shapes / "test", **TINY_EVAL)
    return out, info


# ------------------------------------------------------------------ Fréchet distance and the matrix square root
def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_mean_shift():
    x = torch.randn(400, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    fds = [frechet_distance(x, x + s) for s in (0.5, 1.0, 2.0)]
    assert fds == pytest.approx([16 * 0.25, 16 * 1.0, 16 * 4.0], rel=1e-6)  # a pure shift adds ‖Δμ‖² exactly
    assert fds[0] < fds[1] < fds[2]


def test_frechet_distance_closed_form_and_singular_covariances():
    d = 6
    # N(0, I) vs N(0, 4I): d·(1 + 4 − 2·2) = d
    assert frechet_distance_from_stats(np.zeros(d), np.eye(d), np.zeros(d), 4 * np.eye(d)) == pytest.approx(d)
    # fewer samples than dimensions: rank-deficient covariances still give a finite, non-negative number
    a, b = torch.randn(5, 32), torch.randn(5, 32) + 1
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd > 0


def test_sqrtm_psd_known_cases():
    assert sqrtm_psd([[4.0, 0.0], [0.0, 9.0]]) == pytest.approx(np.array([[2.0, 0.0], [0.0, 3.0]]))
    assert sqrtm_psd([[5.0, 4.0], [4.0, 5.0]]) == pytest.approx(np.array([[2.0, 1.0], [1.0, 2.0]]))
    b = np.random.RandomState(0).randn(10, 4)
    m = b @ b.T  # PSD of rank 4
    s = sqrtm_psd(m)
    assert s @ s == pytest.approx(m, abs=1e-8)
    assert np.allclose(s, s.T)


# ------------------------------------------------------------------ R-precision, diversity, loss
def test_r_precision_matching_is_one_and_random_is_chance():
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(300, 32, generator=g), dim=-1)
    distractors = torch.randn(300, 99, 32, generator=g)
    assert r_precision(emb, emb, distractors) == 1.0
    n = 3000
    img = torch.randn(n, 32, generator=g)
    rp = r_precision(img, torch.randn(n, 32, generator=g), torch.randn(n, 99, 32, generator=g))
    assert abs(rp - 0.01) < 0.01  # chance is 1/100 (σ ≈ 0.002 here)


def test_mean_over_concepts_counts_each_concept_once():
    hits = torch.tensor([True] * 10 + [False, False])  # one emoji in 10 skin-tone images, two others in one each
    concepts = ["person"] * 10 + ["pizza", "rocket"]
    assert float(hits.float().mean()) == pytest.approx(10 / 12)
    assert mean_over_concepts(hits, concepts) == pytest.approx(1 / 3)
    assert mean_over_concepts(torch.tensor([0.5, 1.0, 0.0]), ["a", "a", "b"]) == pytest.approx(0.375)


def test_mean_pairwise_cosine_distance():
    assert mean_pairwise_cosine_distance(torch.ones(4, 3)) == pytest.approx(0.0)
    assert mean_pairwise_cosine_distance(torch.eye(3)) == pytest.approx(1.0)
    # centring: points on either side of the centre are opposite
    opposite = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    assert mean_pairwise_cosine_distance(opposite, torch.tensor([1.0, 1.0])) == pytest.approx(2.0)


def test_contrastive_loss_leaves_false_negatives_out():
    t = F.normalize(torch.randn(4, 8), dim=-1)
    t[1] = t[0]  # images 0 and 1 share a caption
    fn = torch.zeros(4, 4, dtype=torch.bool)
    fn[0, 1] = fn[1, 0] = True
    scale = torch.tensor(np.log(10.0))
    assert contrastive_loss(t, t, scale, fn) < contrastive_loss(t, t, scale) - 0.1


# ------------------------------------------------------------------ the evaluator network and its training
def test_train_evaluator_saves_and_loads_identically(tiny_evaluator, shapes):
    out, info = tiny_evaluator
    assert info["steps"] == 6 and 0 <= info["r_precision_real_val"] <= 1
    assert (out / "config.json").is_file() and (out / "training.json").is_file()
    assert not any(p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt") for p in out.iterdir())
    assert any(p.suffix == ".safetensors" for p in out.iterdir())
    model = load_evaluator(out)
    again = Evaluator.from_pretrained(str(out), use_safetensors=True).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    f1, v1 = model.encode(x)
    f2, v2 = again.encode(x)
    assert torch.equal(f1, f2) and torch.equal(v1, v2)
    assert f1.shape == (3, model.feature_dim) and v1.norm(dim=-1) == pytest.approx(torch.ones(3), abs=1e-5)
    # any image size is resized; a batch's composition never changes one image's numbers (no batch statistics)
    assert torch.allclose(model.encode(x[:1])[0], f1[:1], atol=1e-5)
    assert model.encode(torch.rand(2, 3, 64, 64))[0].shape == (2, model.feature_dim)
    assert json.loads((out / "training.json").read_text())["steps"] == 6


def test_missing_evaluator_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="t2igan evaluator"):
        load_evaluator(tmp_path / "nothing")


def test_distractors_come_from_other_concepts(tiny_evaluator, shapes, text_encoder):
    ctx = EvalContext(shapes, "train", evaluator=tiny_evaluator[0], text_encoder=text_encoder, diversity_prompts=4,
                      diversity_seeds=2)
    assert ctx.n_candidates == 1 + 22  # 12 concepts × 2 captions, minus the true concept's 2
    captions_of = {f"a {c} {s}": {f"a {c} {s}", f"{s} in {c}"}
                   for c in ("red", "green", "blue", "yellow") for s in ("circle", "square", "triangle")}
    for concept, prompt, distractors in zip(ctx.concepts, ctx.prompts, ctx.distractor_captions):
        assert prompt in captions_of[concept] and not set(distractors) & captions_of[concept]
        assert len(set(distractors)) == len(distractors)
    # look-alikes: the 9 names of other concepts nearest to the evaluated caption (of the 11 there are)
    assert ctx.n_look_alike_candidates == 10
    names = list(captions_of)
    for concept, prompt, near in zip(ctx.concepts, ctx.prompts, ctx.look_alike_captions):
        assert len(set(near)) == 9 and set(near) <= set(names) - {concept}
        sim = dict(zip(names, (text_encoder.encode(names) @ text_encoder.encode(prompt).T).flatten().tolist()))
        left_out = set(names) - set(near) - {concept}
        assert min(sim[n] for n in near) >= max(sim[n] for n in left_out) - 1e-5


# ------------------------------------------------------------------ metrics end to end
def test_evaluate_model_and_quick_metrics_are_deterministic(tiny_pipe, tiny_evaluator, shapes, text_encoder):
    r = evaluate_model(tiny_pipe, data_dir=shapes, split="test", evaluator=tiny_evaluator[0], diversity_prompts=4,
                       diversity_seeds=3, text_encoder=text_encoder, device="cpu")
    assert r["n"] == 24 and r["fd"] >= 0 and r["fd_other_split"] is not None and r["fd_real_halves_n"] == 12
    assert 0 <= r["r_precision"] <= 1 and 0 <= r["r_precision_real"] <= 1
    assert r["r_precision_chance"] == pytest.approx(1 / 23)
    assert 0 <= r["r_precision_look_alikes"] <= 1 and 0 <= r["r_precision_look_alikes_real"] <= 1
    assert r["r_precision_look_alikes_candidates"] == 10 and "among look-alikes" in format_report(r)
    # shapes: every concept (key: the first caption) has 2 images, so the per-concept means equal the plain ones
    assert r["r_precision_concepts"] == pytest.approx(r["r_precision"])
    assert r["r_precision_concepts_real"] == pytest.approx(r["r_precision_real"])
    assert "R-precision per concept" in format_report(r)
    assert r["diversity"] > 0 and r["diversity_ratio"] == pytest.approx(r["diversity"] / r["diversity_real"])
    assert "R-precision" in format_report(r)
    generate = pipeline_generate_fn(tiny_pipe)
    q1 = quick_metrics(generate, data_dir=shapes, evaluator=tiny_evaluator[0], n_prompts=8, diversity_prompts=2,
                       diversity_seeds=2, text_encoder=text_encoder)
    q2 = quick_metrics(tiny_pipe, data_dir=shapes, evaluator=tiny_evaluator[0], n_prompts=8, diversity_prompts=2,
                       diversity_seeds=2, text_encoder=text_encoder)
    assert set(q1) == {"eval_fd", "eval_fd_halves", "eval_fd_real_halves", "eval_r_precision", "eval_r_precision_real",
                       "eval_r_precision_look_alikes", "eval_r_precision_look_alikes_real", "eval_diversity_ratio",
                       "eval_s"}
    assert {k: v for k, v in q1.items() if k != "eval_s"} == {k: v for k, v in q2.items() if k != "eval_s"}


def test_r_precision_by_gives_each_value_its_standard_error_over_concepts():
    # "a": concepts x (hits 1, 1 → 1.0), y (0 → 0.0), z (1, 0 → 0.5); "b": one concept, no error to give
    hits = torch.tensor([1, 1, 0, 1, 0, 1])
    concepts = ["x", "x", "y", "z", "z", "w"]
    per = r_precision_by(hits, concepts, ["a", "a", "a", "a", "a", "b"])
    assert per["a"]["r_precision"] == pytest.approx(0.5) and per["a"]["concepts"] == 3
    assert per["a"]["se"] == pytest.approx(np.std([1.0, 0.0, 0.5], ddof=1) / np.sqrt(3))  # 0.289
    assert per["b"] == {"r_precision": 1.0, "se": None, "concepts": 1}
    report = format_report({"model": "m", "data": "d", "split": "test", "n": 6, "concepts": 4, "evaluator": "e",
                            "seed": 0, "fd_real_halves_n": 3, "fd_n": 6, "fd": 1.0, "fd_halves": 2.0,
                            "fd_real_halves": 1.5, "r_precision_candidates": 100, "r_precision": 0.6,
                            "r_precision_real": 0.7, "r_precision_chance": 0.01, "diversity_seeds": 8,
                            "diversity_prompts": 0, "diversity": None, "diversity_real": None,
                            "diversity_real_any": None, "diversity_ratio": None, "eval_s": 1.0,
                            "by": "category", "r_precision_by": per})
    assert "0.500 ±0.289" in report and "standard error" in report


def test_r_precision_by_a_metadata_field(tiny_pipe, tiny_evaluator, shapes, text_encoder):
    from t2igan.data import DatasetError

    kw = dict(data_dir=shapes, split="test", evaluator=tiny_evaluator[0], diversity_prompts=0,
              text_encoder=text_encoder, device="cpu")
    r = evaluate_model(tiny_pipe, by="shape", **kw)
    assert r["by"] == "shape" and list(r["r_precision_by"]) == ["circle", "square", "triangle"]
    for per in (r["r_precision_by"], r["r_precision_by_real"]):
        assert all(v["concepts"] == 4 for v in per.values())  # 4 colours of each shape
    # the values partition the concepts: their concept-weighted mean is the overall per-concept R-precision
    for key, per in (("r_precision_concepts", r["r_precision_by"]),
                     ("r_precision_concepts_real", r["r_precision_by_real"])):
        assert sum(v["r_precision"] * v["concepts"] for v in per.values()) / 12 == pytest.approx(r[key])
    assert "R-precision per concept ↑ by shape" in format_report(r) and "triangle" in format_report(r)
    # 12 concepts: the overall per-concept figure carries its standard error too, beside the ceiling
    se = r["r_precision_concepts_se"]
    assert se is not None and 0 <= se <= 0.5 / np.sqrt(11) + 1e-9  # the largest spread of values in [0, 1]
    assert f"{r['r_precision_concepts']:.3f} ±{se:.3f}" in format_report(r)
    assert "r_precision_by" not in evaluate_model(tiny_pipe, **kw)
    with pytest.raises(DatasetError, match="'colour'"):
        evaluate_model(tiny_pipe, by="colour", **kw)


def test_eval_cli_prints_table_and_json(tiny_pipe, tiny_evaluator, shapes, weights_root, capsys):
    from t2igan.cli import main

    tiny_pipe.save_pretrained(weights_root / "tiny")
    args = ["eval", "tiny", "--data", str(shapes), "--evaluator", str(tiny_evaluator[0]), "--diversity-prompts", "3",
            "--diversity-seeds", "2", "--device", "cpu", "--n", "10"]
    assert main(args) == 0
    table = capsys.readouterr().out
    for word in ("FD", "R-precision", "Diversity", "real half vs other real half", "ceiling", "chance"):
        assert word in table
    assert main(args + ["--json", "--split", "train", "--n", "10"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["split"] == "train" and line["n"] == 10 and line["fd"] >= 0 and "r_precision_real" in line
    assert main(args + ["--by", "shape"]) == 0 and "by shape" in capsys.readouterr().out
    assert main(["eval", "tiny", "--data", str(shapes), "--evaluator", str(shapes / "none")]) == 1
    assert "no evaluator" in capsys.readouterr().err


def test_compare_models_over_seeds_matches_single_evaluations(tiny_pipe, tiny_evaluator, shapes, text_encoder,
                                                               weights_root, capsys):
    """Models side by side on several seeds: each seed's numbers are exactly what evaluate_model gives for that seed,
    the mean is their mean, and the CLI prints the table (several models or seeds) or JSON."""
    from t2igan import Generator, T2IGANPipeline
    from t2igan.cli import main

    from conftest import TINY_G

    torch.manual_seed(1)
    other = T2IGANPipeline(generator=Generator(**TINY_G), text_encoder=tiny_pipe.text_encoder,
                           tokenizer=tiny_pipe.tokenizer)
    kw = dict(data_dir=shapes, split="test", evaluator=tiny_evaluator[0], diversity_prompts=3, diversity_seeds=2,
              device="cpu", by="shape")
    c = compare_models([tiny_pipe, other], seeds=[0, 5], **kw)
    assert c["seeds"] == [0, 5] and [m["model"] for m in c["models"]] == ["T2IGANPipeline"] * 2
    for model, entry in zip((tiny_pipe, other), c["models"]):
        for i, seed in enumerate((0, 5)):
            single = evaluate_model(model, seed=seed, text_encoder=text_encoder, **kw)
            for key in ("fd", "fd_halves", "r_precision", "r_precision_concepts", "diversity_ratio"):
                assert entry["per_seed"][key][i] == pytest.approx(single[key], abs=1e-6), (key, seed)
        for key, values in entry["per_seed"].items():
            assert entry["mean"][key] == pytest.approx(np.mean(values))
        assert set(entry["by"]) == {"circle", "square", "triangle"}
        assert entry["by"]["circle"] == pytest.approx(np.mean([r["r_precision_by"]["circle"]["r_precision"]
                                                               for r in entry["runs"]]))
    assert c["models"][0]["per_seed"]["fd"] != c["models"][1]["per_seed"]["fd"], "two different models"
    table = format_comparison(c)
    fd = c["models"][1]["per_seed"]["fd"]
    assert "seeds 0, 5" in table and f"({fd[0]:.2f} {fd[1]:.2f})" in table and "by shape" in table
    by_header = table.split("by shape")[1].splitlines()[1]
    assert "1:T2IGANPipe" in by_header and "2:T2IGANPipe" in by_header, "two models of one name: numbered columns"

    tiny_pipe.save_pretrained(weights_root / "tiny")
    other.save_pretrained(weights_root / "other")
    args = ["eval", "tiny", "other", "--data", str(shapes), "--evaluator", str(tiny_evaluator[0]),
            "--diversity-prompts", "2", "--diversity-seeds", "2", "--device", "cpu", "--n", "8", "--seed", "0", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 model(s) × seeds 0, 1" in out and "tiny" in out and "other" in out
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [m["model"] for m in data["models"]] == ["tiny", "other"] and data["n"] == 8
    with pytest.raises(SystemExit):
        main(["eval", "tiny", "--seed", "0", "-1"])
    assert "--seed: must be at least 0, got -1" in capsys.readouterr().err


def test_eval_draws_at_each_models_own_truncation_unless_told(tiny_pipe, tiny_evaluator, shapes, text_encoder):
    """What `t2igan eval` measures is what a user of the model sees: its `default_truncation`, unless one is given."""
    from t2igan import T2IGANPipeline

    own = T2IGANPipeline(generator=tiny_pipe.generator, text_encoder=tiny_pipe.text_encoder,
                         tokenizer=tiny_pipe.tokenizer, default_truncation=0.5)
    kw = dict(data_dir=shapes, split="test", evaluator=tiny_evaluator[0], diversity_prompts=3, diversity_seeds=2,
              device="cpu", text_encoder=text_encoder)
    default, half, one = (evaluate_model(own, truncation=t, **kw) for t in (None, 0.5, 1.0))
    assert (default["truncation"], half["truncation"], one["truncation"]) == (0.5, 0.5, 1.0)
    assert default["diversity"] == pytest.approx(half["diversity"]) and default["fd"] == pytest.approx(half["fd"])
    assert default["diversity"] < one["diversity"], "a noise scale of 0.5 draws less varied images than 1.0"
    c = compare_models([own, tiny_pipe], seeds=[0], **kw)
    assert [m["truncation"] for m in c["models"]] == [0.5, 1.0] and c["truncation"] is None
    assert "truncation" in format_comparison(c) and "0.5" in format_comparison(c)


def test_evaluator_cli_trains_and_saves(shapes, tmp_path, capsys):
    from t2igan.cli import main

    out = tmp_path / "ev"
    assert main(["evaluator", "--data", str(shapes / "train"), "--out", str(out), "--steps", "2", "--batch-size", "4",
                 "--resolution", "32", "--quiet", "--device", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["steps"] == 2 and info["out"] == str(out)
    assert load_evaluator(out).config.resolution == 32


def test_training_logs_held_out_metrics(tiny_evaluator, shapes, tmp_path):
    import json

    from t2igan.training import TrainConfig, train

    events = []
    train(TrainConfig(data=str(shapes / "train"), out=str(tmp_path / "m"), run_dir=str(tmp_path / "run"), steps=4,
                      batch_size=4, resolution=32, g_channels=[32, 32, 16, 8], d_channels=[8, 16, 16, 32], z_dim=16,
                      cond_dim=32, precision="fp32", eval_every=2, eval_data=str(shapes),
                      evaluator=str(tiny_evaluator[0]), sample_every=100, checkpoint_every=100), progress=events.append)
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [2, 4]
    lines = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    logged = [l for l in lines if "eval_r_precision" in l]
    assert len(logged) == 2 and 0 <= logged[0]["eval_r_precision"] <= 1 and logged[0]["eval_fd"] >= 0
