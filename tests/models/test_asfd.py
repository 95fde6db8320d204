"""ASFD: the cosine head, the DRMC criterion, the scaling table against the paper's Table 4, genotypes as options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from registry_params import every_model

from facescope.errors import ConfigError
from facescope.losses.classification import LargeMarginCosine
from facescope.losses.criteria import build_criterion
from facescope.models import create_model
from facescope.models.registry import build_on_meta
from facescope.models.asfd import asfd_supernet
from facescope.models.autofem import Genotype, default_genotype
from facescope.models.catalog.asfd import ASFD_SCALES, PAPER_TABLE4
from facescope.models.complexity import count_macs
from facescope.models.heads.shot_head import CosineConv2d
from facescope.models.options import ModelFile, from_saved
from facescope.structures import FaceTargets


def test_large_margin_cosine_loss_matches_its_formula_by_hand():
    # cos = (0.5 background, 0.8 face), label face, s = 30, m = 0.2:
    # -log(e^{30 (0.8 - 0.2)} / (e^{30 (0.8 - 0.2)} + e^{30 * 0.5})) = log(1 + e^{15 - 18}) = log(1 + e^-3)
    loss = LargeMarginCosine(scale=30.0, margin=0.2)(torch.tensor([[[0.5, 0.8]]]), torch.tensor([[1]]))
    assert loss.item() == pytest.approx(math.log1p(math.exp(-3.0)), rel=1e-6)
    # label background: the margin moves to the background's cosine: log(1 + e^{30 * 0.8 - 30 * 0.3}) = log(1 + e^15)
    loss = LargeMarginCosine(scale=30.0, margin=0.2)(torch.tensor([[[0.5, 0.8]]]), torch.tensor([[0]]))
    assert loss.item() == pytest.approx(math.log1p(math.exp(15.0)), rel=1e-6)


def test_cosine_conv_outputs_the_cosine_of_each_patch_with_each_class_weight():
    torch.manual_seed(0)
    conv = CosineConv2d(4, 2, kernel_size=3, padding=1)
    x = torch.randn(1, 4, 5, 6)
    patches = F.unfold(x, 3, padding=1)[0].T  # [30, 36]: one zero-padded 3x3x4 patch per location
    expected = F.normalize(patches, dim=1) @ F.normalize(conv.weight.flatten(1), dim=1).T  # [30, 2]
    assert torch.allclose(conv(x)[0].flatten(1).T, expected, atol=1e-6)
    assert conv(x * 7.0).sub(conv(x)).abs().max() < 1e-5  # scale-free: a cosine


def test_asfd_shares_one_head_and_runs_the_first_shot_only_in_training():
    model = create_model("asfd_d0")
    assert model.first_shot is None and model.logit_scale == 30.0
    images = torch.randn(1, 3, 256, 256)
    assert len(model.train()(images).aux) == 1
    outputs = model.eval()(images)
    assert outputs.aux == ()
    cosines = torch.cat(outputs.cls_logits, dim=1)
    assert cosines.abs().max() <= 1.0 + 1e-5  # the head's class outputs are cosines


def test_drmc_is_diou_plus_large_margin_cosine_on_both_shots_and_reaches_the_shared_head_twice():
    torch.manual_seed(0)
    model = create_model("asfd_d0").train()
    criterion = build_criterion(model)
    assert [shot.config.box_loss for shot in criterion.shots] == ["diou", "diou"]
    assert [shot.config.cls_loss for shot in criterion.shots] == ["large_margin_cosine"] * 2
    assert criterion.shots[0].config.margin == 0.2 and criterion.shots[0].config.margin_scale == 30.0
    assert criterion.shots[0].config.neg_pos_ratio == 3.0  # OHEM 3:1 as DSFD
    targets = [FaceTargets.from_boxes(torch.tensor([[40.0, 30.0, 100.0, 110.0]]))]
    result = criterion(model(torch.randn(1, 3, 256, 256) * 50), targets, (256, 256))
    assert set(result.losses) == {"cls", "box", "aux1_cls", "aux1_box"}
    assert all(torch.isfinite(v) and v > 0 for v in result.losses.values())
    # the auxiliary (first-shot) loss alone trains the shared head, which the second shot also uses
    result.losses["aux1_cls"].backward()
    assert sum(float(conv.weight.grad.abs().sum()) for conv in model.second_shot.conf if conv.weight.grad is not None) > 0


def test_a_loss_scale_other_than_the_models_is_refused_and_the_scale_is_a_model_option():
    with pytest.raises(ConfigError, match="scores softmax"):
        build_criterion(create_model("asfd_d0"), {"margin_scale": 20.0})
    model = create_model("asfd_d0", cls_scale=20.0)
    assert model.logit_scale == 20.0 and model.model_args["cls_scale"] == 20.0
    assert build_criterion(model).shots[0].config.margin_scale == 20.0  # the loss takes the model's scale
    assert build_criterion(model, {"margin_scale": 20.0}).shots[0].config.margin_scale == 20.0


@pytest.mark.parametrize("name", sorted(ASFD_SCALES))
def test_parameters_and_macs_at_vga_are_within_5_percent_of_table_4(name):
    counts = count_macs(build_on_meta(name), (480, 640))
    paper = PAPER_TABLE4[name]
    assert counts.params / 1e6 == pytest.approx(paper["params_m"], rel=0.05)
    assert counts.gmacs == pytest.approx(paper["gmacs"], rel=0.05)


def test_a_genotype_file_travels_in_the_checkpoint_and_rebuilds_the_same_network(tmp_path):
    from facescope.engine.checkpoint import save_checkpoint

    torch.manual_seed(0)
    searched = asfd_supernet(backbone="mobilenet_v1_0.25", width=16, nodes=3).autofem.genotype()
    path = tmp_path / "genotype.json"
    path.write_text(searched.to_json())
    model = create_model("asfd_d0", genotype=str(path))
    assert Genotype.from_json(from_saved(model.model_args["genotype"]).text()) == searched
    assert set(model.state_dict()) != set(create_model("asfd_d0").state_dict())  # not the default cells
    save_checkpoint(tmp_path / "d0.pth", {"model": model.state_dict(), "model_name": "asfd_d0", "model_args": model.model_args})
    path.unlink()  # the checkpoint alone rebuilds it
    rebuilt = create_model("asfd_d0", tmp_path / "d0.pth")
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))


def test_a_genotype_with_the_wrong_number_of_levels_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "four_levels.json"
    path.write_text(default_genotype(levels=4, nodes=2).to_json())
    with pytest.raises(ValueError, match="four_levels.json.*4 levels, ASFD has 6"):
        create_model("asfd_d0", genotype=ModelFile.read(path))


def test_the_supernet_derives_a_genotype_that_builds_every_family_member():
    torch.manual_seed(0)
    net = asfd_supernet(backbone="mobilenet_v1_0.25", width=16, nodes=6)
    with torch.no_grad():
        net.autofem.cpm[0].alpha[5][4, 3] = 10.0  # level 0, node 6: input node 4 through op 3 dominates
    genotype = net.autofem.genotype()
    assert ("sep3x3", 4) in genotype.cpm[0][5]
    fem = create_model("asfd_d0", genotype=ModelFile("g.json", genotype.to_json().encode())).autofem
    assert len(fem.cpm) == 6 and len(fem.cpm[0][0].edges) == 6


def test_the_cosine_head_stays_exact_under_float16_autocast_with_large_activations():
    # 9 * 224 * 40^2 summed squares per window: far beyond float16's 65504, which made every cosine 0 before
    torch.manual_seed(0)
    conv = CosineConv2d(224, 2, kernel_size=3, padding=1)
    x = torch.randn(1, 224, 8, 8) * 40
    reference = conv(x)
    with torch.autocast("cpu", dtype=torch.float16):
        mixed = conv(x)
    assert reference.abs().max() > 0.01 and (mixed.float() - reference).abs().max() < 1e-3


def test_a_malformed_genotype_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"fpn": [')
    with pytest.raises(ValueError, match="broken.json.*not valid JSON"):
        create_model("asfd_d0", genotype=ModelFile.read(path))


def _info_numbers(name, capsys):
    from facescope.cli import main

    assert main(["info", name, "--size", "640x480"]) == 0
    lines = capsys.readouterr().out.splitlines()
    params = int(next(line for line in lines if "parameters" in line).split(":")[1].replace(",", ""))
    gmacs = float(next(line for line in lines if "GMACs" in line).split(":")[1].split()[0])
    return params, gmacs


@pytest.mark.parametrize("name", every_model(sorted(ASFD_SCALES)))
def test_facescope_info_prints_table_4_within_5_percent(name, capsys):
    params, gmacs = _info_numbers(name, capsys)
    assert params / 1e6 == pytest.approx(PAPER_TABLE4[name]["params_m"], rel=0.05)
    assert gmacs == pytest.approx(PAPER_TABLE4[name]["gmacs"], rel=0.05)
