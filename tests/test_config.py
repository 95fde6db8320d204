from dataclasses import dataclass, field
from typing import Literal

import pytest

from facescope.config import apply_overrides, dump_yaml, from_dict, load_yaml
from facescope.errors import ConfigError


@dataclass
class Optim:
    lr: float = 0.01
    momentum: float = 0.9
    milestones: tuple[int, ...] = (440, 544)


@dataclass
class Recipe:
    model: str = "scrfd_500m"
    mode: Literal["sr", "baseline"] = "sr"
    batch: int = 8
    optim: Optim = field(default_factory=Optim)
    note: str | None = None


def test_yaml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    dump_yaml(Recipe(batch=16), path)
    recipe = load_yaml(Recipe, path, overrides=["optim.lr=0.02", "mode=baseline", "optim.milestones=[1, 2]"])
    assert recipe.batch == 16 and recipe.optim.lr == 0.02 and recipe.mode == "baseline"
    assert recipe.optim.milestones == (1, 2)
    assert from_dict(Recipe, {"optim": {"lr": "5e-4"}}).optim.lr == 5e-4  # YAML 1.1 reads 5e-4 as text


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: scrfd_500m\noptim:\n  lr: 0.1\n  momentom: 0.8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: unknown key 'optim.momentom' \(did you mean 'momentum'\?\)"):
        load_yaml(Recipe, path)


def test_type_errors():
    with pytest.raises(ConfigError, match="'batch' must be int, got 'eight'"):
        from_dict(Recipe, {"batch": "eight"})
    with pytest.raises(ConfigError, match=r"'mode' must be one of \['sr', 'baseline'\]"):
        from_dict(Recipe, {"mode": "fast"})
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        apply_overrides({}, ["lr0.1"])
