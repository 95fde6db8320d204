"""Every recipe in configs/ loads strictly, names a registered model and builds its augmentation."""

from pathlib import Path

import pytest
import torch

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


def test_shf_recipe_is_the_release_schedule_and_parameter_multipliers():
    import fnmatch

    from facescope.engine.param_groups import build_param_groups
    from facescope.models.shf import SHF_PARAMETER_RULES, SHF_SOLVER, shf_vgg16

    recipe = load_yaml(TrainConfig, [p for p in RECIPES if p.stem == "shf_vgg16"][0])
    assert (recipe.optim.lr, recipe.optim.weight_decay, recipe.optim.momentum) == (0.004, 0.00025, 0.9)
    assert recipe.runtime.max_iters == SHF_SOLVER["iterations"] == 60_000
    # 46,000 iterations x 8 images / 12,880 WIDER train images = 28.6 epochs: the step starts epoch index 29
    assert recipe.optim.milestones == (29,) and 28 < 46_000 * 8 / 12_880 < 29
    assert recipe.data.sampler == "hard_image_mining" and recipe.data.pipeline == "shf" and recipe.data.image_size == 1200
    with torch.device("meta"):
        model = shf_vgg16()  # shapes only
    groups = build_param_groups(model, recipe.optim.param_groups, recipe.optim.weight_decay)
    got = {}
    for group, lr_mult in zip(groups.groups, groups.lr_mults):
        for param in group["params"]:
            got[id(param)] = (lr_mult, group["weight_decay"] / recipe.optim.weight_decay)
    for name, param in model.named_parameters():
        want = next((lr, decay) for pattern, lr, decay in SHF_PARAMETER_RULES if fnmatch.fnmatchcase(name, pattern))
        if want[0] == 0.0:
            assert name in groups.frozen and not param.requires_grad
        else:
            assert got[id(param)] == want, name


@pytest.mark.parametrize("name", [f"asfd_d{i}" for i in range(7)] + ["asfd_supernet"])
def test_asfd_recipes_are_the_papers_schedule(name):
    recipe = load_yaml(TrainConfig, [p for p in RECIPES if p.stem == name][0])
    optim = recipe.optim
    assert (optim.optimizer, optim.momentum, optim.weight_decay, optim.lr) == ("sgd", 0.9, 0.0005, 0.015)
    assert optim.warmup_iters == 500 and optim.lr * optim.warmup_ratio == pytest.approx(1e-6, rel=1e-3)
    assert (optim.milestones, optim.gamma, optim.epochs) == ((25, 40), 0.1, 50)
    assert recipe.data.pipeline == "dsfd" and recipe.data.image_size == 640 and recipe.data.batch_size * 4 == 48
    if name == "asfd_supernet":  # the search: Adam 0.01 / 5e-4 on the architecture logits from epoch 20 on
        assert optim.step_strategy == "bilevel" and optim.step_options["architecture_start_epoch"] == 20
        assert {(r.parameter_set, r.optimizer, r.fixed_lr) for r in optim.param_groups} == {("architecture", "adam", 0.01)}
