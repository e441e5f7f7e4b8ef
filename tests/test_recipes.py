"""Recipes: the shipped TOML files, stages, --set, and the CLI and app starting from them."""
import json

import pytest

from t2igan.training import TrainConfig
from t2igan.training.recipes import (RecipeError, configs_from_recipe, list_recipes, load_recipe, parse_setting)


def test_shipped_recipes_load_into_train_configs():
    assert set(list_recipes()) == {"emoji-64", "emoji-64-v2", "emoji-64-v2-fast", "fine-tune", "from-scratch"}
    (ft,) = configs_from_recipe("fine-tune", data="d", out="weights/x", init="emoji-64")
    assert (ft.steps, ft.batch_size, ft.lr_g, ft.lr_d, ft.keep, ft.mixing) == (400, 16, 1e-4, 2e-4, None, 0.0)
    (v2,) = configs_from_recipe("emoji-64-v2", data="d", out="o", init="emoji-64")
    assert v2.mixing == 0.25 and v2.balance_by == "base" and v2.feature_critic == "runs/features-emoji-v2"
    match, polish, sharpen = configs_from_recipe("emoji-64-v2-fast", data="d", out="o", init="emoji-64-v2")
    assert match.teacher == polish.teacher == sharpen.teacher == "emoji-64-v2" and match.init == "emoji-64-v2"
    assert polish.init == match.out and sharpen.init == polish.out
    assert (match.adversarial, polish.adversarial) == (0.0, 1.0) and polish.g_channels is None  # the student's own
    assert (polish.critic_real, sharpen.critic_real) == ("data", "teacher")
    (emoji,) = configs_from_recipe("emoji-64", data="d", out="o", init="emoji-64")
    assert emoji.balance_by == "base" and emoji.mode_seeking == 0.1 and emoji.ema_rampup is False


def test_stages_chain_and_split_the_steps(tmp_path):
    low, high = configs_from_recipe("from-scratch", data="d", out=str(tmp_path / "m"), run_dir=str(tmp_path / "run"),
                                    steps=300, keep_prompts=["a"])
    assert (low.resolution, high.resolution) == (32, 64) and (low.steps, high.steps) == (100, 200)
    assert low.init is None and high.init == low.out == str(tmp_path / "run" / "stage-32px" / "model")
    assert high.out == str(tmp_path / "m") and high.run_dir == str(tmp_path / "run" / "stage-64px")
    assert high.keep == 0.0, "a later stage holds nothing to the stage before"
    (only,) = configs_from_recipe("from-scratch", data="d", out="o", resolution=32)
    assert only.resolution == 32 and only.steps == 12000, "a size asked for runs one stage, all the steps"


def test_bad_recipes_and_settings_are_named(tmp_path):
    bad = tmp_path / "mine.toml"
    bad.write_text('steps = 10\nbatch_sise = 4\n')
    with pytest.raises(RecipeError, match=r"recipe mine.toml: unknown setting\(s\) batch_sise"):
        load_recipe(bad)
    bad.write_text('out = "weights/x"\n')
    with pytest.raises(RecipeError, match="out belong to a run, not a recipe"):
        load_recipe(bad)
    bad.write_text('steps = \n')
    with pytest.raises(RecipeError, match="recipe mine.toml:"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no recipe named 'nope'"):
        load_recipe("nope")
    assert parse_setting("g_channels=[1, 2]") == ("g_channels", [1, 2])
    assert parse_setting("balance-by=base") == ("balance_by", "base")
    assert parse_setting("ema_rampup=false") == ("ema_rampup", False)
    for text, words in (("keep", "key=value"), ("colour=red", "no setting 'colour'")):
        with pytest.raises(RecipeError, match=words):
            parse_setting(text)


def test_a_recipe_file_from_the_cli_in_two_stages(tmp_path, capsys):
    from helpers import make_shapes_folder
    from t2igan import T2IGANPipeline
    from t2igan.cli import main

    shapes = make_shapes_folder(tmp_path / "shapes", copies=1)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('description = "tiny"\nbatch_size = 4\nprecision = "fp32"\n'
                      '[[stages]]\nname = "low"\nresolution = 32\nsteps = 1\n'
                      '[[stages]]\nname = "high"\nresolution = 64\nsteps = 2\n')
    args = ["train", "--recipe", str(recipe), "--data", str(shapes), "--out", str(tmp_path / "m"), "--run-dir",
            str(tmp_path / "run"), "--quiet", "--set", "g_channels=[24,16,8,8]", "--set", "d_channels=[8,8,16,16]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "stage 1 of 2: 32 px, 1 steps" in out and "model grown from 32 px to 64 px" in out
    pipe = T2IGANPipeline.from_pretrained(tmp_path / "m")
    assert pipe.generator.config.resolution == 64 and pipe.generator.config.channels == [24, 16, 8, 8, 8]
    assert json.loads((tmp_path / "run" / "stage-high" / "config.json").read_text())["steps"] == 2
    assert main(args[:-4] + ["--set", "colour=red"]) == 1
    assert "TrainConfig has no setting 'colour'" in capsys.readouterr().err


def test_the_app_starts_from_the_same_recipes():
    from t2igan.ui.train_tab import SCRATCH, recipe_defaults

    assert recipe_defaults("emoji-64") == {"steps": 400, "batch_size": 16, "lr_g": 1e-4, "lr_d": 2e-4}
    assert recipe_defaults(SCRATCH) == {"steps": 12000, "batch_size": 32, "lr_g": 2e-4, "lr_d": 4e-4}
    assert TrainConfig.lr_g == 2e-4  # plain TrainConfig: the from-scratch settings, one stage
