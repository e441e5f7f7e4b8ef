import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from t2igan import T2IGANPipeline


def test_output_types(tiny_pipe):
    pil = tiny_pipe("a red apple", num_images_per_prompt=2, seed=1).images
    assert len(pil) == 2 and isinstance(pil[0], Image.Image) and pil[0].size == (32, 32)
    arr = tiny_pipe("a red apple", seed=1, output_type="np").images
    assert arr.shape == (1, 32, 32, 3) and arr.min() >= 0 and arr.max() <= 1
    pt = tiny_pipe("a red apple", seed=1, output_type="pt").images
    assert pt.shape == (1, 3, 32, 32)
    assert np.allclose(pt.permute(0, 2, 3, 1).numpy(), arr, atol=1e-6)
    assert isinstance(tiny_pipe("a", seed=1, return_dict=False), tuple)


def test_determinism_and_seed_variety(tiny_pipe):
    a = tiny_pipe("a red apple", seed=7, output_type="pt").images
    b = tiny_pipe("a red apple", seed=7, output_type="pt").images
    c = tiny_pipe("a red apple", seed=8, output_type="pt").images
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-3
    four = tiny_pipe("a red apple", seed=7, num_images_per_prompt=4, output_type="pt").images
    # image k uses seed + k (batched kernels may differ in the last float bits)
    assert torch.allclose(four[0], a[0], atol=1e-5) and torch.allclose(four[1], c[0], atol=1e-5)


def test_torch_generator_and_list(tiny_pipe):
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = tiny_pipe("a cat", num_images_per_prompt=2, generator=g1, output_type="pt").images
    b = tiny_pipe("a cat", num_images_per_prompt=2, generator=g2, output_type="pt").images
    assert torch.equal(a, b)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    c = tiny_pipe(["a cat", "a dog"], generator=gens, output_type="pt").images
    assert c.shape[0] == 2


def test_prompt_mixing(tiny_pipe):
    e_cat, e_dog = tiny_pipe.encode_prompt(["a cat", "a dog"])
    mix = tiny_pipe.encode_prompt({"a cat": 1.0, "a dog": 1.0})[0]
    assert torch.allclose(mix.norm(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(mix, torch.nn.functional.normalize(e_cat + e_dog, dim=0), atol=1e-5)
    only_cat = tiny_pipe({"a cat": 1.0, "a dog": 0.0}, seed=0, output_type="pt").images
    assert torch.allclose(only_cat, tiny_pipe("a cat", seed=0, output_type="pt").images, atol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        tiny_pipe.encode_prompt({"a cat": float("nan")})


def test_interpolate_endpoints(tiny_pipe):
    frames = tiny_pipe.interpolate("a cat", "a dog", seed_a=1, seed_b=2, num_frames=5, output_type="pt").images
    assert frames.shape[0] == 5
    start = tiny_pipe("a cat", seed=1, output_type="pt").images[0]
    end = tiny_pipe("a dog", seed=2, output_type="pt").images[0]
    assert torch.allclose(frames[0], start, atol=1e-5) and torch.allclose(frames[-1], end, atol=1e-5)
    steps = (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))
    assert (steps > 0).all()
    for same_end in (dict(), dict(seed_a=3, seed_b=3)):  # a walk to where it starts is one still image
        with pytest.raises(ValueError, match="another end"):
            tiny_pipe.interpolate("a cat", **same_end)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=""), "empty"),
    (dict(prompt="   "), "empty"),
    (dict(prompt="x", num_images_per_prompt=0), "between 1 and"),
    (dict(prompt="x", num_images_per_prompt=-3), "between 1 and"),
    (dict(prompt="x", num_images_per_prompt=2.5), "whole number"),
    (dict(prompt="x", truncation=float("nan")), "truncation"),
    (dict(prompt="x", seed=-1), "seed"),
    (dict(prompt="x", seed=2**70), "seed"),
    (dict(prompt="x", output_type="jpg"), "output_type"),
    (dict(prompt=b"\xff\x00"), "must be text"),
])
def test_bad_arguments_are_explained(tiny_pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipe(**kwargs)


def test_huge_prompt_is_cut_not_crashing(tiny_pipe):
    assert len(tiny_pipe("apple " * 50_000, seed=0).images) == 1


def test_save_load_roundtrip(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "m")
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["_class_name"] == "T2IGANPipeline" and index["text_encoder_id"] == "minilm"
    assert index["text_encoder"] == [None, None], "the bundled encoder is referenced, not copied"
    files = sorted(p.name for p in (tmp_path / "m").rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".ckpt"))]
    loaded = T2IGANPipeline.from_pretrained(tmp_path / "m")
    assert loaded.discriminator is not None
    a = tiny_pipe("a red apple", seed=3, output_type="pt").images
    b = loaded("a red apple", seed=3, output_type="pt").images
    assert torch.allclose(a, b, atol=1e-6)
    loaded.save_pretrained(tmp_path / "m2")
    again = T2IGANPipeline.from_pretrained(tmp_path / "m2")
    assert torch.equal(b, again("a red apple", seed=3, output_type="pt").images)


def test_save_is_atomic_and_replaces(tiny_pipe, tmp_path, monkeypatch):
    tiny_pipe.save_pretrained(tmp_path / "m")
    before = (tmp_path / "m" / "generator" / "diffusion_pytorch_model.safetensors").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(tiny_pipe.generator), "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny_pipe.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "generator" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], "no temp folder left behind"


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        T2IGANPipeline.from_pretrained(tmp_path)


def test_only_safetensors_are_loaded(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "m")
    st = tmp_path / "m" / "generator" / "diffusion_pytorch_model.safetensors"
    torch.save(tiny_pipe.generator.state_dict(), tmp_path / "m" / "generator" / "diffusion_pytorch_model.bin")
    st.unlink()
    with pytest.raises(Exception):
        T2IGANPipeline.from_pretrained(tmp_path / "m")


def test_variation_moves_around_the_seed(tiny_pipe):
    base = tiny_pipe("a cat", seed=4, output_type="pt").images
    var = tiny_pipe("a cat", seed=4, num_images_per_prompt=3, variation=0.2, output_type="pt").images
    far = tiny_pipe("a cat", seed=4, num_images_per_prompt=3, variation=2.0, output_type="pt").images
    assert torch.allclose(var[0], base[0], atol=1e-5)
    near_d, far_d = (var[1:] - base).abs().mean(), (far[1:] - base).abs().mean()
    assert 0 < near_d < far_d


def test_resave_keeps_the_model_card(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "README.md").write_text("# my card")
    tiny_pipe.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "README.md").read_text() == "# my card"


def test_planted_pickle_is_ignored_with_a_warning(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "m")
    evil = tmp_path / "m" / "generator" / "diffusion_pytorch_model.bin"
    evil.write_bytes(b"not even a real pickle: loading it would fail loudly")
    with pytest.warns(UserWarning, match="ignoring generator/diffusion_pytorch_model.bin"):
        loaded = T2IGANPipeline.from_pretrained(tmp_path / "m")
    a = tiny_pipe("a cat", seed=0, output_type="pt").images
    assert torch.allclose(loaded("a cat", seed=0, output_type="pt").images, a, atol=1e-6)


def test_save_killed_between_its_renames_is_recovered(tiny_pipe, tmp_path, monkeypatch):
    """A kill between 'move the old folder aside' and 'move the new one in' leaves `.NAME.old-PID`: loading the model
    by name, by path or with from_pretrained puts it back; temp folders of dead writers are removed by the next save."""
    from t2igan.weights import resolve_model

    monkeypatch.setenv("T2IGAN_WEIGHTS", str(tmp_path))
    tiny_pipe.save_pretrained(tmp_path / "mine")
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    os.replace(tmp_path / "mine", tmp_path / f".mine.old-{dead_pid}")
    assert resolve_model(str(tmp_path / "mine")) == tmp_path / "mine"
    os.replace(tmp_path / "mine", tmp_path / f".mine.old-{dead_pid}")
    assert T2IGANPipeline.from_pretrained(tmp_path / "mine") is not None
    os.replace(tmp_path / "mine", tmp_path / f".mine.old-{dead_pid}")
    (tmp_path / f".mine.tmp-{dead_pid}-abc").mkdir()
    assert resolve_model("mine") == tmp_path / "mine"
    assert T2IGANPipeline.from_pretrained(tmp_path / "mine") is not None
    tiny_pipe.save_pretrained(tmp_path / "mine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_resaved_configs_do_not_record_where_they_were_loaded_from(tiny_pipe, tmp_path):
    import json

    from t2igan import T2IGANPipeline

    tiny_pipe.save_pretrained(tmp_path / "a")
    T2IGANPipeline.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    for config in ("generator/config.json", "discriminator/config.json", "model_index.json"):
        assert "_name_or_path" not in json.loads((tmp_path / "b" / config).read_text()), config


def test_default_truncation_is_the_models_and_travels_with_it(tiny_pipe, tmp_path):
    """A call without `truncation` draws at the model's default_truncation (model_index.json), so the app, the CLI
    and Python give the same images for a model; folders written before the field existed draw at 1.0."""
    from t2igan.weights import default_truncation

    draw = lambda p, **kw: p("a red apple", seed=3, output_type="pt", **kw).images  # noqa: E731
    assert torch.equal(draw(tiny_pipe), draw(tiny_pipe, truncation=1.0))
    pipe = T2IGANPipeline(generator=tiny_pipe.generator, text_encoder=tiny_pipe.text_encoder,
                          tokenizer=tiny_pipe.tokenizer, default_truncation=0.5)
    assert torch.equal(draw(pipe), draw(pipe, truncation=0.5)) and not torch.equal(draw(pipe), draw(pipe, truncation=1.0))
    frames = lambda **kw: pipe.interpolate("a red apple", seed_b=4, num_frames=3, output_type="pt", **kw).images  # noqa: E731
    assert torch.equal(frames(), frames(truncation=0.5))
    pipe.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model_index.json").read_text())["default_truncation"] == 0.5
    assert default_truncation(tmp_path / "m") == 0.5
    assert torch.allclose(draw(T2IGANPipeline.from_pretrained(tmp_path / "m")), draw(pipe), atol=1e-6)
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    del index["default_truncation"]
    (tmp_path / "m" / "model_index.json").write_text(json.dumps(index))
    assert T2IGANPipeline.from_pretrained(tmp_path / "m").config.default_truncation == 1.0
    assert default_truncation(tmp_path / "m") == 1.0 and default_truncation(tmp_path / "nothing-here") == 1.0
    with pytest.raises(ValueError, match="default_truncation must be a number between 0.0 and 4.0, got -1"):
        T2IGANPipeline(generator=tiny_pipe.generator, text_encoder=tiny_pipe.text_encoder,
                       tokenizer=tiny_pipe.tokenizer, default_truncation=-1)


def test_styles_the_model_was_trained_on_are_words_in_the_prompt(tiny_pipe, tmp_path):
    from t2igan import T2IGANPipeline

    assert tiny_pipe.styled("a cat", "any") == "a cat" and tiny_pipe.config.styles == []
    with pytest.raises(ValueError, match="style 'google' is not one this model was trained on \\(it knows: any\\)"):
        tiny_pipe("a cat", style="google")
    styled = T2IGANPipeline(generator=tiny_pipe.generator, text_encoder=tiny_pipe.text_encoder,
                            tokenizer=tiny_pipe.tokenizer, styles=["google", "twitter"])
    assert styled.styled("a cat", "google") == "a cat, google style"
    assert styled.styled({"a cat": 0.7, "a dog": 0.3}, "twitter") == {"a cat, twitter style": 0.7,
                                                                      "a dog, twitter style": 0.3}
    a = styled("a cat", seed=0, style="google", output_type="pt").images
    b = styled("a cat, google style", seed=0, output_type="pt").images
    assert torch.equal(a, b), "a style is its words"
    styled.save_pretrained(tmp_path / "m")
    assert T2IGANPipeline.from_pretrained(tmp_path / "m").config.styles == ["google", "twitter"]


def test_precision_bf16_where_native_and_fp32_exactly(tiny_pipe, monkeypatch):
    """'auto' draws in bf16 on devices that have it natively (close to fp32, not equal); 'fp32' is the generator's
    own fp32 output."""
    from t2igan.device import fast_bf16

    latent = tiny_pipe.latent("a red apple", num_images_per_prompt=2, seed=0)
    with torch.no_grad():
        exact = (tiny_pipe.generator.eval().synthesize(latent.noise, latent.conditions) + 1) / 2
    draw = lambda: tiny_pipe(latents=latent, output_type="pt").images  # noqa: E731
    monkeypatch.setattr(tiny_pipe, "precision", "fp32")
    assert torch.allclose(draw(), exact, atol=1e-5)  # drawing.Drawing: the same sums in another order
    tiny_pipe.precision = "BF16"
    bf16 = draw()
    assert tiny_pipe.precision == "bf16" and not torch.equal(bf16, exact) and (bf16 - exact).abs().mean() < 0.01
    tiny_pipe.precision = "auto"
    assert torch.equal(draw(), bf16 if fast_bf16("cpu") else exact)
    for bad in ("fp16", None):
        with pytest.raises(ValueError, match="precision must be one of|precision must be 'auto'"):
            tiny_pipe.precision = bad
