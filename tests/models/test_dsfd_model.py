"""DSFD as a registered detector: shots and anchor generators, the Progressive Anchor Loss, the release's
clamped priors, presets, the zoo entry, the small MobileNet variant and its ImageNet weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facescope.assign.labels import NEGATIVE, POSITIVE
from facescope.losses.criteria import MultiShotCriterion, build_criterion
from facescope.losses.multibox import DSFD_LOSS, MultiBoxCriterion
from facescope.models import create_model, get_model_entry
from facescope.models import dsfd
from facescope.models.base import DenseFaceDetector
from facescope.models.complexity import count_macs, count_parameters
from facescope.models.registry import build_on_meta
from facescope.ops.anchors import AnchorGenerator
from facescope.ops.clipped_anchors import ClippedAnchorGenerator
from facescope.structures import FaceTargets
from test_dsfd_architecture import TinyBody  # one stand-in backbone for the DSFD tests


# ---------------------------------------------------------------- shots and anchors


def test_paper_model_declares_second_then_first_shot_anchor_generators():
    model = dsfd.DSFD(TinyBody())
    assert isinstance(model, DenseFaceDetector) and model.family == "dsfd"
    second, first = model.anchor_generators
    assert second is model.anchor_generator
    assert second.shapes == dsfd.pal_anchor_sizes("second") and first.shapes == dsfd.pal_anchor_sizes("first")
    assert second.strides == first.strides == (4, 8, 16, 32, 64, 128)
    # Cell centres (j + 0.5) * s; level 0 of a 8x8 input: 2x2 cells at 2 and 6.
    grid = first.grid((8, 8))
    assert grid.centers[:4].tolist() == [[2.0, 2.0], [6.0, 2.0], [2.0, 6.0], [6.0, 6.0]]
    assert grid.sizes[0].tolist() == pytest.approx([6.531973, 9.797959], abs=1e-5)


def test_first_shot_anchors_are_half_the_second_shots_on_every_level():
    second, first = dsfd.DSFD(TinyBody()).anchor_generators
    for level_second, level_first in zip(second.shapes, first.shapes):
        ((w2, h2),) = level_second
        ((w1, h1),) = level_first
        assert (w1, h1) == pytest.approx((w2 / 2, h2 / 2))


def test_official_model_is_single_shot_with_priors_clamped_to_the_input():
    model = build_on_meta("dsfd_official")
    assert len(model.anchor_generators) == 1
    assert isinstance(model.anchor_generator, ClippedAnchorGenerator)
    assert model.anchor_generator == get_model_entry("dsfd_official").head.anchor_generator()
    assert model.anchor_generator != AnchorGenerator(model.anchor_generator.strides, model.anchor_generator.shapes, 0.5)
    # 640x480: the 512 anchor (418.05 x 627.07) is taller than the input, so its height becomes 480 (the
    # release's normalised h clamped to 1); its 5x4 stride-128 centres end at 576 x 448, inside the image.
    grid = model.anchor_generator.grid((480, 640))
    top = slice(len(grid) - grid.num_per_level[-1], len(grid))
    assert np.unique(grid.sizes[top], axis=0).tolist() == [[pytest.approx(418.0458, abs=1e-3), 480.0]]
    assert grid.centers[top].max(axis=0).tolist() == [576.0, 448.0]
    # The stride-64 level (256 anchor: 209.02 x 313.53) is untouched.
    level4 = slice(len(grid) - sum(grid.num_per_level[-2:]), len(grid) - grid.num_per_level[-1])
    assert grid.sizes[level4][0].tolist() == pytest.approx([209.0229, 313.5343], abs=1e-3)


def test_clamped_priors_pull_centres_past_the_border_back_inside():
    # 130 px wide, stride 128: ceil(130 / 128) = 2 cells, the second centred at 192 > 130 -> 130 (cx / W <= 1).
    gen = ClippedAnchorGenerator((128,), (((20.0, 30.0),),), 0.5)
    grid = gen.grid((64, 130))
    assert grid.centers.tolist() == [[64.0, 64.0], [130.0, 64.0]]
    assert grid.sizes.tolist() == [[20.0, 30.0], [20.0, 30.0]]
    assert gen.priors((64, 130)).centers.tolist() == grid.centers.tolist()


# ---------------------------------------------------------------- Progressive Anchor Loss


def _two_faces() -> list[FaceTargets]:
    return [
        FaceTargets.from_boxes(torch.tensor([[10.0, 8.0, 30.0, 36.0]])),
        FaceTargets.from_boxes(torch.tensor([[4.0, 4.0, 12.0, 16.0], [30.0, 20.0, 58.0, 60.0]])),
    ]


def test_two_shot_loss_is_the_sum_of_each_shots_own_multibox_loss():
    torch.manual_seed(0)
    model = dsfd.DSFD(TinyBody()).train()
    criterion = build_criterion(model)
    assert isinstance(criterion, MultiShotCriterion) and criterion.weights == (1.0, 1.0)
    outputs = model(torch.randn(2, 3, 64, 64) * 50)
    targets = _two_faces()
    result = criterion(outputs, targets, (64, 64))
    second = MultiBoxCriterion(model.anchor_generator, model.coder, DSFD_LOSS)(outputs, targets, (64, 64))
    first = MultiBoxCriterion(model.first_shot_anchor_generator, model.coder, DSFD_LOSS)(outputs.aux[0], targets, (64, 64))
    assert set(result.losses) == {"cls", "box", "aux1_cls", "aux1_box"}
    assert result.losses["cls"].item() == pytest.approx(second.losses["cls"].item(), rel=1e-6)
    assert result.losses["aux1_box"].item() == pytest.approx(first.losses["box"].item(), rel=1e-6)
    assert result.total.item() == pytest.approx(second.total.item() + first.total.item(), rel=1e-6)
    assert first.total.item() != pytest.approx(second.total.item())  # the two shots really differ
    assert result.per_image["num_positive"].tolist() == second.per_image["num_positive"].tolist()


def test_dsfd_matching_is_iou_0_4_with_a_forced_best_anchor_and_ohem_3_to_1():
    config = DSFD_LOSS
    assert (config.pos_iou, config.neg_iou, config.neg_pos_ratio, config.box_weight) == (0.4, None, 3.0, 1.0)
    # One stride-16 level, anchors 16x16 at 8, 24, 40 (x) on a 16x48 input.
    gen = AnchorGenerator((16,), ((16.0,),), 0.5)
    criterion = MultiBoxCriterion(gen, dsfd.dsfd_head("second").coder, config)
    priors = gen.priors((16, 48))
    # Face [2, 0, 18, 16]: IoU with anchor 0 ([0, 0, 16, 16]) = 14*16 / (16*16 + 16*16 - 14*16) = 0.7778,
    # with anchor 1 ([16, 0, 32, 16]) = 2*16 / (512 - 32) = 0.0667 -> anchor 0 positive, anchor 1 negative.
    # Face [36, 4, 40, 10] (24 px^2): best IoU 24 / 256 = 0.094 with anchor 2, below 0.4 but forced positive.
    faces = torch.tensor([[2.0, 0.0, 18.0, 16.0], [36.0, 4.0, 40.0, 10.0]])
    labels = criterion.assigner(priors, faces).labels
    assert labels.tolist() == [POSITIVE, NEGATIVE, POSITIVE]


# ---------------------------------------------------------------- presets and the zoo entry


def test_official_and_widerface_presets_reproduce_the_release_settings():
    entry = get_model_entry("dsfd_official")
    official = entry.preset("official")
    post = official.postprocess
    assert (post.score_thresh, post.strict_score, post.nms_thresh, post.pre_nms_top_k, post.max_detections) == (
        0.01, True, 0.3, 5000, 750,
    )  # fmt: skip
    assert official.resize.mode == "original" and official.tta is None
    assert entry.preset("widerface").tta == "dsfd"
    assert entry.preset("default").postprocess.score_thresh == 0.5
    assert entry.input_spec.mean == (104.0, 117.0, 123.0) and entry.input_spec.std == (1.0, 1.0, 1.0)
    assert entry.input_spec.color == "bgr"
    # The CPU variant scores WIDER FACE single-pass (its learning check), the paper models with the protocol.
    assert get_model_entry("dsfd_mnet025").preset("widerface").tta is None
    assert get_model_entry("dsfd_vgg16").preset("widerface").tta == "dsfd"


def test_zoo_declares_the_released_checkpoint():
    spec = get_model_entry("dsfd_official").weight_spec()
    assert spec.sha256 == "76ea889083f2dddaa87cbaf4cff6bb70e3e34c83fb0ab8de7b2df15eaf78caf1"
    assert spec.format == "torch" and spec.preset == "widerface" and spec.license.startswith("Apache-2.0")
    assert "07f8d4ad149c21c83f8cb3b54f6298feab0f43fa" in spec.url


# ---------------------------------------------------------------- cost


def test_official_cost_within_half_a_percent_of_120_06_m_and_259_55_gmacs():
    model = build_on_meta("dsfd_official")
    assert count_parameters(model) / 1e6 == pytest.approx(120.06, rel=5e-3)
    assert count_macs(model, (480, 640)).gmacs == pytest.approx(259.55, rel=5e-3)


def test_small_variant_is_light_and_counts_as_measured():
    model = build_on_meta("dsfd_mnet025")
    # 7,667,624 weights of the network + 1,248 L2Norm scales (first shot: 32 + 64 + 128 + 256 + 512 + 256)
    # + 2 x 1,248 fusion BatchNorm weights and biases.
    assert count_parameters(model) == 7_671_368
    assert count_macs(model, (480, 640)).gmacs == pytest.approx(1.9057, abs=1e-3)
    assert all(isinstance(n, nn.BatchNorm2d) for n in model.fusion.norms)
    assert model.fuse_normalised and all(isinstance(n, nn.Identity) for n in model.second_norms)
    assert [n.initial_scale for n in model.first_norms] == pytest.approx([32**0.5, 8.0, 128**0.5, 16.0, 512**0.5, 16.0])


# ---------------------------------------------------------------- the MobileNet variant


def test_mobilenet_taps_have_strides_4_to_32():
    body = dsfd.MobileNetV1Taps()
    maps = body(torch.zeros(1, 3, 70, 100))
    assert [tuple(m.shape[1:]) for m in maps] == [(32, 18, 25), (64, 9, 13), (128, 5, 7), (256, 3, 4)]
    assert tuple(m.shape[1] for m in maps) == body.out_channels


def test_small_variant_loads_the_retinaface_imagenet_mobilenet(shared_data):
    from facescope.models.backbones.pretrain import load_backbone_pretrain

    path = shared_data / "weights/retinaface/mobilenetV1X0.25_pretrain.tar"
    if not path.is_file():
        pytest.skip(f"{path} not in the shared data")
    model = create_model("dsfd_mnet025")
    before = model.backbone.stage1[0][0].weight.clone()
    dropped = load_backbone_pretrain(model.backbone, path)
    assert dropped and all(k.split(".")[0] == "fc" for k in dropped)
    assert not torch.equal(before, model.backbone.stage1[0][0].weight)


def test_vgg_backbone_is_exactly_torchvisions_features_so_an_imagenet_file_loads(tmp_path):
    import torchvision

    from facescope.models.backbones.pretrain import load_backbone_pretrain
    from facescope.models.backbones.vgg import VGG16Body

    with torch.device("meta"):
        model = dsfd.dsfd_vgg16()
        reference = torchvision.models.vgg16(weights=None)
    assert set(model.backbone.state_dict()) == {k for k in reference.state_dict() if k.startswith("features.")}
    # A torchvision-layout file (features + classifier) loads into the body; the classifier is dropped.
    torch.manual_seed(0)
    source = VGG16Body()
    file_state = {**source.state_dict(), "classifier.6.weight": torch.zeros(2, 3), "classifier.6.bias": torch.zeros(2)}
    torch.save(file_state, tmp_path / "vgg16.pth")
    body = VGG16Body()
    assert load_backbone_pretrain(body, tmp_path / "vgg16.pth") == ["classifier.6.bias", "classifier.6.weight"]
    assert torch.equal(body.features[28].weight, source.features[28].weight)
