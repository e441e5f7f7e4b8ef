"""Recipes: training settings as TOML files, filled into TrainConfig. The CLI (`t2igan train --recipe`), Python
(`configs_from_recipe`) and the app's Train tab start from the same files.

A recipe sets TrainConfig fields at its top level. `[[stages]]` tables run one after another, each starting from the
model the stage before made (progressive resolution is two stages); a stage's own keys override the top level's.
The shipped recipes are in t2igan/recipes/ (package data): `t2igan train --help` lists them.
"""
from __future__ import annotations

import json
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable

from .config import TrainConfig
from .loop import train

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
DEFAULT_NEW, DEFAULT_FINE_TUNE = "from-scratch", "fine-tune"
_FIELDS = {f.name for f in fields(TrainConfig)}
_PER_RUN = {"data", "out", "run_dir", "init", "resume"}  # what a run says, never a recipe


class RecipeError(ValueError):
    """A recipe that cannot be read or names a setting TrainConfig does not have."""


def list_recipes() -> dict[str, str]:
    """Name → description of each shipped recipe."""
    return {p.stem: load_recipe(p)["description"] for p in sorted(RECIPES.glob("*.toml"))}


def load_recipe(name_or_path: str | Path) -> dict:
    """{'name', 'description', 'stages': [settings, ...]} from a shipped recipe's name or a .toml file's path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES / f"{name_or_path}.toml"
        if not path.is_file():
            shipped = ", ".join(p.stem for p in sorted(RECIPES.glob("*.toml")))
            raise RecipeError(f"no recipe named '{name_or_path}' (shipped: {shipped}; or give the path of a .toml file)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise RecipeError(f"recipe {path.name}: {e}") from None
    description = str(raw.pop("description", ""))
    stages = raw.pop("stages", None) or [{}]
    shared = _check(raw, path.name)
    resolved = []
    for k, stage in enumerate(stages):
        stage = dict(stage)
        name = str(stage.pop("name", f"stage-{k + 1}"))
        resolved.append({"name": name, **shared, **_check(stage, f"{path.name}, stage '{name}'")})
    return {"name": path.stem, "description": description, "stages": resolved}


def _check(settings: dict, where: str) -> dict:
    unknown = sorted(set(settings) - _FIELDS)
    if unknown:
        raise RecipeError(f"recipe {where}: unknown setting(s) {', '.join(unknown)} (TrainConfig has: "
                          f"{', '.join(sorted(_FIELDS - _PER_RUN))})")
    per_run = sorted(set(settings) & _PER_RUN)
    if per_run:
        raise RecipeError(f"recipe {where}: {', '.join(per_run)} belong to a run, not a recipe")
    return settings


def configs_from_recipe(recipe: str | Path | dict, **settings) -> list[TrainConfig]:
    """One TrainConfig per stage of `recipe`, with `settings` (data, out, and any TrainConfig field) on top.

    `steps` is the whole run's: split between the stages in the recipe's proportions. Every stage but the last
    writes its model into its own folder of the run (run_dir/stage-NAME) and the next stage starts from it. A
    `resolution` in `settings` runs only the recipe's last stage, at that size, for all the recipe's steps."""
    recipe = recipe if isinstance(recipe, dict) else load_recipe(recipe)
    unknown = sorted(set(settings) - _FIELDS)
    if unknown:
        raise RecipeError(f"unknown setting(s) {', '.join(unknown)}")
    stages = recipe["stages"]
    if "resolution" in settings and len(stages) > 1:  # a size asked for: the recipe's last stage, at that size
        stages = [{**stages[-1], "steps": sum(int(s.get("steps", TrainConfig.steps)) for s in stages)}]
    steps = settings.pop("steps", None)
    if steps is not None and len(stages) > 1:
        total = sum(int(s.get("steps", TrainConfig.steps)) for s in stages)
        counts = [max(1, round(steps * int(s.get("steps", TrainConfig.steps)) / total)) for s in stages[:-1]]
        per_stage = counts + [max(1, steps - sum(counts))]
    else:
        per_stage = [steps] * len(stages)
    base = TrainConfig(**settings)
    root = base.run_path()
    configs, init = [], base.init
    for k, (stage, n) in enumerate(zip(stages, per_stage)):
        values = {key: value for key, value in stage.items() if key != "name"}
        values.update({key: value for key, value in settings.items() if key not in ("steps",)})
        values["steps"] = n if n is not None else values.get("steps", TrainConfig.steps)
        if len(stages) > 1:
            folder = root / f"stage-{stage['name']}"
            values["run_dir"] = str(folder)
            values["init"] = init
            if k > 0:  # the model comes from the stage before (grown as the stage asks): nothing to hold, no widths
                values["keep"] = stage.get("keep", 0.0)
                values["g_channels"], values["d_channels"] = stage.get("g_channels"), stage.get("d_channels")
            if k < len(stages) - 1:
                values["out"] = str(folder / "model")
        config = replace(base, **values)
        configs.append(config)
        init = config.out
    return configs


def parse_setting(text: str) -> tuple[str, object]:
    """'key=value' from the command line: the value as JSON (numbers, true/false, null, lists), else as text."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise RecipeError(f"--set {text!r}: write it as key=value, e.g. --set balance_by=base")
    if key not in _FIELDS:
        raise RecipeError(f"--set {key}: TrainConfig has no setting '{key}' (it has: {', '.join(sorted(_FIELDS))})")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def train_stages(configs: list[TrainConfig], progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Run the stages in order (a stopped stage ends the run there); the last result, with every stage's."""
    emit = progress or (lambda event: None)
    results = []
    for k, config in enumerate(configs):
        if len(configs) > 1:
            emit({"type": "log", "message": f"stage {k + 1} of {len(configs)}: {config.resolution or 64} px, "
                                            f"{config.steps} steps → {config.out}"})
        results.append(train(config, progress=progress, should_stop=should_stop))
        if results[-1]["status"] != "completed":
            break
    return {**results[-1], "stages": results}
