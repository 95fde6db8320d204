"""The composable dual-shot detector: injected enhance stages and heads, a head shared by both shots, head depth."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facescope.models import dsfd
from facescope.models.catalog.dsfd import DSFD_INPUT, dsfd_head
from facescope.models.complexity import count_parameters
from facescope.models.dual_shot import DualShotDetector
from facescope.models.heads.shot_head import ShotHead
from facescope.models.layers import PerLevel
from test_dsfd_architecture import TinyBody  # one stand-in backbone for the DSFD tests

LAYOUTS = (dsfd_head("second"), dsfd_head("first"))
CHANNELS = (8, 16, 16, 32, 512, 256)  # TinyBody's four maps, then DSFD's extra layers' 512 and 256


def _identity_enhance() -> dict[str, nn.Module]:
    return {"cells": PerLevel(nn.Identity() for _ in CHANNELS)}


def test_a_head_shared_by_both_shots_predicts_both_and_is_trained_by_both():
    torch.manual_seed(0)
    head = ShotHead(CHANNELS)
    model = DualShotDetector(TinyBody(), dsfd.ExtraLayers(32), _identity_enhance(), head, layouts=LAYOUTS, input_spec=DSFD_INPUT)
    assert model.first_shot is None and model.second_shot is head
    assert not any(key.startswith("first_shot.") for key in model.state_dict())
    # The identity enhance gives the second shot the first shot's maps: with one head both shots are equal.
    out = model(torch.randn(1, 3, 64, 64))
    first = out.aux[0]
    assert all(torch.equal(a, b) for a, b in zip(out.cls_logits + out.box_regs, first.cls_logits + first.box_regs))
    sum(t.sum() for t in first.cls_logits).backward()  # the first shot's loss alone reaches the shared head
    assert head.conf[0].weight.grad is not None and head.conf[0].weight.grad.abs().sum() > 0
    # A separate first-shot head adds exactly its own parameters.
    separate = DualShotDetector(
        TinyBody(), dsfd.ExtraLayers(32), _identity_enhance(), ShotHead(CHANNELS),
        layouts=LAYOUTS, input_spec=DSFD_INPUT, first_head=ShotHead(CHANNELS),
    )  # fmt: skip
    assert count_parameters(separate) == count_parameters(model) + count_parameters(ShotHead(CHANNELS))


def test_head_depth_adds_towers_whose_parameters_count_by_hand():
    head = ShotHead((8, 16), depth=2, width=4)
    # Level of C channels, width 4: each tower conv3x3 C->4 (36 C + 4) and 4->4 (148); conf 4->2 (74), loc 4->4 (148).
    # C = 8: 2 * (292 + 148) + 74 + 148 = 1102; C = 16: 2 * (580 + 148) + 222 = 1678.
    assert count_parameters(head) == 1102 + 1678
    assert {k.rsplit(".", 1)[0] for k in head.state_dict()} >= {"cls_tower.0.0", "cls_tower.0.2", "box_tower.1.2", "conf.1", "loc.0"}
    cls, box = head([torch.zeros(2, 8, 4, 6), torch.zeros(2, 16, 2, 3)])
    assert [tuple(t.shape) for t in cls + box] == [(2, 24, 2), (2, 6, 2), (2, 24, 4), (2, 6, 4)]
    assert {k.split(".")[0] for k in ShotHead((8, 16)).state_dict()} == {"loc", "conf"}  # depth 0: DSFD's keys
    with pytest.raises(ValueError, match="head depth must be >= 0"):
        ShotHead((8,), depth=-1)


def test_enhance_stages_run_in_order_under_their_names_and_may_not_shadow_the_detectors_parts():
    calls: list[str] = []

    class Recorder(nn.Module):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
            calls.append(self.name)
            return [m * self.scale for m in maps]

    enhance = {"fpn": Recorder("fpn"), "cpm": Recorder("cpm")}
    model = DualShotDetector(TinyBody(), dsfd.ExtraLayers(32), enhance, ShotHead(CHANNELS), layouts=LAYOUTS, input_spec=DSFD_INPUT)
    model(torch.zeros(1, 3, 64, 64))
    assert calls == ["fpn", "cpm"] and {"fpn.scale", "cpm.scale"} <= set(model.state_dict())
    with pytest.raises(ValueError, match="named other than"):
        DualShotDetector(TinyBody(), nn.Identity(), {"extras": nn.Identity()}, ShotHead(CHANNELS), layouts=LAYOUTS, input_spec=DSFD_INPUT)


def test_dsfd_is_a_dual_shot_detector_with_the_checkpoint_module_names():
    with torch.device("meta"):
        model = dsfd.dsfd_vgg16()
    assert isinstance(model, DualShotDetector) and model.enhance_stages == ("fusion", "fem")
    prefixes = list(dict.fromkeys(k.split(".")[0] for k in model.state_dict()))
    assert prefixes == ["backbone", "top", "extras", "first_norms", "fusion", "fem", "second_norms", "first_shot", "second_shot"]
