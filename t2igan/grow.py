"""Grow a trained model instead of starting over: wider (Net2WiderNet, Chen et al. 2016) or one resolution deeper;
or shrink it: narrower, to start a distilled student (training/losses.py: Distill) from its teacher.

Wider: every channel of a level is kept, new channels copy a randomly chosen old one, and every layer that reads the
level splits the old channel's incoming weight among its copies. The split fractions are random (they sum to one), so
the grown model computes the same function but its copies receive different gradients and drift apart during training.
Deeper (progressive training): a new finest level that starts as a plain up-sampling in G and closed in D.
Narrower: each level keeps its most active channels on probe prompts (a pruned copy, as in content-aware GAN
compression), so the student starts from the teacher's drawing rather than from noise and reads the same conditions.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .models import Affine, Discriminator, Generator


def _config(model, **changes) -> dict:
    """The model's constructor arguments (its config without diffusers' private keys), with `changes` applied."""
    return {**{k: v for k, v in model.config.items() if not k.startswith("_")}, **changes}


def _mapping(old: int, new: int, gen: torch.Generator) -> torch.Tensor:
    """new channel → old channel it copies: the first `old` are themselves, the rest random old ones."""
    extra = torch.randint(0, old, (new - old,), generator=gen)
    return torch.cat([torch.arange(old), extra])


def _fractions(index: torch.Tensor, old: int, gen: torch.Generator) -> torch.Tensor:
    """Per new channel, its share of the old channel's outgoing weight; the shares of one old channel sum to 1."""
    u = 0.5 + torch.rand(len(index), generator=gen)
    total = torch.zeros(old).index_add_(0, index, u)
    return u / total[index]


def _check_widths(old: list[int], channels: list[int]) -> None:
    """Widths a model of widths `old` can be widened to, or a ValueError saying why not."""
    if len(channels) != len(old):
        raise ValueError(f"widen: the model has {len(old)} levels {old}; got {len(channels)} widths {channels}")
    if any(n < o for n, o in zip(channels, old)):
        raise ValueError(f"widen: widths can only grow: {old} -> {channels}")
    for (a0, b0), (a1, b1) in zip(zip(old[:-1], old[1:]), zip(channels[:-1], channels[1:])):
        if (a0 == b0) != (a1 == b1):  # a 1×1 skip conv becomes the identity (or back) when in == out widths
            raise ValueError(f"widen: {a0}->{b0} and {a1}->{b1} differ in their skip path; pick widths where "
                             "consecutive levels are equal in both or in neither")


def _level_maps(old: list[int], channels: list[int], gen: torch.Generator):
    """Per level: which old channel each new one copies, and its share of that channel's outgoing weight."""
    maps, shares = [], []
    for k, (o, n) in enumerate(zip(old, channels)):
        if k and o == old[k - 1]:  # identity skip: both levels must copy the same channels
            maps.append(maps[-1]), shares.append(shares[-1])
        else:
            maps.append(_mapping(o, n, gen)), shares.append(_fractions(maps[-1], o, gen))
    return maps, shares


def _copy_out(dst: nn.Module, src: nn.Module, index: torch.Tensor) -> None:
    """Output channels (rows) of a conv/linear: copies."""
    dst.weight.copy_(src.weight[index])
    if src.bias is not None:
        dst.bias.copy_(src.bias[index])


def _split_in(weight: torch.Tensor, index: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """Input channels (columns) of a conv/linear weight: the old channel's weight times each copy's share."""
    shape = [1, -1] + [1] * (weight.dim() - 2)
    return weight[:, index] * share.view(shape)


def _widen_block_convs(dst: nn.Module, src: nn.Module, i_map, i_share, o_map, o_share) -> None:
    """An up- or down-block's conv1 (in → out), conv2 (out → out) and 1×1 skip (in → out) at the new widths."""
    dst.conv1.weight.copy_(_split_in(src.conv1.weight, i_map, i_share)[o_map])
    dst.conv1.bias.copy_(src.conv1.bias[o_map])
    dst.conv2.weight.copy_(_split_in(src.conv2.weight, o_map, o_share)[o_map])
    dst.conv2.bias.copy_(src.conv2.bias[o_map])
    if isinstance(src.skip, nn.Conv2d):
        dst.skip.weight.copy_(_split_in(src.skip.weight, i_map, i_share)[o_map])
        dst.skip.bias.copy_(src.skip.bias[o_map])


def _grow_affine(dst: Affine, src: Affine, index: torch.Tensor, donor: Affine | None = None) -> None:
    """Per-channel scale/shift heads: copy the output rows; new hidden units (wider hidden layer) start with zero
    output weight, and input weights from `donor` (an Affine of the new width) or else dst's random init."""
    for head in ("scale", "shift"):
        d_head, s_head = getattr(dst, head), getattr(src, head)
        h_old = s_head[0].out_features
        if donor is not None:
            hidden = getattr(donor, head)[0]
            d_head[0].weight[h_old:], d_head[0].bias[h_old:] = hidden.weight[h_old:], hidden.bias[h_old:]
        d_head[0].weight[:h_old] = s_head[0].weight
        d_head[0].bias[:h_old] = s_head[0].bias
        d_head[2].weight.zero_()
        d_head[2].weight[:, :h_old] = s_head[2].weight[index]
        d_head[2].bias.copy_(s_head[2].bias[index])


@torch.no_grad()
def widen_generator(G: Generator, channels: list[int] | tuple[int, ...], seed: int = 0,
                    hidden_from: Generator | None = None) -> Generator:
    """A generator with `channels` widths (each ≥ G's) that draws the same images as G (up to float rounding).

    `seed` picks which channels the new ones copy. The hidden units added to the affine heads have zero output weight,
    so their input weights do not change the images: a random init, or `hidden_from`'s (a generator of these widths,
    e.g. one trained from this widening, so that the two differ only in weights the images depend on)."""
    old = list(G.config.channels)
    channels = [int(c) for c in channels]
    _check_widths(old, channels)
    if hidden_from is not None and list(hidden_from.config.channels) != channels:
        raise ValueError(f"widen: hidden_from has widths {list(hidden_from.config.channels)}, not {channels}")
    new = Generator(**_config(G, channels=channels)).to(next(G.parameters()).device)
    maps, shares = _level_maps(old, channels, torch.Generator().manual_seed(seed))

    new.text_map.load_state_dict(G.text_map.state_dict())
    # stem: Linear → (C0, 4, 4); row c·16 + pixel
    rows = (maps[0][:, None] * 16 + torch.arange(16)).flatten()
    _copy_out(new.stem, G.stem, rows)
    for k, (nb, ob) in enumerate(zip(new.blocks, G.blocks)):
        i_map, i_share, o_map, o_share = maps[k], shares[k], maps[k + 1], shares[k + 1]
        donor = hidden_from.blocks[k] if hidden_from is not None else None
        for path, index in (("fuse1.a1", i_map), ("fuse1.a2", i_map), ("fuse2.a1", o_map), ("fuse2.a2", o_map)):
            _grow_affine(nb.get_submodule(path), ob.get_submodule(path), index,
                         donor.get_submodule(path) if donor is not None else None)
        _widen_block_convs(nb, ob, i_map, i_share, o_map, o_share)
    new.to_rgb.weight.copy_(_split_in(G.to_rgb.weight, maps[-1], shares[-1]))
    new.to_rgb.bias.copy_(G.to_rgb.bias)
    return new.train(G.training)


# ============================================================================ deeper: one more resolution level
@torch.no_grad()
def deepen_generator(G: Generator) -> Generator:
    """G at twice its resolution (progressive training): one more up-block, as wide as G's last level, that starts
    as the identity, so the new generator first draws G's images up-sampled and learns the finer level from there."""
    old = list(G.config.channels)
    new = Generator(**_config(G, resolution=2 * G.config.resolution, channels=old + [old[-1]]))
    new.to(next(G.parameters()).device)
    missing, unexpected = new.load_state_dict({k: v for k, v in G.state_dict().items() if not k.startswith("blocks.")},
                                              strict=False)  # the text map, the stem and to_rgb (same width)
    assert not unexpected and all(k.startswith("blocks.") for k in missing), unexpected
    new.blocks[:-1].load_state_dict(G.blocks.state_dict())  # every old level
    top = new.blocks[-1]
    top.conv2.weight.zero_(), top.conv2.bias.zero_()  # residual branch off: the block passes x up-sampled (identity skip)
    return new.train(G.training)


@torch.no_grad()
def deepen_discriminator(D: Discriminator) -> Discriminator:
    """D for twice its resolution: a new first down-block, as wide as D's first level, with its gate closed, so the new
    critic first sees the image through D's own first layer and a 2×2 average, and opens the finer level as it learns."""
    old = list(D.config.channels)
    new = Discriminator(**_config(D, resolution=2 * D.config.resolution, channels=[old[0]] + old))
    new.to(next(D.parameters()).device)
    missing, unexpected = new.load_state_dict({k: v for k, v in D.state_dict().items() if not k.startswith("blocks.")},
                                              strict=False)  # from_rgb, the text map and the heads
    assert not unexpected and all(k.startswith("blocks.") for k in missing), unexpected
    new.blocks[1:].load_state_dict(D.blocks.state_dict())  # every old level, one place further in
    assert new.blocks[0].gate.item() == 0  # a new DownBlock starts closed
    return new.train(D.training)


def deepen_to(G: Generator, D: Discriminator | None, resolution: int):
    """(G, D) grown level by level to `resolution` (a power-of-two multiple of theirs); D may be None."""
    if resolution not in [G.config.resolution * 2**k for k in range(8)]:
        raise ValueError(f"deepen: a {G.config.resolution}-px model grows to 2x, 4x, ... its resolution, "
                         f"not to {resolution} px")
    while G.config.resolution < resolution:
        G = deepen_generator(G)
        D = deepen_discriminator(D) if D is not None else None
    return G, D


# ============================================================================ narrower: a pruned copy (distillation)
@torch.no_grad()
def channel_activity(G: Generator, z: torch.Tensor, e: torch.Tensor) -> list[torch.Tensor]:
    """Per level (the 4×4 stem, then each up-block's output), each channel's mean |activation| over a probe batch."""
    c = G.conditions(e)
    levels = [torch.cat([z, c[:, k]], dim=1) for k in range(G.levels)]
    x = G.stem(levels[0]).view(z.shape[0], -1, 4, 4)
    activity = [x.abs().mean((0, 2, 3))]
    for block, c_k in zip(G.blocks, levels[1:]):
        x = block(x, c_k)
        activity.append(x.abs().mean((0, 2, 3)))
    return activity


def _prune_affine(dst: Affine, src: Affine, index: torch.Tensor) -> None:
    """Per-channel scale/shift heads for the kept channels; a narrower hidden layer keeps the hidden units with the
    largest outgoing weights to those channels."""
    for head in ("scale", "shift"):
        d_head, s_head = getattr(dst, head), getattr(src, head)
        out = s_head[2].weight[index]  # [kept channels, hidden]
        hidden = out.abs().sum(0).topk(d_head[0].out_features).indices.sort().values
        d_head[0].weight.copy_(s_head[0].weight[hidden])
        d_head[0].bias.copy_(s_head[0].bias[hidden])
        d_head[2].weight.copy_(out[:, hidden])
        d_head[2].bias.copy_(s_head[2].bias[index])


@torch.no_grad()
def narrow_generator(G: Generator, channels: list[int] | tuple[int, ...], z: torch.Tensor,
                     e: torch.Tensor) -> Generator:
    """A generator with `channels` widths (each ≤ G's) made of G's weights for each level's most active channels on
    the probe batch (noise z, sentence embeddings e). It reads the same conditions as G (the text map is copied), so
    a latent, a slider or an inversion encoder made for G fits it; it draws an approximation of G's images that a
    distillation run (TrainConfig.teacher) then trains to match."""
    old = list(G.config.channels)
    channels = [int(c) for c in channels]
    if len(channels) != len(old) or any(n > o or n < 1 for n, o in zip(channels, old)):
        raise ValueError(f"narrow: the model has widths {old}; each new width must be from 1 to the old one, "
                         f"got {channels}")
    new = Generator(**_config(G, channels=channels)).to(next(G.parameters()).device)
    activity = channel_activity(G, z, e)
    keep = [a.topk(n).indices.sort().values for a, n in zip(activity, channels)]

    new.text_map.load_state_dict(G.text_map.state_dict())
    _copy_out(new.stem, G.stem, (keep[0][:, None] * 16 + torch.arange(16)).flatten())
    for k, (nb, ob) in enumerate(zip(new.blocks, G.blocks)):
        i, o = keep[k], keep[k + 1]
        for path, index in (("fuse1.a1", i), ("fuse1.a2", i), ("fuse2.a1", o), ("fuse2.a2", o)):
            _prune_affine(nb.get_submodule(path), ob.get_submodule(path), index)
        nb.conv1.weight.copy_(ob.conv1.weight[o][:, i]), nb.conv1.bias.copy_(ob.conv1.bias[o])
        nb.conv2.weight.copy_(ob.conv2.weight[o][:, o]), nb.conv2.bias.copy_(ob.conv2.bias[o])
        if isinstance(nb.skip, nn.Conv2d) and isinstance(ob.skip, nn.Conv2d):
            nb.skip.weight.copy_(ob.skip.weight[o][:, i]), nb.skip.bias.copy_(ob.skip.bias[o])
        elif isinstance(nb.skip, nn.Conv2d):  # the teacher's identity skip: a 1×1 conv that selects the same channels
            nb.skip.weight.copy_((o[:, None] == i[None, :]).float()[:, :, None, None]), nb.skip.bias.zero_()
    new.to_rgb.weight.copy_(G.to_rgb.weight[:, keep[-1]])
    new.to_rgb.bias.copy_(G.to_rgb.bias)
    return new.train(G.training)
