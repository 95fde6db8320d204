"""SHF (smallhardface, VGG16) architecture: hand-counted parameters and MACs, the shared dilated head,
the fixed bilinear up-sampling, anchors and the test protocols as data."""

import fnmatch

import pytest
import torch
import torch.nn.functional as F

from facescope.inference.tta import plan_passes
from facescope.models.complexity import count_macs, count_parameters
from facescope.models.heads.shf_head import SharedDilatedHead
from facescope.models.registry import get_model_entry
from facescope.models.shf import (
    SHF_INPUT,
    SHF_PARAMETER_RULES,
    FixedBilinearUpsample,
    caffe_bilinear_kernel,
    shf_vgg16,
)


def conv_params(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout  # weights + bias


# Per layer, by hand: (kernel, in, out) of every learned conv of the released model.
VGG_LAYERS = [
    (3, 3, 64), (3, 64, 64),  # conv1_x
    (3, 64, 128), (3, 128, 128),  # conv2_x
    (3, 128, 256), (3, 256, 256), (3, 256, 256),  # conv3_x
    (3, 256, 512), (3, 512, 512), (3, 512, 512),  # conv4_x
    (3, 512, 512), (3, 512, 512), (3, 512, 512),  # conv5_x
]  # fmt: skip
FUSION_LAYERS = [(1, 512, 256), (1, 512, 256), (3, 512, 512), (3, 512, 128)]  # conv5_256, conv4_256, fuse, dim_red
HEAD_LAYERS = [(3, 128, 128)] + [(1, 128, 2)] * 3 + [(1, 128, 4)] * 3  # ONE shared 3x3, three cls, three box

# 1,792 + 36,928 + 73,856 + 147,584 + 295,168 + 2 x 590,080 + 1,180,160 + 5 x 2,359,808 = 14,714,688
VGG_PARAMS = 14_714_688
# 2 x 131,328 + 2,359,808 + 589,952 = 3,212,416;  head: 147,584 + 3 x 258 + 3 x 516 = 149,906
HAND_PARAMS = VGG_PARAMS + 3_212_416 + 149_906  # = 18,077,010 (the fixed bilinear kernel is no parameter)


def hand_macs(height: int, width: int) -> tuple[int, int]:
    """MACs of one forward pass with complexity.py's rules, counted layer by layer.

    Returns (the rules' count, the fixed bilinear deconvolution that those rules do not count).
    """
    pos = {s: (height // s) * (width // s) for s in (1, 2, 4, 8, 16)}
    convs = [  # (kernel, in, out, output positions)
        (3, 3, 64, pos[1]), (3, 64, 64, pos[1]),
        (3, 64, 128, pos[2]), (3, 128, 128, pos[2]),
        (3, 128, 256, pos[4]), (3, 256, 256, pos[4]), (3, 256, 256, pos[4]),
        (3, 256, 512, pos[8]), (3, 512, 512, pos[8]), (3, 512, 512, pos[8]),
        (3, 512, 512, pos[16]), (3, 512, 512, pos[16]), (3, 512, 512, pos[16]),
        (1, 512, 256, pos[16]),  # conv5_256
        (1, 512, 256, pos[8]),  # conv4_256
        (3, 512, 512, pos[8]),  # conv4_fuse_final
        (3, 512, 128, pos[8]),  # conv4_fuse_final_dim_red
        (3, 128, 128, pos[8]), (3, 128, 128, pos[8]), (3, 128, 128, pos[8]),  # shared conv, applied 3 times
        (1, 128, 2, pos[8]), (1, 128, 2, pos[8]), (1, 128, 2, pos[8]),
        (1, 128, 4, pos[8]), (1, 128, 4, pos[8]), (1, 128, 4, pos[8]),
    ]  # fmt: skip
    conv_macs = sum(k * k * cin * cout * n + cout * n for k, cin, cout, n in convs)
    # A ReLU after every conv but the 1x1 predictions: output elements.
    relu = sum(cout * n for _, _, cout, n in convs[:-6])
    pools = 64 * pos[1] + 128 * pos[2] + 256 * pos[4] + 512 * pos[8]  # input elements of pool1..pool4
    deconv = 256 * 4 * 4 * pos[16]  # depthwise 4x4 transposed conv: per input element and tap
    return conv_macs + relu + pools, deconv


@pytest.fixture(scope="module")
def meta_model():
    """Shapes only: MAC counting without computing a VGG forward pass."""
    with torch.device("meta"):
        return shf_vgg16()


def test_parameter_count_equals_hand_count(meta_model):
    assert sum(conv_params(*layer) for layer in VGG_LAYERS) == VGG_PARAMS
    assert sum(conv_params(*layer) for layer in FUSION_LAYERS + HEAD_LAYERS) == HAND_PARAMS - VGG_PARAMS
    assert count_parameters(meta_model) == HAND_PARAMS == 18_077_010
    assert round(HAND_PARAMS / 1e6, 2) == 18.08  # the reference's [CALC] figure


def test_gmacs_at_vga_within_one_percent_of_hand_count(meta_model):
    counted = count_macs(meta_model, (480, 640))
    rules, deconv = hand_macs(480, 640)
    assert counted.macs == rules  # exactly the rules of complexity.py ...
    hand_total = rules + deconv  # ... which leave out the (fixed, 4.9 M MAC) bilinear deconvolution
    assert abs(counted.macs - hand_total) / hand_total < 0.01
    assert counted.gmacs == pytest.approx(111.2513376, abs=1e-7)
    assert counted.gmacs == pytest.approx(111, rel=0.01)  # the reference's ~111 GMACs [CALC]


def test_gmacs_at_800x1200_match_the_reference(meta_model):
    counted = count_macs(meta_model, (800, 1200))
    assert counted.macs == hand_macs(800, 1200)[0]
    assert counted.gmacs == pytest.approx(347, rel=0.01)  # reference: ~347 GMACs @800x1200


def test_state_dict_has_caffe_names_and_the_shared_conv_once():
    keys = list(shf_vgg16().state_dict())
    assert len(keys) == 2 * (13 + 4 + 1 + 3 + 3)  # weight + bias of every distinct conv
    for key in ("body.conv1_1.weight", "body.conv4_3.bias", "body.conv5_3.weight", "fusion.conv5_256.weight",
                "fusion.conv4_256.weight", "fusion.conv4_fuse_final.weight", "fusion.conv4_fuse_final_dim_red.bias",
                "head.convs.0.weight", "head.convs.0.bias", "head.cls_convs.2.weight", "head.box_convs.1.bias"):
        assert key in keys, key  # fmt: skip
    assert not any(k.startswith(("head.convs.1.", "head.convs.2.")) for k in keys)
    assert not any("conv5_256_up" in k for k in keys)  # the fixed kernel is not state


def test_three_branches_share_one_weight_tensor():
    model = shf_vgg16()
    convs = model.head.convs
    assert [c.dilation for c in convs] == [(1, 1), (2, 2), (4, 4)]
    assert [c.padding for c in convs] == [(1, 1), (2, 2), (4, 4)]
    for conv in convs[1:]:
        assert conv.weight is convs[0].weight and conv.bias is convs[0].bias
        assert conv.weight.data_ptr() == convs[0].weight.data_ptr()
        assert conv.bias.data_ptr() == convs[0].bias.data_ptr()
    names = [n for n, _ in model.head.named_parameters()]
    assert names.count("convs.0.weight") == 1 and not any(n.startswith("convs.1") for n in names)


def test_gradient_step_through_one_branch_changes_all_three():
    torch.manual_seed(0)
    head = SharedDilatedHead(128, 128, (1, 2, 4))
    features = torch.randn(1, 128, 6, 6)
    before = [t.detach().clone() for t in head(features)[0]]
    optimizer = torch.optim.SGD(head.parameters(), lr=10.0)
    cls, _ = head(features)
    cls[2].square().sum().backward()  # the dilation-4 branch only
    assert head.convs[0].weight.grad is not None and head.convs[0].weight.grad.abs().sum() > 0
    optimizer.step()
    after = [t.detach() for t in head(features)[0]]
    for branch in range(3):
        assert not torch.equal(before[branch], after[branch]), branch
    for conv in head.convs[1:]:
        assert torch.equal(conv.weight, head.convs[0].weight)


def test_branch_outputs_are_the_shared_conv_at_its_dilation():
    torch.manual_seed(1)
    head = SharedDilatedHead(128, 128, (1, 2, 4))
    features = torch.randn(2, 128, 5, 7)
    cls, box = head(features)
    weight, bias = head.convs[0].weight, head.convs[0].bias
    for i, d in enumerate((1, 2, 4)):
        branch = F.relu(F.conv2d(features, weight, bias, padding=d, dilation=d))
        expected_cls = head.cls_convs[i](branch).permute(0, 2, 3, 1).reshape(2, 35, 2)
        expected_box = head.box_convs[i](branch).permute(0, 2, 3, 1).reshape(2, 35, 4)
        torch.testing.assert_close(cls[i], expected_cls)
        torch.testing.assert_close(box[i], expected_box)


def test_loading_rejects_disagreeing_aliases_and_keeps_sharing():
    model, other = shf_vgg16(), shf_vgg16()
    state = model.state_dict()
    assert str(other.load_state_dict(state)) == "<All keys matched successfully>"
    assert other.head.convs[2].weight is other.head.convs[0].weight
    torch.testing.assert_close(other.head.convs[2].weight, model.head.convs[0].weight)
    bad = dict(state)
    bad["head.convs.1.weight"] = state["head.convs.0.weight"] + 1.0
    with pytest.raises(RuntimeError, match="head.convs.1.weight' differs"):
        other.load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "head.convs.0.bias"}
    with pytest.raises(RuntimeError, match="head.convs.0.bias"):
        other.load_state_dict(missing)
    converted = other.to(torch.float64)
    assert converted.head.convs[1].weight is converted.head.convs[0].weight


def test_outputs_anchors_and_input_spec():
    model = shf_vgg16().eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 96))
    assert [tuple(t.shape) for t in out.cls_logits] == [(2, 96, 2)] * 3
    assert [tuple(t.shape) for t in out.box_regs] == [(2, 96, 4)] * 3
    assert out.landmark_regs is None
    priors = model.anchor_generator.priors((64, 96))
    assert priors.num_per_level == (96, 96, 96)
    boxes = priors.boxes()
    # Caffe's first anchors [0, 15], [-8, 23], [-24, 39] (inclusive) = [0, 16], [-8, 24], [-24, 40] here.
    torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 16.0, 16.0]))
    torch.testing.assert_close(boxes[96], torch.tensor([-8.0, -8.0, 24.0, 24.0]))
    torch.testing.assert_close(boxes[192], torch.tensor([-24.0, -24.0, 40.0, 40.0]))
    torch.testing.assert_close(boxes[13], torch.tensor([8.0, 8.0, 24.0, 24.0]))  # row 1, column 1
    assert SHF_INPUT.mean == (102.9801, 115.9465, 122.7717) and SHF_INPUT.std == (1.0, 1.0, 1.0)
    assert SHF_INPUT.color == "bgr" and SHF_INPUT.size_divisor == 16
    assert model.coder.variances == (1.0, 1.0)  # un-normalised Faster R-CNN deltas


def test_input_sides_must_be_multiples_of_16():
    model = shf_vgg16()
    with pytest.raises(ValueError, match="72x96 .*multiples of 16"):
        model(torch.zeros(1, 3, 72, 96))


def test_fixed_bilinear_upsampling_is_caffes_and_not_learned():
    kernel = caffe_bilinear_kernel(2)
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(kernel, taps[:, None] * taps[None, :])
    up = FixedBilinearUpsample(3)
    assert list(up.parameters()) == [] and up.state_dict() == {}
    x = torch.randn(1, 3, 5, 6)
    y = up(x)
    assert y.shape == (1, 3, 10, 12)
    reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1])  # same inside the map
    # Row 0 / column 0: zero padding outside, so 0.75 x[0] (x 0.75 in both directions at the corner).
    torch.testing.assert_close(y[..., 0, 0], 0.75 * 0.75 * x[..., 0, 0])


def _protocol(preset: str, model: str = "shf_vgg16"):
    from facescope.inference.tta import resolve_tta

    return resolve_tta(get_model_entry(model).presets[preset].tta)


def test_pyramid_protocols_as_released():
    wider = _protocol("widerface")
    assert wider.name == "shf" and wider.scales.sizes == (100, 300, 600, 1000, 1400) and wider.flip
    assert (wider.union_score_threshold, wider.merge.iou, wider.merge.method) == (0.05, 0.4, "box_voting")
    assert (wider.merge.singleton, wider.merge.max_detections) == ("keep_last", None)  # ref 4.1: SHF, no cap
    assert (wider.scales.base_short, wider.scales.base_max_long) == (800, 1200)
    assert (wider.pass_score_threshold, wider.pass_top_k, wider.pass_clip) == (0.002, 10_000, True)
    fddb, afw, pascal = _protocol("fddb"), _protocol("afw"), _protocol("pascal")
    assert fddb.scales.sizes == (50, 190, 390) and fddb.flip
    assert afw.scales.sizes == (50, 100, 200, 400, 600) and afw.flip
    assert pascal.scales.sizes == (100, 300) and not pascal.flip
    for other in (fddb, afw, pascal):  # everything but the pyramid and flip is the "shf" protocol's
        assert (other.merge, other.union_score_threshold, other.pass_top_k) == (wider.merge, 0.05, 10_000)
    # 768x1024: 800 / 768 keeps the long side at 1067 <= 1200.
    base = 800 / 768
    expected = [side / 800 * base for side in (100, 300, 600, 1000, 1400)]
    scales = [p.scale for p in plan_passes(wider, (768, 1024), detector_scale=1.0) if not p.flipped]
    assert scales == pytest.approx(expected)
    # 500x2000: 800 / 500 would make the long side 3200 > 1200, so the base is 1200 / 2000 = 0.6.
    scales = [p.scale for p in plan_passes(wider, (500, 2000), detector_scale=1.0) if not p.flipped]
    assert scales == pytest.approx([0.075, 0.225, 0.45, 0.75, 1.05])
    assert [p.scale for p in plan_passes(pascal, (1200, 800), detector_scale=1.0)] == pytest.approx([0.125, 0.375])
    assert len(plan_passes(afw, (600, 800), detector_scale=1.0)) == 10  # five scales, each also mirrored


def test_both_variants_share_the_presets_and_the_light_pyramid_drops_the_upscaled_passes():
    assert get_model_entry("shf_mnet025").presets == get_model_entry("shf_vgg16").presets  # one family set
    light = _protocol("widerface_light", "shf_mnet025")
    assert light.name == "shf_light" and light.scales.sizes == (100, 300, 600) and light.flip
    assert light.merge == _protocol("widerface").merge
    default = get_model_entry("shf_mnet025").presets["default"]
    assert default.tta is None and default.postprocess.score_thresh == 0.5 and default.resize.size_divisor == 16


def test_parameter_rules_cover_every_parameter_as_the_release(meta_model):
    def rule(name):
        return next((lr, decay) for pattern, lr, decay in SHF_PARAMETER_RULES if fnmatch.fnmatchcase(name, pattern))

    multipliers = {name: rule(name) for name, _ in meta_model.named_parameters()}
    assert multipliers["body.conv1_1.weight"] == multipliers["body.conv2_2.bias"] == (0.0, 0.0)  # frozen
    assert multipliers["body.conv3_1.weight"] == (2.0, 1.0) and multipliers["body.conv5_3.bias"] == (4.0, 1.0)
    assert multipliers["fusion.conv4_fuse_final_dim_red.weight"] == (2.0, 1.0)
    assert multipliers["fusion.conv5_256.bias"] == (4.0, 1.0)
    assert multipliers["head.convs.0.weight"] == (1.0, 1.0) and multipliers["head.convs.0.bias"] == (2.0, 0.0)
    assert multipliers["head.cls_convs.1.bias"] == (2.0, 0.0) and multipliers["head.box_convs.2.weight"] == (1.0, 1.0)
    frozen = sum(p.numel() for n, p in meta_model.named_parameters() if multipliers[n][0] == 0.0)
    assert frozen == 1_792 + 36_928 + 73_856 + 147_584  # conv1_1, conv1_2, conv2_1, conv2_2
