import pytest
import torch
import torch.nn.functional as F

from t2igan.grow import deepen_discriminator, deepen_generator, deepen_to, narrow_generator, widen_generator
from t2igan.models import Discriminator, Generator


def jittered(model):
    """The zero-initialised affine heads and closed gates would hide wrong copies: make every weight matter."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def tiny(channels, seed=0):
    torch.manual_seed(seed)
    return jittered(Generator(resolution=32, z_dim=8, text_dim=16, cond_dim=8, channels=channels))


def inputs(n=4):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 8, generator=g), torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=1)


@pytest.mark.parametrize("old,new", [([16, 12, 8, 4], [24, 16, 12, 6]),      # every skip a 1×1 conv
                                     ([16, 16, 8, 8], [24, 24, 12, 12]),      # identity skips stay identities
                                     ([16, 12, 8, 4], [16, 12, 8, 4])])       # same widths: a copy
def test_widened_generator_draws_the_same_images(old, new):
    G = tiny(old)
    W = widen_generator(G, new, seed=3).eval()
    assert W.config.channels == new
    z, e = inputs()
    with torch.no_grad():
        a, b = G(z, e), W(z, e)
    assert a.std() > 0.05  # a real image, not a saturated constant
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_copies_drift_apart_under_training():
    """Random split shares: a copied channel and its original get different gradients (Net2Net symmetry breaking)."""
    G = tiny([16, 12, 8, 4])
    W = widen_generator(G, [16, 24, 8, 4], seed=0).train()
    z, e = inputs(8)
    W(z, e).square().mean().backward()
    weight, grad = W.blocks[0].conv1.weight, W.blocks[0].conv1.weight.grad  # level 1: rows 12.. copy old rows
    for new_row in range(12, 24):
        original = next(r for r in range(12) if torch.equal(weight[r], weight[new_row]))
        assert not torch.allclose(grad[new_row], grad[original])


@pytest.mark.parametrize("old,new", [([16, 12, 8, 4], [14, 10, 7, 3]),   # every skip a 1×1 conv
                                     ([16, 16, 8, 8], [14, 12, 7, 6])])  # the identity skips become convs
def test_narrowed_generator_keeps_the_teachers_text_map_and_approximates_its_images(old, new):
    G = tiny(old)
    z, e = inputs(32)
    N = narrow_generator(G, new, z, e).eval()
    assert N.config.channels == new
    assert torch.equal(N.conditions(e), G.conditions(e))  # the same conditions: latents and sliders fit both
    z, e = inputs(8)
    with torch.no_grad():
        target, pruned = G(z, e), N(z, e)
        unrelated = tiny(new, seed=7)(z, e)
    assert (pruned - target).abs().mean() < 0.75 * (unrelated - target).abs().mean()
    assert torch.equal(narrow_generator(G, old, z, e)(z, e), G(z, e))  # the same widths: a copy


def test_narrow_rejects_wider_and_wrong_length():
    G = tiny([16, 12, 8, 4])
    z, e = inputs()
    with pytest.raises(ValueError, match="from 1 to the old one"):
        narrow_generator(G, [16, 12, 8, 5], z, e)
    with pytest.raises(ValueError, match="from 1 to the old one"):
        narrow_generator(G, [16, 12, 8], z, e)


def test_widen_rejects_narrower_wrong_length_and_skip_changes():
    G = tiny([16, 12, 8, 4])
    with pytest.raises(ValueError, match="widths can only grow"):
        widen_generator(G, [16, 12, 8, 2])
    with pytest.raises(ValueError, match="has 4 levels"):
        widen_generator(G, [16, 12, 8])
    with pytest.raises(ValueError, match="skip path"):
        widen_generator(G, [16, 16, 8, 4])


def tiny_d(seed=0):
    torch.manual_seed(seed)
    return jittered(Discriminator(resolution=32, text_dim=16, cond_dim=8, channels=[8, 12, 16, 16]))


def test_deepened_generator_starts_as_the_upsampled_one():
    """Progressive training: the added 64-px level passes the 32-px features up unchanged, so the images stay put."""
    G = tiny([16, 12, 8, 4])
    H = deepen_generator(G).eval()
    assert H.config.resolution == 64 and H.config.channels == [16, 12, 8, 4, 4]
    z, e = inputs()
    c = torch.cat([z, G.conditions(e)[:, -1]], dim=1)  # what the finest level reads: [noise, its text code]
    x = torch.randn(4, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(H.blocks[-1](x, c), F.interpolate(x, scale_factor=2.0))  # the new level: identity at first
        a, b = G(z, e), H(z, e)
        fresh = Generator(**H.config).eval()(z, e)
    assert b.shape == (4, 3, 64, 64)
    for k, v in G.state_dict().items():  # every trained weight is kept
        assert torch.equal(H.state_dict()[k], v), k
    near, far = (F.avg_pool2d(b, 2) - a).abs().mean(), (F.avg_pool2d(fresh, 2) - a).abs().mean()
    assert near < 0.2 * far, (near, far)


def test_deepened_generator_learns_its_new_level():
    H = deepen_generator(tiny([16, 12, 8, 4])).train()
    z, e = inputs(8)
    H(z, e).square().mean().backward()
    assert H.blocks[-1].conv2.weight.grad.abs().sum() > 0  # zero-initialised, but not stuck


def test_deepened_discriminator_scores_like_the_pooled_one():
    D = tiny_d()
    E = deepen_discriminator(D).eval()
    assert E.config.resolution == 64 and E.config.channels == [8, 8, 12, 16, 16]
    x = torch.tanh(F.interpolate(torch.randn(4, 3, 8, 8), size=64, mode="bilinear"))  # smooth, like an image
    _, e = inputs()
    with torch.no_grad():
        a, b = D(F.avg_pool2d(x, 2), e), E(x, e)
        fresh = Discriminator(**E.config).eval()(x, e)
    assert (a - b).abs().max() < 0.1 * (a - fresh).abs().max(), (a, b, fresh)
    assert E.blocks[0].gate.item() == 0  # the finer level opens as D learns


def test_deepen_to_checks_the_target_size():
    G, D = tiny([16, 12, 8, 4]), tiny_d()
    H, E = deepen_to(G, D, 128)
    assert H.config.resolution == E.config.resolution == 128 and len(H.config.channels) == 6
    assert deepen_to(G, None, 32)[0] is G
    for bad in (16, 48, 96):
        with pytest.raises(ValueError, match="grows to 2x, 4x"):
            deepen_to(G, D, bad)
