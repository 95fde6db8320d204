"""The CR search space: constraints, budgets and the closed-form count against the module counter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facescope.errors import ConfigError
from facescope.models import create_model
from facescope.models.complexity import count_macs
from facescope.models.scrfd import scrfd_cr
from facescope.search.scrfd_cr.space import CRArchitecture, CRSpace, component_macs, sample_within_budget

SCRFD_2_5GF = CRArchitecture(24, "basic", (3, 5, 3, 2), (24, 48, 48, 80), 24, 2, 64)
SCRFD_10GF = CRArchitecture(56, "basic", (3, 4, 2, 3), (56, 88, 88, 224), 56, 3, 80)
SCRFD_34GF = CRArchitecture(56, "bottleneck", (17, 16, 2, 8), (56, 56, 144, 184), 128, 2, 256)


@pytest.mark.parametrize(
    ("arch", "published"), [(SCRFD_2_5GF, 2.53), (SCRFD_10GF, 9.98), (SCRFD_34GF, 34.13)], ids=["2.5GF", "10GF", "34GF"]
)
def test_released_configurations_count_to_their_published_gflops(arch: CRArchitecture, published: float):
    assert CRSpace().violations(arch) == []
    assert component_macs(arch).total / 1e9 == pytest.approx(published, abs=0.01)  # the paper truncates 34.137


def test_released_2_5gf_point_builds_the_registered_scrfd_2_5g():
    built = create_model("scrfd_cr", **SCRFD_2_5GF.model_args())
    reference = create_model("scrfd_2.5g")
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


def _module_count(arch: CRArchitecture, input_hw: tuple[int, int]) -> int:
    with torch.device("meta"):  # shapes only: the builder itself, create_model would move to a device
        model = scrfd_cr(**arch.model_args())
    return count_macs(model, input_hw).macs


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_count_equals_the_module_counter_on_random_points(seed: int):
    rng = np.random.default_rng(seed)
    space = CRSpace(max_depth=4, max_width=96)  # small models keep the meta forward quick
    arch = dataclasses.replace(space.sample(rng), block=("basic", "bottleneck")[seed % 2])
    for input_hw in ((480, 640), (333, 517)):  # VGA and sizes that are no multiple of 32
        assert component_macs(arch, input_hw).total == _module_count(arch, input_hw), (arch, input_hw)


def test_component_parts_add_up_and_ratios_sum_to_one():
    parts = component_macs(SCRFD_2_5GF)
    assert parts.as_dict()["total"] == sum(parts.as_dict()[k] for k in ("stem", "C2", "C3", "C4", "C5", "neck", "head"))
    assert sum(parts.backbone_ratios().values()) == pytest.approx(1.0)
    assert sum(parts.detector_ratios().values()) == pytest.approx(1.0)


def test_violations_name_each_broken_constraint():
    bad = CRArchitecture(20, "basic", (0, 5, 25, 2), (24, 44, 40, 520), 24, 7, 64)
    problems = " | ".join(CRSpace().violations(bad))
    for expected in ("stem width 20", "depth d1=0", "depth d3=25", "width w2=44", "width w4=520", "decrease", "head_convs=7"):
        assert expected in problems


def test_step_one_space_fixes_neck_and_head():
    step1 = CRSpace(fixed_neck_width=32, fixed_head_convs=2, fixed_head_width=96)
    arch = step1.sample(np.random.default_rng(1))
    assert (arch.neck_width, arch.head_convs, arch.head_width) == (32, 2, 96)
    assert step1.violations(SCRFD_2_5GF) == ["neck_width=24 but this step fixes it at 32", "head_width=64 but this step fixes it at 96"]


def test_budget_samples_satisfy_every_constraint_and_the_tolerance():
    space = CRSpace(fixed_neck_width=32, fixed_head_convs=2, fixed_head_width=96)
    archs = sample_within_budget(space, 2.5, 8, tolerance=0.02, seed=3)
    assert len(set(archs)) == 8
    for arch in archs:
        assert space.violations(arch) == []
        assert 2.45e9 <= component_macs(arch).total <= 2.55e9


def test_ratio_bounds_restrict_step_two_backbones():
    ratios = component_macs(SCRFD_2_5GF).backbone_ratios()
    bounds = {name: (r - 0.05, r + 0.05) for name, r in ratios.items()}
    space = CRSpace(backbone_ratio_bounds=bounds, template=SCRFD_2_5GF)
    for arch in sample_within_budget(space, 2.5, 4, tolerance=0.02, seed=0):
        assert space.violations(arch) == []
        for name, value in component_macs(arch).backbone_ratios().items():
            assert bounds[name][0] <= value <= bounds[name][1]


def test_unreachable_budget_is_reported_not_looped_forever():
    with pytest.raises(ConfigError, match="found 0 of 2"):
        sample_within_budget(CRSpace(max_depth=1, max_width=8), 50.0, 2, max_draws=200)
    with pytest.raises(ConfigError, match=r"no architecture of this space fits 0.510 GF: the smallest costs 0.917 GF"):
        sample_within_budget(CRSpace(fixed_neck_width=32, fixed_head_convs=2, fixed_head_width=96), 0.5, 2)


def test_uniform_widths_cover_every_non_decreasing_tuple_equally():
    columns = CRSpace(max_width=24).sample_columns(np.random.default_rng(0), 30_000)
    tuples, counts = np.unique(columns["widths"], axis=0, return_counts=True)
    assert len(tuples) == 15  # multisets of size 4 from {8, 16, 24}: C(3 + 4 - 1, 4)
    assert np.all(np.diff(tuples, axis=1) >= 0)
    assert counts.min() > 0.9 * 2000 and counts.max() < 1.1 * 2000  # 30,000 / 15 each, +-10 %
