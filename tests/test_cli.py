import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from t2igan import T2IGANPipeline
from t2igan.cli import main


def test_generate_grid_and_separate(tiny_pipe, weights_root, tmp_path, capsys):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    out = tmp_path / "out.png"
    assert main(["generate", "a red apple", "--seed", "3", "-n", "4", "--truncation", "0.8", "-o", str(out)]) == 0
    grid = Image.open(out)
    assert grid.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
    assert main(["generate", "a cat", "-n", "2", "--separate", "--model", "tiny", "-o", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s-00.png").size == (32, 32) and (tmp_path / "s-01.png").exists()
    assert main(["generate", "a cat", "--mix", "a dog", "--mix-weight", "0.3", "--upscale", "4",
                 "--model", str(weights_root / "tiny"), "-o", str(tmp_path / "m.png")]) == 0
    assert Image.open(tmp_path / "m.png").size == (128, 128)


def test_interpolate_gif(tiny_pipe, weights_root, tmp_path):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    assert main(["interpolate", "a cat", "a dog", "--seed-b", "4", "--frames", "4", "-o", str(tmp_path / "i.gif")]) == 0
    gif = Image.open(tmp_path / "i.gif")
    assert gif.n_frames >= 4


def test_no_model_is_a_clear_error(weights_root, capsys):
    assert main(["generate", "a cat"]) == 1
    assert "no trained model found" in capsys.readouterr().err


def test_bad_values_are_errors_not_tracebacks(tiny_pipe, weights_root, capsys):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    assert main(["generate", "a cat", "--truncation", "nan"]) == 1
    assert "truncation" in capsys.readouterr().err
    assert main(["generate", "a cat", "--model", "nope"]) == 1
    assert "not found" in capsys.readouterr().err


def test_bad_arguments_name_the_flag_and_fail_before_generating(tiny_pipe, weights_root, tmp_path, capsys):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    for argv, message in [
        (["generate", "a cat", "--upscale", "100000"], "argument --upscale: must be between 1 and 32, got 100000"),
        (["generate", "a cat", "--seed", "-5"], "argument --seed: must be at least 0, got -5"),
        (["interpolate", "a cat", "--frames", "1"], "argument --frames: must be between 2 and 256, got 1"),
        (["eval", "tiny", "--n", "0"], "argument --n: must be at least 2, got 0"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err, argv
    for argv, message in [
        (["generate", "a cat", "-o", str(tmp_path)], "is a folder: give a file name"),
        (["generate", "a cat", "-o", str(tmp_path / "x.txt2")], ".txt2 is not an image format"),
        (["interpolate", "a cat", "--seed-b", "0"], "interpolate needs another end"),
        (["sheet", "--prompts", "|||", "-o", str(tmp_path / "s.png")], "--prompts holds no prompt"),
        (["info", "--model", "nope"], "not found"),
    ]:
        assert main(argv) == 1, argv
        out = capsys.readouterr()
        assert message in out.err + out.out, argv
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_info_and_console_script(tiny_pipe, weights_root, tmp_path):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    proc = subprocess.run([sys.executable, "-m", "t2igan", "info", "--device", "cpu"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "device: cpu" in proc.stdout and "tiny" in proc.stdout and "minilm" in proc.stdout
    assert "direction_sliders: none" in proc.stdout and "inversion_encoder: False" in proc.stdout


def test_bench_prints_json(tiny_pipe, weights_root, capsys):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    assert main(["bench", "--batches", "1", "2", "--repeats", "1"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["bench"] == "generate" and line["batch2_images_per_s"] > 0 and line["peak_rss_MB"] > 0
    assert 0 < line["gflop_per_image_as_drawn"] < line["gflop_per_image"]  # drawing.py saves work
    assert main(["bench", "--batches", "1", "--repeats", "1", "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["precision"] == "fp32"


def test_peer_is_dfgans_64px_generator_and_the_peer_bench_prints_both_ratios(tiny_pipe, weights_root, capsys):
    import torch

    from t2igan.models import count_flops
    from t2igan.peer import DFGANGenerator

    peer = DFGANGenerator()
    assert [b.conv0.out_channels for b in peer.blocks] == [256, 128, 64, 32]  # nf 32: 8, 8, 4, 2, 1 × nf
    assert peer(torch.randn(2, 100), torch.randn(2, 256)).shape == (2, 3, 64, 64)
    assert 0.88e9 < count_flops(peer, torch.randn(1, 100), torch.randn(1, 256)) < 0.91e9  # the paper's 0.90 GFLOP
    tiny_pipe.save_pretrained(weights_root / "tiny")
    assert main(["bench", "--peer", "--batch-size", "2", "--repeats", "1"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["bench"] == "vs_peer" and line["ratio_ours_vs_peer_fp32"] > 0
    from t2igan.device import fast_bf16

    if fast_bf16("cpu"):  # both in bf16, only where it is native (emulated bf16 is many times slower than fp32)
        assert line["ratio_bf16_vs_peer_bf16"] > 0 and line["peer_bf16_channels_last_ms_per_image"] > 0
    else:
        assert line["ratio_bf16_vs_peer_bf16"] is None and "ours_bf16_ms_per_image" not in line
    assert line["peer_fp32_channels_last_ms_per_image"] > 0 and line["cpu"]


def test_generate_precision_fp32_draws_the_generators_fp32_images(tiny_pipe, weights_root, tmp_path):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    pipe = T2IGANPipeline.from_pretrained(weights_root / "tiny")
    pipe.precision = "fp32"
    expected = np.asarray(pipe("a red apple", seed=3).images[0])
    for precision in ("fp32", "bf16"):
        assert main(["generate", "a red apple", "--seed", "3", "--precision", precision,
                     "-o", str(tmp_path / f"{precision}.png")]) == 0
    fp32, bf16 = (np.asarray(Image.open(tmp_path / f"{p}.png").convert("RGB")) for p in ("fp32", "bf16"))
    assert np.array_equal(fp32, expected) and not np.array_equal(bf16, expected)


def test_prompt_sheet(tiny_pipe, weights_root, tmp_path):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    assert main(["sheet", "--prompts", "a cat|a dog|a red apple", "--seeds", "0", "1", "-o", str(tmp_path / "s.png")]) == 0
    sheet = Image.open(tmp_path / "s.png")
    # 3 prompts in 2 panels of 2 rows; each panel: label + 2 seeds of 2× enlarged 32-px images
    assert sheet.height == 2 * (64 + 4) + 4 and sheet.width == 2 * (200 + 2 * (64 + 4) + 4)


def test_objects_sheet_six_seeds(tiny_pipe, weights_root, tmp_path, capsys):
    from t2igan.sheet import OBJECT_PROMPTS

    tiny_pipe.save_pretrained(weights_root / "tiny")
    # the objects the v2 issue names are on the sheet, so that nobody can drop the hard ones
    for p in ("umbrella", "rainbow", "guitar", "house", "snowman", "birthday cake", "cat", "robot", "banana",
              "soccer ball"):
        assert any(p in prompt for prompt in OBJECT_PROMPTS), p
    assert main(["sheet", "--set", "objects", "--seeds", "0", "1", "2", "3", "4", "5", "-o", str(tmp_path / "o.png")]) == 0
    sheet = Image.open(tmp_path / "o.png")
    assert sheet.height == 12 * (64 + 4) + 4 and sheet.width == 2 * (200 + 6 * (64 + 4) + 4)
    assert main(["sheet", "--set", "objects", "--style", "cubist", "-o", str(tmp_path / "x.png")]) == 1
    assert "style 'cubist' is not one this model was trained on" in capsys.readouterr().err


def test_export_zip_and_onnx(tiny_pipe, weights_root, tmp_path, capsys):
    import zipfile

    import pytest

    tiny_pipe.save_pretrained(weights_root / "tiny")
    assert main(["export", "--model", "tiny", "-o", str(tmp_path / "tiny.zip")]) == 0
    assert "tiny/model_index.json" in zipfile.ZipFile(tmp_path / "tiny.zip").namelist()
    pytest.importorskip("onnxruntime")
    assert main(["export", "--onnx", "--model", "tiny", "-o", str(tmp_path / "g.onnx")]) == 0
    assert "max |diff|" in capsys.readouterr().out and (tmp_path / "g.onnx").stat().st_size > 0


def test_generate_draws_at_the_models_default_truncation_and_info_shows_it(tiny_pipe, weights_root, tmp_path, capsys):
    from t2igan import T2IGANPipeline

    T2IGANPipeline(generator=tiny_pipe.generator, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer,
                   default_truncation=0.5).save_pretrained(weights_root / "tiny")
    pixels = lambda name: np.asarray(Image.open(tmp_path / name))  # noqa: E731
    for flags, name in (([], "default.png"), (["--truncation", "0.5"], "half.png"), (["--truncation", "1"], "one.png")):
        assert main(["generate", "a red apple", "--seed", "3", "--separate", "-o", str(tmp_path / name)] + flags) == 0
    assert np.array_equal(pixels("default.png"), pixels("half.png"))
    assert not np.array_equal(pixels("default.png"), pixels("one.png"))
    capsys.readouterr()
    assert main(["info"]) == 0
    assert "default_truncation: 0.5" in capsys.readouterr().out


def test_generate_in_a_style(tmp_path, tiny_pipe, capsys):
    from t2igan import T2IGANPipeline
    from t2igan.cli import main

    T2IGANPipeline(generator=tiny_pipe.generator, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer,
                   styles=["flat"]).save_pretrained(tmp_path / "m")
    assert main(["generate", "a cat", "--style", "flat", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "a.png")]) == 0
    assert main(["generate", "a cat", "--style", "pixel", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "b.png")]) == 1
    assert "style 'pixel' is not one this model was trained on (it knows: any, flat)" in capsys.readouterr().err
    assert main(["info", "--model", str(tmp_path / "m")]) == 0 and "any, flat" in capsys.readouterr().out


def test_directions_are_found_measured_and_renamed(tiny_pipe, weights_root, tmp_path, capsys):
    tiny_pipe.save_pretrained(weights_root / "tiny")
    assert main(["directions", "tiny", "--count", "3", "--no-eval", "--sheet", str(tmp_path / "s.png"),
                 "--prompts", "a cat|a dog"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["name"] for r in rows] == ["direction 1", "direction 2", "direction 3"]
    assert all("change" in r for r in rows) and Image.open(tmp_path / "s.png").height > 6 * 64
    assert main(["directions", "tiny", "--names", "tilt|b|c"]) == 0
    assert [json.loads(x)["name"] for x in capsys.readouterr().out.splitlines()] == ["tilt", "b", "c"]
    assert main(["directions", "tiny", "--names", "only-one"]) == 1
    assert "3 directions need as many names" in capsys.readouterr().err


def test_emoji_defaults_are_the_sets_the_shipped_models_were_trained_on():
    """`t2igan data emoji` builds, and `t2igan eval` and the Train tab read, one dataset: the five sets the shipped
    models were trained on, where their cards say (before, the default was a two-set build in another folder)."""
    from t2igan.cli import build_parser
    from t2igan.paths import EMOJI_DATA, weights_dir
    from t2igan.ui.train_tab import EMOJI, emoji_data_dir

    parser = build_parser()
    data = parser.parse_args(["data", "emoji"])
    assert data.out == EMOJI_DATA and data.vendors == ["google", "twitter", "fluent", "openmoji", "emojione"]
    assert parser.parse_args(["eval"]).data == EMOJI_DATA
    assert emoji_data_dir() == weights_dir().parent / EMOJI_DATA / "train" and f"({EMOJI_DATA}/train)" in EMOJI
    assert f"--data {EMOJI_DATA}/train" in (weights_dir() / "emoji-64-v2" / "README.md").read_text()
