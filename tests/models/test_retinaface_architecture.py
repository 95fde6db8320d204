"""RetinaFace architectures: official parameter counts, key names, priors, presets, paper anchors."""

import math

import pytest
import torch

from facescope.models import create_model
from facescope.models.complexity import count_macs, count_parameters
from facescope.models.layers import DeformableConv2d
from facescope.models.retinaface import RETINAFACE_PRESETS, build_retinaface_paper, paper_anchor_sizes
from facescope.models.weights import read_state_dict
from facescope.structures import Detections


@pytest.mark.parametrize(
    ("name", "params", "vga_gmacs"),
    [("retinaface_mnet025", 426_608, 0.7630), ("retinaface_r50", 27_293_600, 33.4136)],
)
def test_parameter_counts_and_macs_match_the_official_port(name, params, vga_gmacs):
    model = create_model(name)
    assert count_parameters(model) == params
    # Recomputed in the reference (mmcv rule: BN and LeakyReLU counted, functional ReLU/upsample not).
    assert count_macs(model, (480, 640)).gmacs == pytest.approx(vga_gmacs, abs=5e-4)


def test_official_checkpoint_has_exactly_our_keys_and_loads(retinaface_mnet_weights):
    path = retinaface_mnet_weights
    state = read_state_dict(path)
    model = create_model("retinaface_mnet025")
    ours = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert ours == {k for k in state if not k.endswith("num_batches_tracked")}
    loaded = create_model("retinaface_mnet025", path)
    assert torch.equal(loaded.state_dict()["ssh3.conv7x7_3.1.running_var"], state["ssh3.conv7x7_3.1.running_var"])
    assert torch.equal(loaded.state_dict()["LandmarkHead.2.conv1x1.bias"], state["LandmarkHead.2.conv1x1.bias"])


def test_dataparallel_prefixed_checkpoint_loads_identically(retinaface_mnet_weights, tmp_path):
    state = torch.load(retinaface_mnet_weights, map_location="cpu", weights_only=True)
    prefixed = tmp_path / "module_prefixed.pth"
    torch.save({"module." + k: v for k, v in state.items()}, prefixed)
    a = create_model("retinaface_mnet025", retinaface_mnet_weights).state_dict()
    b = create_model("retinaface_mnet025", prefixed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_r50_key_names_follow_torchvision_and_the_port():
    keys = set(create_model("retinaface_r50").state_dict())
    assert {"body.conv1.weight", "body.bn1.running_mean", "body.layer1.0.downsample.0.weight",
            "body.layer4.2.conv3.weight", "fpn.output1.0.weight", "fpn.merge2.1.bias",
            "ssh1.conv5X5_1.0.weight", "ClassHead.0.conv1x1.weight", "BboxHead.2.conv1x1.bias"} <= keys  # fmt: skip
    assert not any(k.startswith(("body.fc", "body.avgpool")) for k in keys)


def test_priors_are_the_ports_cell_centres_and_min_sizes():
    gen = create_model("retinaface_mnet025").anchor_generator
    assert len(gen.priors((640, 640))) == 16800
    assert len(gen.priors((840, 840))) == 29126
    priors = gen.priors((333, 517))  # odd sizes: ceil(H / step) cells
    assert priors.num_per_level == (42 * 65 * 2, 21 * 33 * 2, 11 * 17 * 2)
    # level 0, cell (i=0, j=1), second min size: centre ((1 + 0.5) * 8, 0.5 * 8), side 32
    assert priors.centers[3].tolist() == [12.0, 4.0] and priors.sizes[3].tolist() == [32.0, 32.0]
    # first prior of level 2: centre (16, 16), side 256
    first_p5 = sum(priors.num_per_level[:2])
    assert priors.centers[first_p5].tolist() == [16.0, 16.0] and priors.sizes[first_p5].tolist() == [256.0, 256.0]


def test_forward_at_odd_size_matches_prior_count_and_scores_are_softmax_column_one():
    model = create_model("retinaface_mnet025")
    with torch.no_grad():
        out = model(torch.randn(1, 3, 101, 77))
    assert sum(t.shape[1] for t in out.cls_logits) == len(model.anchor_generator.priors((101, 77)))
    logits = torch.tensor([[[0.0, 0.0], [1.0, 3.0]]])
    assert model.scores_from_logits(logits)[0].tolist() == pytest.approx([0.5, 1 / (1 + math.exp(-2))])


def test_official_presets():
    official = RETINAFACE_PRESETS["official"]
    assert official.resize.mode == "original" and official.resize.size_divisor == 1
    post = official.postprocess
    assert (post.score_thresh, post.strict_score, post.nms_thresh, post.nms_pixel_offset) == (0.02, True, 0.4, 1.0)
    assert post.pre_nms_top_k is None and post.max_detections is None
    detect = RETINAFACE_PRESETS["official_detect"].postprocess
    assert (detect.pre_nms_top_k, detect.max_detections) == (5000, 750)
    assert RETINAFACE_PRESETS["default"].postprocess.score_thresh == 0.5
    spec = create_model("retinaface_mnet025").input_spec
    assert (spec.mean, spec.std, spec.color, spec.size_divisor) == ((104.0, 117.0, 123.0), (1.0, 1.0, 1.0), "bgr", 1)


def test_paper_anchors_tile_102300_at_640_with_75_percent_on_p2():
    model = build_retinaface_paper(50, deformable=False)
    priors = model.anchor_generator.priors((640, 640))
    assert len(priors) == 102_300
    assert priors.num_per_level == (76_800, 19_200, 4_800, 1_200, 300)
    assert priors.num_per_level[0] / len(priors) == pytest.approx(0.75, abs=0.001)
    sizes = paper_anchor_sizes()
    # Table 2 of the paper (rounded to 2 decimals there)
    assert [round(s, 2) for s in sizes[0]] == [16.0, 20.16, 25.40]
    assert [round(s, 2) for s in sizes[4]] == [256.0, 322.54, 406.37]
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 128, 128))
    assert [t.shape[1] for t in out.cls_logits] == [32 * 32 * 3, 16 * 16 * 3, 8 * 8 * 3, 4 * 4 * 3, 2 * 2 * 3]
    assert [t.shape[2] for t in out.landmark_regs] == [10] * 5


def test_paper_deformable_flag_puts_dcn_in_laterals_and_context_modules():
    plain = build_retinaface_paper(50, deformable=False)
    deform = build_retinaface_paper(50, deformable=True)
    assert not any(isinstance(m, DeformableConv2d) for m in plain.modules())
    dcn_names = [n for n, m in deform.named_modules() if isinstance(m, DeformableConv2d)]
    assert sum(n.startswith("fpn.merges") for n in dcn_names) == 3
    assert sum(n.startswith("context") for n in dcn_names) == 5 * 5  # 5 levels x 5 3x3 convs
    # Zero-initialised offsets: an untrained deformable model computes the same as the plain one.
    plain_state = plain.state_dict()
    mapped = {k: plain_state[k.replace(".0.conv.", ".0.")] for k in deform.state_dict() if ".offset." not in k}
    missing, unexpected = deform.load_state_dict(mapped, strict=False)
    assert all(".offset." in k for k in missing) and not unexpected
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = plain.eval()(images), deform.eval()(images)
    assert torch.allclose(a.cls_logits[0], b.cls_logits[0], atol=1e-4)


def test_postprocess_returns_detections_in_input_pixels():
    model = create_model("retinaface_mnet025")
    from facescope.inference.postprocess import postprocess

    with torch.no_grad():
        predictions = model.activate(model(torch.randn(2, 3, 64, 96)))
    dets = postprocess(predictions, (64, 96), model.anchor_generator, model.coder, RETINAFACE_PRESETS["official"].postprocess)
    assert len(dets) == 2 and all(isinstance(d, Detections) and d.landmarks is not None for d in dets)


def test_mnet_release_is_the_shared_official_file_and_loads_from_the_cache(retinaface_mnet_weights):
    from facescope.models.retinaface import RETINAFACE_MNET025_WEIGHTS
    from facescope.models.weights import copy_into_cache, file_sha256

    path = retinaface_mnet_weights
    assert file_sha256(path) == RETINAFACE_MNET025_WEIGHTS.sha256
    copy_into_cache(path, RETINAFACE_MNET025_WEIGHTS)  # what an offline user does; nothing is downloaded
    model = create_model("retinaface_mnet025", "official")  # the default release is the embedded ONNX export
    assert torch.equal(model.state_dict()["BboxHead.0.conv1x1.weight"], read_state_dict(path)["BboxHead.0.conv1x1.weight"])
