"""A training-free score of an architecture, in the spirit of DamoFD's DDSAR (ICLR 2023).

DDSAR scores a detection backbone at initialisation by the expressivity of each stage's features,
weighted per stage, plus a small reward for receptive field (sum of kernel sizes). facescope's version,
written from that description (DamoFD's code is not used):

* expressivity of stage ``s``: ``log E||f_s(x) - f_s(x + eps * d)||`` over Gaussian inputs ``x`` and
  directions ``d`` (Zen-NAS's finite-difference form), plus the log standard deviations of the stage's
  BatchNorm inputs (which a train-mode BatchNorm normalises away), with random weights;
* stage weights 0.2 / 0.27 / 0.25 / 0.18 / 0.1 for stem, C2, C3, C4, C5 (DDSAR's five);
* ``alpha * sum of kernel sizes`` of the backbone's convs; alpha = 0.005 as in DamoFD's code, which
  warns that other budgets may need another value.

The score only ranks architectures; ``analyze`` reports its rank correlation with the trained hard AP.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from facescope.models.backbones import ResNetV1e
from facescope.search.scrfd_cr.space import CRArchitecture

STAGE_WEIGHTS = (0.2, 0.27, 0.25, 0.18, 0.1)  # stem, C2, C3, C4, C5
KERNEL_ALPHA = 0.005


def ddsar_score(
    arch: CRArchitecture,
    *,
    input_hw: tuple[int, int] = (128, 128),
    batch: int = 4,
    eps: float = 0.01,
    seed: int = 0,
    alpha: float = KERNEL_ALPHA,
) -> float:
    """The training-free score of ``arch``'s backbone (higher ranks better); deterministic for a seed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = ResNetV1e(arch.stem_width, arch.block, arch.depths, arch.widths)
    _gaussian_init(backbone, generator)
    backbone.train()  # batch statistics: the normalisation the score corrects for
    x = torch.randn(batch, 3, *input_hw, generator=generator)
    direction = torch.randn(batch, 3, *input_hw, generator=generator)
    with torch.no_grad():
        clean, bn_logs = _stage_outputs(backbone, x)
        moved, _ = _stage_outputs(backbone, x + eps * direction)
    expressivity = [torch.log((a - b).flatten(1).norm(dim=1).mean() / eps).item() + bn for a, b, bn in zip(clean, moved, bn_logs)]
    kernels = sum(m.kernel_size[0] for m in backbone.modules() if isinstance(m, nn.Conv2d))
    return float(sum(w * e for w, e in zip(STAGE_WEIGHTS, expressivity)) + alpha * kernels)


def _gaussian_init(backbone: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS's initialisation: N(0, 1) conv weights, unit BatchNorm gains (the residual zero gains undone)."""
    for m in backbone.modules():
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _stage_outputs(backbone: ResNetV1e, x: Tensor) -> tuple[list[Tensor], list[float]]:
    """Outputs of stem, C2..C5 and, per stage, the cumulative log std of every BatchNorm input so far."""
    logs: list[float] = []

    def hook(_module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
        logs.append(math.log(inputs[0].var(dim=(0, 2, 3)).mean().clamp_min(1e-12).sqrt().item()))

    handles = [m.register_forward_hook(hook) for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        outputs, cumulative = [], []
        x = backbone.maxpool(backbone.stem(x))
        outputs.append(x)
        cumulative.append(sum(logs))
        for i in range(1, 5):
            x = getattr(backbone, f"layer{i}")(x)
            outputs.append(x)
            cumulative.append(sum(logs))
    finally:
        for handle in handles:
            handle.remove()
    return outputs, cumulative
