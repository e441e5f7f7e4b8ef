import pytest
import torch

from t2igan.models import DEFAULT_G_CHANNELS, Affine, Discriminator, Generator, count_flops


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_for_each_size(size):
    g, d = Generator(resolution=size), Discriminator(resolution=size)
    z, e = torch.randn(2, g.config.z_dim), torch.nn.functional.normalize(torch.randn(2, 384), dim=1)
    with torch.no_grad():
        x = g(z, e)
        assert x.shape == (2, 3, size, size)
        assert x.min() >= -1 and x.max() <= 1
        assert d(x, e).shape == (2,)


def test_discriminator_scores_several_captions_from_one_image_pass():
    torch.manual_seed(0)
    d = Discriminator(resolution=32)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    e1, e2 = (torch.nn.functional.normalize(torch.randn(3, 384), dim=1) for _ in range(2))
    with torch.no_grad():
        own, other = d.scores(x, e1, e2)
        assert torch.allclose(own, d(x, e1), atol=1e-6) and torch.allclose(other, d(x, e2), atol=1e-6)
        assert not torch.allclose(own, other)


def test_default_64px_generator_is_cheap():
    g = Generator()
    flops = count_flops(g, torch.randn(1, 64), torch.randn(1, 384))
    assert flops < 0.4e9, f"64-px generator costs {flops / 1e9:.3f} GFLOP/image; the budget is 0.4"
    assert len(DEFAULT_G_CHANNELS[64]) == 5


def test_text_changes_the_image_from_the_start():
    """With random weights the prompt must already move the image as much as the noise does."""
    torch.manual_seed(0)
    g = Generator()
    with torch.no_grad():
        g.blocks[0].fuse1.a1.scale[2].weight.normal_(0, 0.1)  # a few steps of training, roughly
        z = torch.randn(1, 64).repeat(2, 1)
        e = torch.nn.functional.normalize(torch.randn(2, 384), dim=1)
        by_text = (g(z[:1], e[:1]) - g(z[1:], e[1:])).abs().mean()
        z2 = torch.randn(1, 64)
        by_noise = (g(z[:1], e[:1]) - g(z2, e[:1])).abs().mean()
    assert by_text > 0.3 * by_noise


def test_bad_config_is_explained():
    with pytest.raises(ValueError, match="resolution must be one of"):
        Generator(resolution=48)
    with pytest.raises(ValueError, match="needs 5 channel widths"):
        Generator(resolution=64, channels=(64, 32))


def test_save_load_model_folder(tmp_path):
    g = Generator(resolution=32)
    g.save_pretrained(tmp_path / "g")
    assert (tmp_path / "g" / "diffusion_pytorch_model.safetensors").is_file()
    h = Generator.from_pretrained(tmp_path / "g")
    for a, b in zip(g.state_dict().values(), h.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_affine_is_the_same_in_every_layout(dtype):
    """Channels-last inputs take the row-broadcast path when drawing (fast in bf16); values and gradients match
    plain NCHW."""
    torch.manual_seed(0)
    affine = Affine(8, 20)
    for head in (affine.scale[2], affine.shift[2]):
        torch.nn.init.normal_(head.weight)  # not the identity it starts as
    c = torch.randn(3, 8)
    x = torch.randn(3, 20, 6, 5).to(dtype)
    x_cl = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        with torch.no_grad():  # drawing: channels-last takes the rows
            rows = affine(x_cl, c)
        plain, trained = affine(x, c), affine(x_cl, c)
    assert rows.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(rows, plain)
    torch.testing.assert_close(trained, plain)
    (plain.float() ** 2).sum().backward()
    (trained.float() ** 2).sum().backward()
    torch.testing.assert_close(x_cl.grad, x.grad)
