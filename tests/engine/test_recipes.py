"""Every recipe in configs/ loads strictly, names a registered model and builds its augmentation."""

from pathlib import Path

import pytest

from facescope.config import load_yaml
from facescope.engine.config import TrainConfig
from facescope.models import list_models

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_there_is_a_recipe_for_every_trainable_family():
    names = {p.stem for p in RECIPES}
    assert {"scrfd_500m", "scrfd_2.5g", "scrfd_10g", "scrfd_34g", "scrfd_500m_kps"} <= names
    assert {"scrfd_base_500m", "scrfd_base_2.5g", "scrfd_base_10g", "scrfd_base_34g"} <= names
    assert {"retinaface_mnet025", "retinaface_r50", "retinaface_paper_r50"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads(path):
    config = load_yaml(TrainConfig, path)
    assert config.model in list_models() and config.model == path.stem
    assert config.optim.epochs > max(config.optim.milestones)
    if config.model.startswith("scrfd"):
        assert config.data.crop_scales[-1] == 2.0 and config.optim.warmup_iters == 1500  # SR + official warm-up


def test_official_scrfd_schedule():
    recipe = load_yaml(TrainConfig, [p for p in RECIPES if p.stem == "scrfd_2.5g_kps"][0])
    assert (recipe.optim.lr, recipe.optim.epochs, recipe.optim.milestones) == (0.01, 640, (440, 544))
    assert recipe.data.clip_border is False and recipe.data.batch_size == 8
