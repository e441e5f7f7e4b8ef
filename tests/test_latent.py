"""Latent: noise + one condition per generator level — drawing, mixing levels, files, and the training regulariser."""
import pytest
import torch

from t2igan import Generator, Latent
from t2igan.training.losses import MixLevels

from conftest import TINY_G
from helpers import wake


def test_a_prompts_latent_draws_what_the_prompt_draws(tiny_pipe):
    latent = tiny_pipe.latent("a red apple", num_images_per_prompt=2, seed=3, truncation=0.7)
    assert latent.noise.shape == (2, TINY_G["z_dim"])
    assert latent.conditions.shape == (2, tiny_pipe.generator.levels, TINY_G["cond_dim"])
    assert torch.equal(latent.conditions[:, 0], latent.conditions[:, -1])  # a plain prompt: one condition everywhere
    direct = tiny_pipe("a red apple", num_images_per_prompt=2, seed=3, truncation=0.7, output_type="pt").images
    drawn = tiny_pipe(latents=latent, output_type="pt").images
    assert torch.allclose(direct, drawn, atol=1e-6)
    # a truncation given with a Latent scales its noise once more
    halved = tiny_pipe(latents=latent, truncation=0.5, output_type="pt").images
    again = tiny_pipe("a red apple", num_images_per_prompt=2, seed=3, truncation=0.35, output_type="pt").images
    assert torch.allclose(halved, again, atol=1e-6)


def test_levels_can_follow_different_prompts(tiny_pipe, monkeypatch):
    monkeypatch.setattr(tiny_pipe, "precision", "fp32")  # compared with the generator's own fp32 output below
    wake(tiny_pipe)
    a = tiny_pipe.latent("a red apple", seed=1)
    b = tiny_pipe.latent("a blue car", seed=2)
    levels = tiny_pipe.generator.levels
    draw = lambda x: tiny_pipe(latents=x, output_type="pt").images  # noqa: E731
    assert torch.allclose(draw(Latent.mix(a, b, levels)), draw(a))
    # split 0: every level reads b's prompt, with a's noise
    assert torch.allclose(draw(Latent.mix(a, b, 0)), draw(Latent(a.noise, b.conditions)))
    mixed = draw(Latent.mix(a, b, 2))
    assert (mixed - draw(a)).abs().mean() > 1e-3 and (mixed - draw(Latent(a.noise, b.conditions))).abs().mean() > 1e-3
    # the generator's own per-level input gives the same picture as the Latent
    e = tiny_pipe.encode_prompt(["a red apple", "a blue car"])
    per_level = torch.stack([e[0]] * 2 + [e[1]] * (levels - 2))[None]
    with torch.no_grad():
        assert torch.allclose((tiny_pipe.generator.eval()(a.noise, per_level) + 1) / 2, mixed, atol=1e-5)


def test_latents_that_do_not_fit_are_refused(tiny_pipe):
    latent = tiny_pipe.latent("a cat")
    with pytest.raises(ValueError, match="levels"):
        tiny_pipe(latents=Latent(latent.noise, latent.conditions[:, :2]))
    with pytest.raises(ValueError, match="split"):
        Latent.mix(latent, latent, 99)
    with pytest.raises(ValueError, match="same B"):
        Latent(torch.zeros(2, 4), torch.zeros(3, 2, 4))


def test_latent_files_round_trip_and_bad_files_are_named(tiny_pipe, tmp_path):
    latent = tiny_pipe.latent(["a cat", "a dog"], seed=4)
    latent.source = latent.conditions[:, 0] + 1
    path = latent.save(tmp_path / "cat.safetensors", {"model": "tiny", "prompt": "a cat"})
    back, meta = Latent.load(path)
    assert torch.equal(back.noise, latent.noise) and torch.equal(back.conditions, latent.conditions)
    assert torch.equal(back.source, latent.source)
    assert meta["model"] == "tiny" and meta["prompt"] == "a cat"
    assert [p.name for p in tmp_path.iterdir()] == ["cat.safetensors"]  # no temp file left beside it
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors is not a readable latent"):
        Latent.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"noise": torch.zeros(1, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="other.safetensors is not a t2igan latent"):
        Latent.load(tmp_path / "other.safetensors")


def test_mixing_regulariser_mixes_the_last_rows_only():
    torch.manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(8, 6), dim=1)
    per_level, judged = MixLevels(0.25)(e, levels=5)
    assert per_level.shape == (8, 5, 6)
    assert torch.equal(per_level[:6], e[:6, None].expand(-1, 5, -1)) and torch.equal(judged[:6], e[:6])
    for row in (6, 7):
        assert torch.equal(per_level[row, 0], e[row])                  # the coarsest level keeps the caption
        assert not torch.equal(per_level[row, -1], e[row])             # the finest reads another image's caption
        assert abs(judged[row].norm().item() - 1) < 1e-5 and not torch.equal(judged[row], e[row])
    unmixed, same = MixLevels(0.0)(e, levels=5)
    assert torch.equal(unmixed, e[:, None].expand(-1, 5, -1)) and torch.equal(same, e)


def test_generator_reads_per_level_sentences_like_one():
    torch.manual_seed(0)
    G = Generator(**TINY_G).eval()
    z, e = torch.randn(3, TINY_G["z_dim"]), torch.randn(3, 384)
    with torch.no_grad():
        assert torch.allclose(G(z, e), G(z, e[:, None].expand(-1, G.levels, -1)), atol=1e-6)


def test_coarse_and_fine_prompts(tiny_pipe):
    wake(tiny_pipe)
    levels = tiny_pipe.generator.levels
    a, b = tiny_pipe.latent("a teddy bear", seed=7), tiny_pipe.latent("made of crochet", seed=7)
    split = tiny_pipe.latent("a teddy bear", seed=7, fine_prompt="made of crochet", split=1)
    assert torch.allclose(split.conditions, Latent.mix(a, b, 1).conditions)
    default = tiny_pipe.latent("a teddy bear", seed=7, fine_prompt="made of crochet")
    assert torch.allclose(default.conditions, Latent.mix(a, b, levels // 2).conditions)
    half = tiny_pipe.latent("a teddy bear", seed=7, fine_prompt="made of crochet", level_weights=[0.5] * levels)
    assert torch.allclose(half.conditions, (a.conditions + b.conditions) / 2, atol=1e-6)
    images = tiny_pipe("a teddy bear", seed=7, fine_prompt="made of crochet", split=1, output_type="pt").images
    assert torch.allclose(images, tiny_pipe(latents=split, output_type="pt").images)
    # one fine prompt per prompt, each drawn num_images_per_prompt times
    two = tiny_pipe.latent(["a cat", "a dog"], num_images_per_prompt=2, fine_prompt=["red", "blue"], split=0)
    assert torch.allclose(two.conditions[2], tiny_pipe.latent("blue").conditions[0], atol=1e-4)
    for kwargs, message in [(dict(split=1), "give fine_prompt"),
                            (dict(fine_prompt="x", split=levels + 1), "split must be between"),
                            (dict(fine_prompt="x", level_weights=[1.0]), "one weight per level"),
                            (dict(fine_prompt="x", split=1, level_weights=[0.0] * levels), "not both"),
                            (dict(fine_prompt=["x", "y", "z"]), "one fine prompt, or one per prompt")]:
        with pytest.raises(ValueError, match=message):
            tiny_pipe("a teddy bear", **kwargs)
