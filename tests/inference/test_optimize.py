"""Inference rewrites of the eager backend: BatchNorm folding, 1x1 convs as GEMMs, channels-last."""

import copy

import pytest
import torch
from torch import nn

from facescope.inference import optimize
from facescope.inference.backends import TorchBackend
from facescope.models import create_model
from registry_params import every_model


def perturbed(name: str) -> nn.Module:
    """A model whose BatchNorms are far from the identity, so folding them is really exercised."""
    model = create_model(name)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                gains = torch.rand(module.num_features, generator=generator) + 0.5
                # a zero-gain BatchNorm (a residual branch initialised at zero, as DSFD's ResNets) stays at zero:
                # random gains there grow random ResNet-152 activations past float32 in DSFD's product fusion
                module.weight.copy_(gains if bool(module.weight.any()) else module.weight)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return model.eval()


def flat(outputs):
    return outputs.cls_logits + outputs.box_regs + (outputs.landmark_regs or [])


@pytest.mark.parametrize("name", every_model())
def test_optimised_copy_equals_model_and_leaves_it_untouched(name):
    model = perturbed(name)
    before = copy.deepcopy(model.state_dict())
    fast = optimize.optimize_for_inference(model)
    assert fast is not model
    num_bn = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    had_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert num_bn < had_bn or had_bn == 0
    if model.family == "scrfd":
        assert num_bn == 0  # every BN of the SCRFD family is foldable
    had_1x1 = any(optimize._is_pointwise(m) for m in model.modules())
    assert had_1x1 == any(isinstance(m, optimize.PointwiseAsLinear) for m in fast.modules())
    images = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = flat(model(images)), flat(fast(images.contiguous(memory_format=torch.channels_last)))
    for a, b in zip(expected, actual):
        # Random-init ResNets reach ~1e7 here, so the tolerance is relative to each output's scale.
        assert float((a - b).abs().max()) <= 1e-4 * float(a.abs().max()) + 1e-6
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_pointwise_as_linear_equals_the_convolution():
    conv = nn.Conv2d(5, 7, 1)
    x = torch.randn(2, 5, 6, 9)
    replaced = optimize.PointwiseAsLinear(conv)
    for layout in (torch.contiguous_format, torch.channels_last):
        assert torch.allclose(replaced(x.contiguous(memory_format=layout)), conv(x), atol=1e-6)
    assert optimize._is_pointwise(conv) and not optimize._is_pointwise(nn.Conv2d(5, 7, 1, stride=2))
    assert not optimize._is_pointwise(nn.Conv2d(4, 8, 1, groups=2)) and not optimize._is_pointwise(nn.Conv2d(5, 7, 3))


def test_falls_back_to_the_model_when_a_rewrite_changes_outputs(monkeypatch):
    model = perturbed("scrfd_500m_kps")

    def broken_fold(m, probe):
        folded = copy.deepcopy(m)
        with torch.no_grad():
            folded.bbox_head.stride_reg["(8, 8)"].weight.mul_(3.0)
        return folded

    monkeypatch.setattr(optimize, "fold_batchnorm", broken_fold)
    assert optimize.optimize_for_inference(model) is model
    backend = TorchBackend(model, torch.device("cpu"))
    assert backend.model is model and not backend.channels_last


def test_shared_conv_is_not_folded():
    """A conv called once per level with a BN per level cannot take any one BN."""

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn_a, self.bn_b = nn.BatchNorm2d(4), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn_a(self.conv(x)) + self.bn_b(self.conv(x))

    assert optimize.find_conv_bn_pairs(Shared().eval(), torch.randn(1, 3, 8, 8)) == []
