"""Videos (walks, loops, slider sweeps → MP4 / WebP) and direction sliders, on a tiny model."""
import subprocess

import pytest
import torch
from PIL import Image

from helpers import wake
from t2igan import T2IGANPipeline
from t2igan import directions as sliders
from t2igan.video import prompt_walk, render_frames, seed_loop, slider_sweep, write_video



def test_paths_have_the_right_frames_and_ends(tiny_pipe):
    pipe = wake(tiny_pipe)
    walk = prompt_walk(pipe, ["a cat", "a dog", "a car"], seed=3, frames_per_prompt=5)
    assert len(walk) == 11  # 5 + 5 + the last prompt
    first, last = pipe.latent("a cat", seed=3), pipe.latent("a car", seed=3)
    assert torch.allclose(walk[0].conditions, first.conditions) and torch.allclose(walk[-1].conditions, last.conditions)
    assert all(torch.equal(w.noise, first.noise) for w in walk)
    assert len(prompt_walk(pipe, ["a cat", "a dog"], frames_per_prompt=4, loop=True)) == 8
    loop = seed_loop(pipe, "a cat", [1, 2, 3], frames_per_seed=4)
    assert len(loop) == 12 and torch.allclose(loop[0].noise, pipe.latent("a cat", seed=1).noise)
    assert torch.allclose(loop[4].noise, pipe.latent("a cat", seed=2).noise)
    # eased: the step into a key frame is smaller than the step in the middle of a segment
    step = lambda i: (loop[i + 1].noise - loop[i].noise).norm()  # noqa: E731
    assert step(0) < step(1) and step(3) < step(2)
    with pytest.raises(ValueError, match="two prompts"):
        prompt_walk(pipe, ["a cat"])
    with pytest.raises(ValueError, match="two seeds"):
        seed_loop(pipe, "a cat", [1])


@pytest.mark.parametrize("suffix", [".mp4", ".webp"])
def test_videos_are_valid_files_with_every_frame(tiny_pipe, tmp_path, suffix):
    pipe = wake(tiny_pipe)
    frames = render_frames(pipe, seed_loop(pipe, "a red apple", [0, 1], frames_per_seed=6))
    assert len(frames) == 12 and frames[0].size == (32, 32)
    out = write_video(frames, tmp_path / f"loop{suffix}", fps=12, size=128)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # written atomically: no temp file left
    if suffix == ".webp":
        with Image.open(out) as im:
            assert im.n_frames == 12 and im.size == (128, 128) and im.info.get("loop") == 0
    else:
        import imageio_ffmpeg

        probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out), "-map", "0:v:0", "-c", "copy",
                                "-f", "null", "-"], capture_output=True, text=True)
        assert "h264" in probe.stderr and "yuv420p" in probe.stderr and "128x128" in probe.stderr
        assert "frame=   12" in probe.stderr or "frame=12" in probe.stderr.replace(" ", "")
        assert out.read_bytes()[4:8] == b"ftyp"


def test_bad_video_requests_are_explained(tiny_pipe, tmp_path):
    frames = render_frames(tiny_pipe, prompt_walk(tiny_pipe, ["a", "b"], frames_per_prompt=2))
    with pytest.raises(ValueError, match="written as .mp4 or .webp"):
        write_video(frames, tmp_path / "walk.avi")
    with pytest.raises(ValueError, match="fps must be between"):
        write_video(frames, tmp_path / "walk.webp", fps=0)
    with pytest.raises(ValueError, match="2 to"):
        render_frames(tiny_pipe, frames[:0])


def test_directions_are_found_saved_loaded_and_move_the_picture(tiny_pipe, tmp_path):
    pipe = wake(tiny_pipe)
    z_dim, cond_dim = pipe.generator.config.z_dim, pipe.generator.config.cond_dim
    vectors = sliders.discover(pipe.generator, count=4)  # without prompts' codes: noise directions only
    assert vectors.shape == (4, z_dim + cond_dim) and not vectors[:, z_dim:].any()
    assert torch.allclose(vectors @ vectors.T, torch.eye(4), atol=1e-4)  # orthonormal
    report = sliders.measure(pipe, vectors, ["a cat", "a dog"], seeds=(0,))
    assert [r["direction"] for r in report] == [0, 1, 2, 3] and all(r["change"] > 0 for r in report)
    pipe.directions = (vectors, ["tilt", "b", "c", "d"], report)
    pipe.save_pretrained(tmp_path / "m")
    back = T2IGANPipeline.from_pretrained(tmp_path / "m")
    assert back.directions[1] == ["tilt", "b", "c", "d"] and torch.equal(back.directions[0], vectors)
    still = back("a cat", seed=1, output_type="pt").images
    assert torch.equal(back("a cat", seed=1, directions=[0, 0, 0, 0], output_type="pt").images, still)
    moved = back("a cat", seed=1, directions={0: 2.0}, output_type="pt").images
    assert (moved - still).abs().mean() > 1e-3
    sweep = slider_sweep(back, "a cat", direction=0, seed=1, frames=8)
    assert torch.allclose(sweep[2].noise - sweep[0].noise, 2.0 * vectors[0][None, :z_dim], atol=1e-5)  # peak: +2
    with pytest.raises(ValueError, match="0 to 3"):
        back("a cat", directions={7: 1.0})


def test_text_directions_are_measured_kept_and_move_every_level(tiny_pipe, tmp_path):
    pipe = wake(tiny_pipe)
    z_dim, cond_dim = pipe.generator.config.z_dim, pipe.generator.config.cond_dim
    prompts = ["a cat", "a dog", "a red apple", "a blue car"]
    codes = pipe.latent(prompts, seed=0).conditions[:, 0]
    candidates = sliders.discover(pipe.generator, count=3, codes=codes)
    assert candidates.shape == (6, z_dim + cond_dim)
    assert [sliders.kind(v, z_dim) for v in candidates] == ["noise"] * 3 + ["text"] * 3
    text = candidates[3:, z_dim:]
    # one unit of a text direction is one standard deviation of the prompts' codes along it
    unit = text / text.norm(dim=1, keepdim=True)
    assert torch.allclose((codes @ unit.T).std(0), text.norm(dim=1), rtol=1e-4)
    latent = pipe.latent("a cat", seed=1)
    moved = latent.shifted(2.0 * candidates[4])
    assert torch.equal(moved.noise, latent.noise)
    assert torch.allclose(moved.conditions - latent.conditions, 2.0 * text[1].expand(latent.levels, -1)[None])
    vectors, report = sliders.find(pipe, prompts, count=3)
    assert len(vectors) == 3 and [r["direction"] for r in report] == [0, 1, 2]
    assert [r["change"] for r in report] == sorted((r["change"] for r in report), reverse=True)
    # with an evaluator's figures, a candidate that makes the prompt unrecognisable is dropped even if it moves most
    rows = [{"direction": 0, "change": 0.3, "recognised_at_0": 0.8, "recognised_at_sweep": 0.5},
            {"direction": 1, "change": 0.1, "recognised_at_0": 0.8, "recognised_at_sweep": 0.8},
            {"direction": 2, "change": 0.2, "recognised_at_0": 0.8, "recognised_at_sweep": 0.78}]
    assert sliders.choose(rows, 2) == [2, 1]
    with pytest.raises(ValueError, match="16 \\+ 32 numbers, got 3"):
        latent.shifted(torch.zeros(3))


def test_noise_only_slider_files_still_load(tiny_pipe, tmp_path):
    """Files written before text directions hold [k, z_dim]: they load as noise sliders."""
    from safetensors.torch import save_file

    tiny_pipe.save_pretrained(tmp_path / "m")
    z_dim = tiny_pipe.generator.config.z_dim
    old = torch.nn.functional.normalize(torch.randn(2, z_dim), dim=1)
    save_file({"directions": old}, str(tmp_path / "m" / sliders.FILE), metadata={"names": '["a", "b"]'})
    back = T2IGANPipeline.from_pretrained(tmp_path / "m")
    assert back.directions[1] == ["a", "b"] and torch.equal(back.directions[0][:, :z_dim], old)
    assert not back.directions[0][:, z_dim:].any()
    assert sliders.names(tmp_path / "m") == ["a", "b"]


def test_a_slider_file_from_another_model_is_not_listed(tiny_pipe, tmp_path):
    """A directions file sized for another generator (copied across models) neither loads nor lists slider names,
    so the app does not offer sliders that would fail when moved."""
    from safetensors.torch import save_file

    tiny_pipe.save_pretrained(tmp_path / "m")
    config = tiny_pipe.generator.config
    wrong = torch.randn(2, config.z_dim + config.cond_dim + 1)
    save_file({"directions": wrong}, str(tmp_path / "m" / sliders.FILE), metadata={"names": '["a", "b"]'})
    assert T2IGANPipeline.from_pretrained(tmp_path / "m").directions is None
    assert sliders.names(tmp_path / "m") == []
    right = torch.randn(2, config.z_dim + config.cond_dim)
    save_file({"directions": right}, str(tmp_path / "m" / sliders.FILE), metadata={"names": '["a", "b"]'})
    assert sliders.names(tmp_path / "m") == ["a", "b"]
    save_file({"directions": right}, str(tmp_path / "m" / sliders.FILE), metadata={"names": '["a"]'})  # 2 ≠ 1
    assert sliders.names(tmp_path / "m") == []


def test_models_without_directions_load_and_say_so(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "plain")
    pipe = T2IGANPipeline.from_pretrained(tmp_path / "plain")
    assert pipe.directions is None
    with pytest.raises(ValueError, match="no direction sliders"):
        pipe("a cat", directions={0: 1.0})
    (tmp_path / "plain" / sliders.FILE).write_bytes(b"broken")  # an unreadable file is ignored, not fatal
    assert T2IGANPipeline.from_pretrained(tmp_path / "plain").directions is None
