"""DSFD networks: the official layout key for key, parameter/MAC counts, PAL anchors, FEM shapes,
per-level row counts of both shots. Everything big runs on the meta device (shapes only)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torchvision
from torch import nn
from oracles.dsfd_official_layout import official_layout, trainable_parameter_count

from facescope.models import dsfd
from facescope.models.backbones.vgg import L2Norm
from facescope.models.complexity import count_macs, count_parameters
from facescope.models.dsfd import (
    FeatureEnhanceModule,
    OfficialFEM,
    ProductTopDown,
    anchor_width_height,
    pal_anchor_sizes,
)
from facescope.models.heads.dsfd_head import max_in_out

@functools.cache
def meta_model(name: str) -> torch.nn.Module:
    """Built once per session on the meta device: shapes only, no memory, no arithmetic."""
    with torch.device("meta"):
        return getattr(dsfd, name)().eval()


@pytest.fixture
def official() -> torch.nn.Module:
    return meta_model("dsfd_official")


class TinyBody(nn.Module):
    """Four strided convs standing in for a backbone (strides 4, 8, 16, 32) in numeric tests."""

    out_channels = (8, 16, 16, 32)

    def __init__(self) -> None:
        super().__init__()
        widths = (3, *self.out_channels)
        self.stages = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=4 if i == 0 else 2, padding=1) for i in range(4)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in self.stages:
            x = torch.relu(stage(x))
            maps.append(x)
        return maps


# ---------------------------------------------------------------- official layout and cost


def test_official_state_dict_matches_the_release_layout_key_for_key_and_shape_for_shape(official):
    ours = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    expected = official_layout(with_batch_counters=True)
    assert ours.keys() - expected.keys() == set()
    assert expected.keys() - ours.keys() == set()
    mismatched = {k: (ours[k], expected[k]) for k in ours if ours[k] != expected[k]}
    assert mismatched == {}


def test_a_release_style_state_dict_without_batch_counters_loads_strictly():
    with torch.device("meta"):
        model = dsfd.dsfd_official()  # a fresh one: loading with assign=True replaces its tensors
    layout = official_layout(with_batch_counters=False)
    assert not any(k.endswith("num_batches_tracked") for k in layout)
    state = {k: torch.empty(shape, device="meta") for k, shape in layout.items()}
    result = model.load_state_dict(state, strict=True, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_official_parameter_count_is_the_papers_120_06_m(official):
    params = count_parameters(official)
    assert params == trainable_parameter_count() == 120_058_406
    assert params / 1e6 == pytest.approx(120.06, rel=5e-3)  # SCRFD Table 4 / ASFD Table 4


def test_official_macs_at_vga_match_the_papers_259_55_g(official):
    complexity = count_macs(official, (480, 640))
    assert complexity.gmacs == pytest.approx(259.55, rel=5e-3)  # SCRFD Table 4 / ASFD Table 4
    assert complexity.gmacs == pytest.approx(259.617, abs=1e-3)  # this counter's exact figure


def test_paper_vgg16_matches_the_reference_count_of_the_dual_shot_network():
    model = meta_model("dsfd_vgg16")
    # Reference section 1.10 [CALC] for the paper-style VGG16 DSFD: 49.79 M, 139.2 GMACs at 640x480
    # (that count ignores ReLUs; ours counts ReLU modules, hence +0.2 %).
    assert count_parameters(model) == 49_793_432
    assert count_macs(model, (480, 640)).gmacs == pytest.approx(139.2, rel=5e-3)


@pytest.mark.parametrize(
    ("name", "params"), [("dsfd_r50", 106_744_984), ("dsfd_r101", 125_737_112), ("dsfd_r152", 141_380_760)]
)
def test_paper_resnet_variants_parameter_counts(name, params):
    assert count_parameters(meta_model(name)) == params


@pytest.mark.parametrize(
    ("name", "vga_gmacs"),
    [
        ("dsfd_r50", 94.316),
        pytest.param("dsfd_r101", 117.138, marks=pytest.mark.slow),
        pytest.param("dsfd_r152", 139.982, marks=pytest.mark.slow),
    ],
)
def test_paper_resnet_variants_macs_at_vga(name, vga_gmacs):
    assert count_macs(meta_model(name), (480, 640)).gmacs == pytest.approx(vga_gmacs, abs=1e-3)


# ---------------------------------------------------------------- backbones keep torchvision names


def test_vgg_backbone_keys_are_torchvisions_vgg16_features():
    model = meta_model("dsfd_vgg16")
    with torch.device("meta"):
        reference = torchvision.models.vgg16(weights=None)
    state = model.state_dict()
    ours = {k.removeprefix("backbone."): v.shape for k, v in state.items() if k.startswith("backbone.features.")}
    theirs = {k: v.shape for k, v in reference.state_dict().items() if k.startswith("features.")}
    assert ours == theirs


@pytest.mark.parametrize(("name", "depth"), [("dsfd_r50", 50), ("dsfd_r101", 101), ("dsfd_r152", 152)])
def test_resnet_backbone_keys_are_torchvisions_without_the_classifier(name, depth):
    model = meta_model(name)
    with torch.device("meta"):
        reference = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    ours = {k.removeprefix("backbone."): v.shape for k, v in model.state_dict().items() if k.startswith("backbone.")}
    theirs = {k: v.shape for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert ours == theirs


# ---------------------------------------------------------------- PAL anchors


def test_pal_anchor_sizes_per_shot_by_hand():
    second = pal_anchor_sizes("second")
    first = pal_anchor_sizes("first")
    # Scale 16, height:width 1.5: w = 16 / sqrt(1.5) = 13.0639, h = 16 * sqrt(1.5) = 19.5959.
    assert second[0][0] == pytest.approx((13.063945, 19.595918), abs=1e-6)
    assert first[0][0] == pytest.approx((6.531973, 9.797959), abs=1e-6)
    assert second[5][0] == pytest.approx((418.046, 627.069), abs=1e-3)
    assert first[5][0] == pytest.approx((209.023, 313.535), abs=1e-3)
    for level, scale in enumerate((16, 32, 64, 128, 256, 512)):
        ((w2, h2),) = second[level]
        ((w1, h1),) = first[level]
        assert w2 * h2 == pytest.approx(scale**2)
        assert h2 / w2 == pytest.approx(1.5)
        assert (w1, h1) == pytest.approx((w2 / 2, h2 / 2))  # first shot: half the second's size


def test_anchor_width_height_square_and_bad_shot():
    assert anchor_width_height(32, 1.0) == (32.0, 32.0)
    with pytest.raises(ValueError, match="shot must be"):
        pal_anchor_sizes("third")  # type: ignore[arg-type]


# ---------------------------------------------------------------- modules, by hand


def test_l2norm_by_hand():
    norm = L2Norm(2, scale=10.0)
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    assert norm(x).flatten().tolist() == pytest.approx([6.0, 8.0])


def test_max_in_out_picks_background_on_level_0_and_face_elsewhere():
    logits = torch.tensor([1.0, 5.0, 2.0, 3.0, 9.0, 9.0]).view(1, 6, 1, 1)
    assert max_in_out(logits, max_out_background=True).flatten().tolist() == [5.0, 3.0]
    assert max_in_out(logits, max_out_background=False).flatten().tolist() == [3.0, 5.0]


def test_fem_branches_and_shapes_on_a_small_input():
    fem = FeatureEnhanceModule(256)
    assert (fem.branch1.out_channels, fem.branch2[2].out_channels, fem.branch3[4].out_channels) == (85, 85, 86)
    assert all(m.dilation == (3, 3) for m in fem.modules() if isinstance(m, torch.nn.Conv2d))
    out = fem(torch.randn(1, 256, 7, 9))
    assert out.shape == (1, 256, 7, 9) and bool((out >= 0).all())
    with torch.device("meta"):
        official_fem = OfficialFEM(1024)
        assert official_fem(torch.zeros(2, 1024, 5, 3)).shape == (2, 512, 5, 3)


def test_product_top_down_keeps_every_level_shape_on_odd_sizes():
    channels = (8, 16, 16, 32, 16, 8)
    sizes = ((25, 38), (13, 19), (7, 10), (4, 5), (2, 3), (1, 2))
    maps = [torch.rand(1, c, h, w) for c, (h, w) in zip(channels, sizes)]
    fused = ProductTopDown(channels)(maps)
    assert [tuple(f.shape) for f in fused] == [tuple(m.shape) for m in maps]


def test_fem_output_shapes_of_the_paper_network_at_128():
    model = meta_model("dsfd_vgg16")
    with torch.device("meta"):
        original = model.original_features(torch.zeros(1, 3, 128, 128))
        enhanced = model.enhanced_features(original)
    expected = [(1, c, 128 // s, 128 // s) for c, s in zip((256, 512, 512, 1024, 512, 256), (4, 8, 16, 32, 64, 128))]
    assert [tuple(t.shape) for t in original] == expected
    assert [tuple(t.shape) for t in enhanced] == expected


# ---------------------------------------------------------------- forward row counts


def _rows(hw: tuple[int, int]) -> list[int]:
    return [math.ceil(hw[0] / s) * math.ceil(hw[1] / s) * 1 for s in (4, 8, 16, 32, 64, 128)]


# dsfd_r101 / dsfd_r152 differ from dsfd_r50 only in block counts (checked by the parameter counts).
@pytest.mark.parametrize("name", ["dsfd_vgg16", "dsfd_r50", "dsfd_official"])
@pytest.mark.parametrize("hw", [(100, 150)])
def test_forward_rows_per_level_for_each_shot(name, hw):
    model = meta_model(name)
    with torch.device("meta"):
        out = model(torch.zeros(2, 3, *hw))
    shots = (out, *out.aux)
    assert len(shots) == (1 if name == "dsfd_official" else 2)
    for shot in shots:
        assert [t.shape[1] for t in shot.cls_logits] == _rows(hw)
        assert all(t.shape[0] == 2 and t.shape[2] == 2 for t in shot.cls_logits)
        assert all(t.shape == (2, n, 4) for t, n in zip(shot.box_regs, _rows(hw)))
        assert shot.landmark_regs is None


def test_both_shots_train_the_backbone_and_only_their_own_heads():
    torch.manual_seed(0)
    model = dsfd.DSFD(TinyBody(), l2norm_scales=(10.0, 8.0, 5.0)).train()
    out = model(torch.randn(1, 3, 64, 64))
    first = out.aux[0]
    assert not torch.equal(out.cls_logits[0], first.cls_logits[0])
    sum(t.sum() for t in first.cls_logits + first.box_regs).backward()
    assert model.first_shot.loc[0].weight.grad is not None
    assert model.second_shot.loc[0].weight.grad is None
    assert model.backbone.stages[0].weight.grad.abs().sum() > 0
    assert model.first_norms[0].weight.grad is not None and model.second_norms[0].weight.grad is None


def test_official_forward_returns_the_face_box_channels_and_max_in_out_logits(monkeypatch):
    with torch.device("meta"):
        model = dsfd.dsfd_official().eval()
    model.loc.to_empty(device="cpu")
    model.conf.to_empty(device="cpu")
    # Constant heads: zero weights, biases 0, 1, 2, ... so every location outputs the channel index
    # (conf: candidates 1, 5, 2 then the single class 3, then the head/body channels 9, 9, ...).
    conf_bias = [1.0, 5.0, 2.0, 3.0, 9.0, 9.0, 9.0, 9.0]
    for head in (*model.loc, *model.conf):
        for conv in (head.conv1, head.conv2, head.conv3, head.conv4):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
    for loc in model.loc:
        loc.conv4.bias.data = torch.arange(loc.conv4.out_channels, dtype=torch.float32)
    for conf in model.conf:
        conf.conv4.bias.data = torch.tensor(conf_bias[: conf.conv4.out_channels])
    sizes = [(3, 4), (2, 2), (1, 1), (1, 1), (1, 1), (1, 1)]
    monkeypatch.setattr(model, "enhanced_features", lambda images: [torch.zeros(1, 512, h, w) for h, w in sizes])
    out = model(torch.zeros(1, 3, 12, 16))
    assert [t.shape[1] for t in out.cls_logits] == [12, 4, 1, 1, 1, 1]
    for level, (cls, box) in enumerate(zip(out.cls_logits, out.box_regs)):
        assert box[0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]  # the face box, not the head/body parts
        # Level 0 maxes out the background (5 vs face 3); the others max out the face (background 3, face 5).
        assert cls[0, 0].tolist() == ([5.0, 3.0] if level == 0 else [3.0, 5.0])
