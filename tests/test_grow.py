import pytest
import torch

from t2igan.grow import widen_generator
from t2igan.models import Generator


def tiny(channels, seed=0):
    torch.manual_seed(seed)
    G = Generator(resolution=32, z_dim=8, text_dim=16, cond_dim=8, channels=channels).eval()
    with torch.no_grad():  # the zero-initialised affine heads would hide wrong copies: make every weight matter
        for p in G.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return G


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


def test_widen_rejects_narrower_wrong_length_and_skip_changes():
    G = tiny([16, 12, 8, 4])
    with pytest.raises(ValueError, match="widths can only grow"):
        widen_generator(G, [16, 12, 8, 2])
    with pytest.raises(ValueError, match="has 4 levels"):
        widen_generator(G, [16, 12, 8])
    with pytest.raises(ValueError, match="skip path"):
        widen_generator(G, [16, 16, 8, 4])
