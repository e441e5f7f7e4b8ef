"""drawing.Drawing: the generator rearranged for drawing draws what the generator draws."""
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_G

from t2igan import Generator
from t2igan.drawing import Drawing, interleave_phases, phase_kernels


def _random_generator(**overrides) -> Generator:
    """A tiny generator with every weight random (a new one's affine heads start as the identity, which would hide
    a head drawn from the wrong place)."""
    torch.manual_seed(0)
    g = Generator(**{**TINY_G, **overrides}).eval()
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return g


def _inputs(g: Generator, batch: int = 3):
    torch.manual_seed(1)
    z = torch.randn(batch, g.config.z_dim)
    per_level = torch.randn(batch, g.levels, g.config.cond_dim)  # every level its own condition
    return z, per_level


@pytest.mark.parametrize("cin, cout, size", [(8, 4, 5), (3, 6, 8)])
def test_phase_kernels_are_a_conv_of_the_upsampled_map(cin, cout, size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
    y = torch.randn(2, cin, size, size)
    weight, bias = phase_kernels(conv)
    with torch.no_grad():
        want = conv(F.interpolate(y, scale_factor=2.0, mode="nearest"))
        got = interleave_phases(F.conv2d(y, weight, bias, padding=1))
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, want, atol=1e-5)


def test_drawing_draws_the_generators_images_in_fp32():
    g = _random_generator()
    z, conditions = _inputs(g)
    with torch.no_grad():
        want = g.synthesize(z, conditions)
    got = Drawing.of(g).synthesize(z, conditions)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert (want - g.synthesize(z, conditions.flip(0))).abs().mean() > 0.01, "the conditions matter to this model"


def test_drawing_in_bf16_is_autocast_to_within_rounding():
    g = _random_generator()
    z, conditions = _inputs(g, batch=4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = g.synthesize(z, conditions).float()
    drawn = Drawing.of(g, torch.bfloat16)
    assert drawn.dtype == torch.bfloat16
    got = drawn.synthesize(z, conditions).float()
    assert (got - autocast).abs().mean() < 0.01


def test_drawing_checks_its_inputs_and_upsampling():
    g = _random_generator()
    z, conditions = _inputs(g)
    with pytest.raises(ValueError, match="levels of conditions"):
        Drawing.of(g).synthesize(z, conditions[:, :2])
    with pytest.raises(ValueError, match="nearest up-sampling only"):
        Drawing.of(_random_generator(upsample="bilinear"))


def test_drawing_is_built_under_the_model_lock():
    """A model load patches process-wide state (model_lock.py): a Drawing built during another thread's load got meta
    tensors in the app. Building one waits for the lock."""
    import threading

    from t2igan.model_lock import MODEL_LOCK

    g, built = _random_generator(), threading.Event()
    with MODEL_LOCK:
        threading.Thread(target=lambda: (Drawing.of(g), built.set()), daemon=True).start()
        assert not built.wait(0.5), "built while another thread held the model lock"
    assert built.wait(30)


def test_pipeline_redraws_after_the_weights_change(tiny_pipe):
    """render caches the drawing copy; a fine-tune steps the weights in place and the next image must follow."""
    tiny_pipe.precision = "fp32"
    latent = tiny_pipe.latent("a red apple", num_images_per_prompt=2, seed=0)
    before = tiny_pipe.render(latent)
    assert torch.equal(tiny_pipe.render(latent), before)
    with torch.no_grad():
        tiny_pipe.generator.to_rgb.bias.add_(0.5)  # as an optimiser step does: in place
        want = tiny_pipe.generator.eval().synthesize(latent.noise, latent.conditions)
    after = tiny_pipe.render(latent)
    assert not torch.allclose(after, before) and torch.allclose(after, want, atol=1e-5)


def test_pipeline_draws_bilinear_generators_as_they_are(text_encoder):
    from t2igan import T2IGANPipeline

    pipe = T2IGANPipeline(generator=_random_generator(upsample="bilinear"), text_encoder=text_encoder.model,
                          tokenizer=text_encoder.tokenizer)
    pipe.precision = "fp32"
    latent = pipe.latent("a red apple", num_images_per_prompt=2, seed=0)
    with torch.no_grad():
        want = pipe.generator.synthesize(latent.noise, latent.conditions)
    assert torch.allclose(pipe.render(latent), want, atol=1e-6)
