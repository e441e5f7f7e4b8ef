"""Weight interpolation of two generators of one lineage (t2igan average)."""
import copy

import pytest
import torch

from t2igan import Generator, T2IGANPipeline
from t2igan.average import AverageError, average_models
from t2igan.cli import main
from t2igan.grow import widen_generator

from conftest import TINY_G


def _pair(tiny_pipe, tmp_path):
    """A tiny model and a 'continuation' of it (every generator weight moved), saved as two folders."""
    tiny_pipe.save_pretrained(tmp_path / "base")
    tuned = copy.deepcopy(tiny_pipe)
    with torch.no_grad():
        for p in tuned.generator.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        tuned.discriminator.from_rgb.bias.fill_(0.5)
    tuned.save_pretrained(tmp_path / "tuned")
    return tiny_pipe.generator, tuned.generator


def test_average_is_the_weighted_mean_of_the_generators(tiny_pipe, tmp_path):
    a, b = _pair(tiny_pipe, tmp_path)
    for w in (0.0, 0.3, 1.0):
        info = average_models(tmp_path / "base", tmp_path / "tuned", tmp_path / "mix", weight=w)
        assert info["weight"] == w and info["parameters"] == sum(p.numel() for p in b.parameters())
        mix = T2IGANPipeline.from_pretrained(tmp_path / "mix")
        for (name, pm), pa, pb in zip(mix.generator.named_parameters(), a.parameters(), b.parameters()):
            torch.testing.assert_close(pm, (1 - w) * pa + w * pb, msg=name)
        assert mix.discriminator.from_rgb.bias[0].item() == 0.5, "the discriminator is the tuned model's"
    images = mix(["a red circle"], seed=0, output_type="pt").images
    assert images.shape == (1, 3, 32, 32)


def test_average_can_replace_its_own_input(tiny_pipe, tmp_path):
    a, b = _pair(tiny_pipe, tmp_path)
    average_models(tmp_path / "base", tmp_path / "tuned", tmp_path / "base", weight=0.5)
    mix = T2IGANPipeline.from_pretrained(tmp_path / "base")
    p = next(mix.generator.parameters())
    torch.testing.assert_close(p, (next(a.parameters()) + next(b.parameters())) / 2)
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")], "no temp or old folder left behind"


def test_average_widens_a_narrower_base_as_the_trainer_did(tiny_pipe, tmp_path, capsys, monkeypatch):
    """A continuation trained with --g-channels is averaged with its init widened by the same seeded Net2Net map."""
    monkeypatch.setattr(tiny_pipe, "precision", "fp32")  # widening preserves the function exactly in fp32
    tiny_pipe.save_pretrained(tmp_path / "base")
    wide = copy.deepcopy(tiny_pipe)
    channels = [48, 48, 24, 12]  # TINY_G's (32, 32, 16, 8), each level wider
    grown = widen_generator(tiny_pipe.generator, channels, seed=5)
    wide.register_modules(generator=copy.deepcopy(grown))
    with torch.no_grad():
        for p in wide.generator.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    wide.save_pretrained(tmp_path / "wide")
    info = average_models(tmp_path / "base", tmp_path / "wide", tmp_path / "mix", weight=0.5, seed=5)
    assert info["widened"] == channels
    mix = T2IGANPipeline.from_pretrained(tmp_path / "mix").generator
    assert list(mix.config.channels) == channels
    for (name, pm), pa, pb in zip(mix.named_parameters(), grown.parameters(), wide.generator.parameters()):
        if ".scale.0." in name or ".shift.0." in name:  # an affine head's hidden layer: only the base's units mix
            h = tiny_pipe.generator.get_submodule(name.rsplit(".", 1)[0]).out_features
            torch.testing.assert_close(pm[h:], pb[h:], msg=f"{name}: the units widening added are the tuned's")
            pm, pa, pb = pm[:h], pa[:h], pb[:h]
        torch.testing.assert_close(pm, (pa + pb) / 2, msg=name)
    average_models(tmp_path / "base", tmp_path / "wide", tmp_path / "other-seed", weight=0.5, seed=6)
    other = T2IGANPipeline.from_pretrained(tmp_path / "other-seed").generator
    assert not torch.allclose(other.blocks[1].conv1.weight, mix.blocks[1].conv1.weight), "another seed, other copies"
    # weight 0: the widened base draws what the base drew
    average_models(tmp_path / "base", tmp_path / "wide", tmp_path / "zero", weight=0.0, seed=5)
    zero = T2IGANPipeline.from_pretrained(tmp_path / "zero")
    zero.precision = "fp32"
    torch.testing.assert_close(zero(["a red circle"], seed=0, output_type="pt").images,
                               tiny_pipe(["a red circle"], seed=0, output_type="pt").images, atol=1e-4, rtol=0)
    assert main(["average", str(tmp_path / "base"), str(tmp_path / "wide"), "--seed", "5",
                 "-o", str(tmp_path / "cli")]) == 0
    assert "widened to [48, 48, 24, 12] (seed 5)" in capsys.readouterr().out
    torch.testing.assert_close(T2IGANPipeline.from_pretrained(tmp_path / "cli").generator.state_dict(), mix.state_dict())


def test_average_refuses_other_architectures_and_bad_weights(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "base")
    other = copy.deepcopy(tiny_pipe)
    other.register_modules(generator=Generator(**{**TINY_G, "channels": (32, 16, 16, 8)}))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(AverageError, match="different generators \\(channels\\)"):  # narrower, not wider
        average_models(tmp_path / "base", tmp_path / "other", tmp_path / "mix")
    other.register_modules(generator=Generator(**{**TINY_G, "channels": (40, 48, 24, 8)}))  # skip paths differ
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(AverageError, match="cannot be widened"):
        average_models(tmp_path / "base", tmp_path / "other", tmp_path / "mix")
    for w in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(AverageError, match="between 0 and 1"):
            average_models(tmp_path / "base", tmp_path / "base", tmp_path / "mix", weight=w)
    assert not (tmp_path / "mix").exists()


def test_cli_average(tiny_pipe, tmp_path, capsys):
    _pair(tiny_pipe, tmp_path)
    assert main(["average", str(tmp_path / "base"), str(tmp_path / "tuned"), "--weight", "0.25",
                 "-o", str(tmp_path / "mix")]) == 0
    assert "0.75 ×" in capsys.readouterr().out and (tmp_path / "mix" / "model_index.json").is_file()
    assert main(["average", str(tmp_path / "base"), str(tmp_path / "nowhere"), "-o", str(tmp_path / "m2")]) == 1
    assert "nowhere" in capsys.readouterr().err
