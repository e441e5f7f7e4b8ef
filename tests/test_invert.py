"""Image to image on a tiny model: any picture in, projection, edits with words, latent files, the CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import wake
from t2igan import Latent
from t2igan.cli import main
from t2igan.images import picture_tensor
from t2igan.invert import Projector, load_encoder, train_encoder
from t2igan.perceptual import LPIPS


@pytest.fixture(scope="module")
def lpips():
    return LPIPS.from_wheel()



def test_any_picture_becomes_one_square_tensor(tmp_path):
    rgba = Image.new("RGBA", (40, 20), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (15, 0, 25, 20))
    x = picture_tensor(rgba, 16)
    assert x.shape == (1, 3, 16, 16) and -1 <= x.min() and x.max() <= 1
    assert torch.allclose(x[0, :, 8, 0], torch.ones(3), atol=0.02)      # transparent → white, not red
    assert x[0, 2, 8, 8] > 0.9 and x[0, 0, 8, 8] < -0.9                  # the centre square: blue
    palette = Image.new("P", (10, 10))
    palette.putpalette([0, 255, 0] * 256)
    assert torch.allclose(picture_tensor(palette, 8)[0, 1], torch.ones(8, 8), atol=1e-3)
    gray16 = Image.fromarray(np.full((12, 12), 65535 // 2, dtype=np.uint16))
    assert abs(picture_tensor(gray16, 8).mean().item()) < 0.02            # mid grey, not white
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    first = picture_tensor(str(tmp_path / "anim.gif"), 8)
    assert first[0, 0].mean() > 0.9 and first[0, 2].mean() < -0.9        # the first frame
    Image.new("L", (7000, 6000)).save(tmp_path / "huge.png")
    with pytest.raises(ValueError, match="huge.png is 7000×6000 pixels: at most 40 megapixels"):
        picture_tensor(str(tmp_path / "huge.png"), 8)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match="notes.png is not a picture this can read") as refused:
        picture_tensor(str(tmp_path / "notes.png"), 8)
    assert str(tmp_path) not in str(refused.value)  # no server path


def test_lpips_is_a_distance(lpips):
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    assert lpips(a, a).abs().max() < 1e-6
    assert (lpips(a, torch.roll(a, 1, dims=3)) < lpips(a, a.flip(0))).all()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_projection_fits_a_picture_the_model_drew(tiny_pipe, lpips, precision):
    pipe = wake(tiny_pipe)
    truth = pipe.latent("a red circle", seed=5)
    picture = pipe(latents=truth).images[0]
    projector = Projector(pipe, lpips=lpips)
    rough = projector(picture, prompt="a blue square", steps=0, precision=precision)
    fit = projector(picture, prompt="a blue square", steps=40, precision=precision)
    assert fit.start == "prompt" and fit.latent.conditions.shape == truth.conditions.shape
    assert torch.allclose(fit.latent.source, pipe.latent("a blue square").conditions[:, 0])
    assert fit.lpips < rough.lpips and fit.psnr > rough.psnr
    redrawn = pipe(latents=fit.latent, output_type="pt").images
    assert redrawn.shape == (1, 3, 32, 32)
    assert fit.latent.noise.dtype == fit.latent.conditions.dtype == torch.float32  # bf16 only inside the fit
    with pytest.raises(ValueError, match="precision must be one of"):
        projector(picture, steps=1, precision="fp8")


def test_projection_matches_the_discriminators_features_and_leaves_the_models_as_they_were(tiny_pipe, lpips):
    from t2igan.invert import critic_features

    pipe = wake(tiny_pipe)
    picture = pipe("a red circle", seed=5).images[0]
    target = picture_tensor(picture, 32)
    D = pipe.discriminator.train()
    before = [p.requires_grad for p in D.parameters()]
    projector = Projector(pipe, lpips=lpips)

    @torch.no_grad()
    def critic_distance(fit) -> float:
        image = pipe(latents=fit.latent, output_type="pt").images * 2 - 1
        return float(sum((a - b).pow(2).sum(1).mean() for a, b in zip(critic_features(D, image),
                                                                         critic_features(D, target))))

    plain = projector(picture, prompt="a blue square", steps=30, critic_weight=0.0)
    matched = projector(picture, prompt="a blue square", steps=30, critic_weight=10.0)
    assert critic_distance(matched) < critic_distance(plain)
    assert D.training and [p.requires_grad for p in D.parameters()] == before


def test_encoder_is_trained_saved_and_gives_the_start(tiny_pipe, lpips, tmp_path):
    pipe = wake(tiny_pipe)
    pipe.save_pretrained(tmp_path / "m")
    train_encoder(pipe, ["a red circle", "a blue square", "a green star"], tmp_path / "m", minutes=0.02,
                  batch_size=8, log=lambda m: None)
    encoder = load_encoder(tmp_path / "m")
    assert encoder is not None and load_encoder(tmp_path) is None
    fit = Projector(pipe, lpips=lpips, encoder=encoder)(pipe("a green star", seed=1).images[0], steps=2)
    assert fit.start == "encoder"


def test_edits_move_the_conditions_by_level(tiny_pipe):
    pipe = wake(tiny_pipe)
    levels = pipe.generator.levels
    picture = pipe.latent("a red apple", seed=2)
    green = pipe.latent("a green apple", seed=2).conditions
    assert torch.equal(pipe.edit(picture, "a green apple", strength=0).conditions, picture.conditions)
    full = pipe.edit(picture, "a green apple", strength=1, split=0)
    assert torch.allclose(full.conditions, green, atol=1e-6) and torch.equal(full.noise, picture.noise)
    half = levels // 2
    layout = pipe.edit(picture, "a green apple", strength=1, split=half)  # the layout levels kept
    assert torch.equal(layout.conditions[:, :half], picture.conditions[:, :half])
    assert torch.allclose(layout.conditions[:, half:], green[:, half:], atol=1e-6)
    default = pipe.edit(picture, "a green apple", strength=1)  # no source known: every level, all the way
    assert torch.allclose(default.conditions, green, atol=1e-6)
    # with a source prompt, or the source a fitted picture carries: the difference of the two prompts is added
    red = pipe.latent("a red apple", seed=2).conditions
    moved = pipe.edit(picture, "a green apple", source_prompt="a red apple", strength=0.5)
    assert torch.allclose(moved.conditions, picture.conditions + 0.5 * (green - red), atol=1e-6)
    fitted = Latent(picture.noise, picture.conditions + 0.1, source=red[:, 0])
    assert torch.allclose(pipe.edit(fitted, "a green apple").conditions, fitted.conditions + (green - red), atol=1e-6)
    # through __call__: an edit, and variations of the edited picture
    images = pipe("a green apple", latents=picture, num_images_per_prompt=3, seed=1, variation=0.3,
                  output_type="pt").images
    assert images.shape[0] == 3
    assert torch.allclose(images[0], pipe(latents=default, output_type="pt").images[0], atol=1e-6)
    assert torch.equal(pipe.edit(Latent.cat([fitted, fitted]), "a cat").source, torch.cat([red[:, 0]] * 2))
    assert (images[1] - images[0]).abs().mean() > 1e-4
    with pytest.raises(ValueError, match="give the prompt to edit toward"):
        pipe(latents=picture, source_prompt="a red apple")


def test_invert_and_edit_from_the_command_line(tiny_pipe, weights_root, tmp_path, capsys):
    wake(tiny_pipe).save_pretrained(weights_root / "tiny")
    tiny_pipe("a red circle", seed=3).images[0].resize((200, 150)).save(tmp_path / "mine.png")
    latent = tmp_path / "mine.safetensors"
    assert main(["invert", str(tmp_path / "mine.png"), "-o", str(latent), "--prompt", "a red circle", "--steps", "5",
                 "--preview", str(tmp_path / "preview.png")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["start"] == "prompt" and report["latent"] == str(latent)
    back, meta = Latent.load(latent)
    assert meta["model"] == "tiny" and meta["picture"] == "mine.png" and len(meta["fingerprint"]) == 16
    assert Image.open(tmp_path / "preview.png").size[0] > 2 * 32
    assert main(["generate", "a blue circle", "--latent", str(latent), "--strength", "0.7", "-n", "2",
                 "--variation", "0.2", "-o", str(tmp_path / "edit.png")]) == 0
    assert Image.open(tmp_path / "edit.png").size == (2 * 32 + 3 * 2, 32 + 2 * 2)
    assert main(["generate", "", "--latent", str(latent), "-o", str(tmp_path / "same.png")]) == 0
    # a latent fitted to another version of the model still draws, with a warning
    wake(tiny_pipe).save_pretrained(weights_root / "tiny")
    capsys.readouterr()
    assert main(["generate", "", "--latent", str(latent), "-o", str(tmp_path / "other.png")]) == 0
    assert "was fitted to tiny" in capsys.readouterr().err
    assert main(["invert", str(tmp_path / "mine.png"), "-o", str(tmp_path / "x.npy")]) == 1
    assert "-o must end in .safetensors" in capsys.readouterr().err
