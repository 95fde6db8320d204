"""SHF: "Robust Face Detection via Learning Small Faces on Hard Images" (Zhang et al., WACV 2020).

The released configuration (``bairdzhang/smallhardface`` @76fa1d8, ``configs/smallhardface.toml`` =
defaults + different dilations + hard image mining; written down in
``shared/reference/dsfd_asfd_shf_eval.md`` section 3):

* VGG16 conv1_1 ... conv5_3 (Caffe ImageNet model, BGR minus the Caffe means, no std);
* fusion at stride 8: conv5_3 -> 1x1 512->256 + ReLU -> fixed bilinear x2 deconvolution;
  conv4_3 -> 1x1 512->256 + ReLU; concatenation [up(conv5), conv4] (512) -> 3x3 512->512 + ReLU
  (``conv4_fuse_final``) -> 3x3 512->128 + ReLU (``conv4_fuse_final_dim_red``);
* head: one 3x3 128->128 conv shared by three branches at dilations 1, 2, 4, each with its own
  1x1 classification (2) and box (4) convs; branch ``i`` owns the square anchor 16, 32, 64.

Each branch is one "level" of :class:`~facescope.models.base.DenseOutputs` (all three at stride 8),
so levels are ordered anchor 16, 32, 64 and rows within a level (row, column). Anchors are the
Faster R-CNN ones of the release: base window [0, 15] (inclusive pixels) shifted by 8 per cell, i.e.
in facescope's continuous pixels centred at ``8 * (j + 1)`` (``center_offset=1``) with sides
16 / 32 / 64; boxes are Faster R-CNN deltas without normalisation (``DeltaCoder((1, 1))``).

Inputs must have sides that are multiples of 16 (the release pads bottom/right with zeros after
mean subtraction, ``MAX_RESOLUTION = 16``): conv5_3 at stride 16 is up-sampled onto conv4_3.

Registered (:mod:`facescope.models.catalog.shf`, with the head layout, input spec and the test
protocols as presets): :func:`shf_vgg16` (the release) and :func:`shf_mnet025` (the same code path
on the MobileNetV1-0.25 body of Pytorch_Retinaface: its stride-8 and stride-16 maps replace conv4_3
and conv5_3, narrower fusion and head). The training rule is
:class:`~facescope.losses.shf.SHFCriterion` (labels :mod:`facescope.assign.shf_labels`, OHEM) and the
``hard_image_mining`` sampler (:mod:`facescope.engine.hard_image_miner`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facescope.models.backbones.retinaface_mobilenet import RetinaFaceMobileNetV1
from facescope.models.backbones.shf_vgg import CaffeVGG16Body
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.heads.shf_head import SharedDilatedHead
from facescope.models.catalog.shf import (  # noqa: F401 - the declaration, re-exported for callers
    SHF_ANCHOR_CENTER_OFFSET,
    SHF_ANCHOR_SIZES,
    SHF_DILATIONS,
    SHF_HEAD,
    SHF_INPUT,
    SHF_STRIDE,
)
from facescope.ops.anchors import AnchorGenerator


def shf_anchor_generator() -> AnchorGenerator:
    """Three stride-8 "levels", one square anchor each: 16, 32, 64 (the three head branches)."""
    return SHF_HEAD.anchor_generator()


def caffe_bilinear_kernel(factor: int) -> Tensor:
    """Caffe's ``bilinear`` weight filler for an up-sampling deconvolution by ``factor``.

    Kernel side ``2 * factor - factor % 2``; for ``factor = 2`` it is the outer product of
    ``[0.25, 0.75, 0.75, 0.25]`` with itself. Returns ``Tensor[k, k]``.
    """
    kernel = 2 * factor - factor % 2
    center = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    taps = 1.0 - (torch.arange(kernel, dtype=torch.float64) / factor - center).abs()
    return (taps[:, None] * taps[None, :]).float()


class FixedBilinearUpsample(nn.Module):
    """x2 up-sampling by a non-learned depthwise deconvolution (kernel 4, stride 2, pad 1, no bias).

    This is Caffe's ``Deconvolution`` with the bilinear filler and ``lr_mult 0`` of the release. It
    equals ``F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)`` inside the map;
    on the first/last row and column the zero padding weighs the edge value by 0.75 instead of 1.
    The kernel is a non-persistent buffer: it is architecture, not state, and holds no parameters.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        weight = caffe_bilinear_kernel(2).expand(channels, 1, 4, 4).contiguous()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]`` -> ``Tensor[B, C, 2H, 2W]``."""
        return F.conv_transpose2d(x, self.weight.to(x.dtype), stride=2, padding=1, groups=self.channels)


class SHFFusion(nn.Module):
    """conv4_3 + conv5_3 -> the 128-channel stride-8 detection map (Caffe layer names).

    Args:
        in_channels: channels of conv4_3 and conv5_3 (512, 512).
        reduced: width of each 1x1 reduction (256).
        fused: width of ``conv4_fuse_final`` (512).
        out_channels: width of ``conv4_fuse_final_dim_red`` (128).
    """

    def __init__(
        self, in_channels: tuple[int, int] = (512, 512), reduced: int = 256, fused: int = 512, out_channels: int = 128
    ) -> None:
        super().__init__()
        self.conv5_256 = nn.Conv2d(in_channels[1], reduced, 1)
        self.conv5_256_up = FixedBilinearUpsample(reduced)
        self.conv4_256 = nn.Conv2d(in_channels[0], reduced, 1)
        self.conv4_fuse_final = nn.Conv2d(2 * reduced, fused, 3, padding=1)
        self.conv4_fuse_final_dim_red = nn.Conv2d(fused, out_channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.conv5_256, self.conv4_256, self.conv4_fuse_final, self.conv4_fuse_final_dim_red):
            nn.init.normal_(conv.weight, std=0.01)  # the release's Gaussian filler
            nn.init.zeros_(conv.bias)

    def forward(self, conv4_3: Tensor, conv5_3: Tensor) -> Tensor:
        """``[B, 512, H/8, W/8]``, ``[B, 512, H/16, W/16]`` -> ``[B, 128, H/8, W/8]``."""
        up = self.conv5_256_up(self.relu(self.conv5_256(conv5_3)))
        lateral = self.relu(self.conv4_256(conv4_3))
        if not torch.jit.is_tracing() and up.shape[-2:] != lateral.shape[-2:]:
            raise ValueError(
                f"conv5_3 up-sampled to {tuple(up.shape[-2:])} but conv4_3 is {tuple(lateral.shape[-2:])}: "
                "SHF inputs need sides that are multiples of 16"
            )
        fused = self.relu(self.conv4_fuse_final(torch.cat([up, lateral], dim=1)))  # order of the release
        return self.relu(self.conv4_fuse_final_dim_red(fused))


class SHF(DenseFaceDetector):
    """The SHF detector: a body giving stride-8 and stride-16 maps, stride-8 fusion, shared-weight
    dilated head.

    ``forward`` returns raw outputs only; the training loss (the entry's ``shf`` criterion,
    :class:`~facescope.losses.shf.SHFCriterion`) and post-processing are separate objects.

    Args:
        body: returns ``[stride-8 map, stride-16 map]`` and exposes their ``out_channels``
            (default: the Caffe VGG16 conv4_3 / conv5_3 body of the release).
        reduced: width of the two 1x1 reductions (256).
        fused: width of ``conv4_fuse_final`` (512).
        head_channels: width of the reduced map and of the shared 3x3 head conv (128).

    Example:
        >>> model = shf_vgg16().eval()
        >>> out = model(torch.zeros(1, 3, 480, 640))
        >>> [tuple(t.shape) for t in out.cls_logits]
        [(1, 4800, 2), (1, 4800, 2), (1, 4800, 2)]
    """

    family = "shf"

    def __init__(
        self, body: nn.Module | None = None, reduced: int = 256, fused: int = 512, head_channels: int = 128
    ) -> None:
        super().__init__(
            shf_anchor_generator(), SHF_HEAD.coder, SHF_INPUT, has_landmarks=False, score_activation=SHF_HEAD.score_activation
        )
        self.body = body if body is not None else CaffeVGG16Body()
        self.fusion = SHFFusion(tuple(self.body.out_channels), reduced, fused, head_channels)
        self.head = SharedDilatedHead(head_channels, head_channels, SHF_DILATIONS, num_classes=2)

    @property
    def backbone(self) -> nn.Module:
        """The classification body (what ``backbone_weights`` initialise)."""
        return self.body

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` (H, W multiples of 16) -> three levels of ``[B, H/8 * W/8, 2]`` logits
        and ``[B, H/8 * W/8, 4]`` deltas, for the anchors 16, 32, 64."""
        if not torch.jit.is_tracing():
            _check_input_size(images)
        conv4_3, conv5_3 = self.body(images)
        cls_logits, box_regs = self.head(self.fusion(conv4_3, conv5_3))
        return DenseOutputs(cls_logits, box_regs, None)


def _check_input_size(images: Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"SHF expects a [B, 3, H, W] batch, got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    divisor = SHF_INPUT.size_divisor
    if height % divisor or width % divisor:
        raise ValueError(
            f"SHF input {height}x{width} (HxW): both sides must be multiples of {divisor}; pad bottom/right "
            "(the input spec's size_divisor) before the forward pass"
        )


class MobileNetStride16Body(RetinaFaceMobileNetV1):
    """Pytorch_Retinaface's MobileNetV1-0.25 up to stride 16: ``[stage1 (64 ch, /8), stage2 (128 ch, /16)]``.

    ``stage3`` (stride 32) stays in the module so that the ImageNet checkpoint
    (``mobilenetV1X0.25_pretrain.tar``) loads key for key, but it is never run: SHF detects on the
    stride-8 map only. Recipes freeze it (``optim.param_groups``), so it takes no optimizer state.
    """

    out_channels = (64, 128)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``Tensor[B, 3, H, W]`` -> ``[Tensor[B, 64, H/8, W/8], Tensor[B, 128, H/16, W/16]]``."""
        c3 = self.stage1(x)
        return [c3, self.stage2(c3)]


def shf_vgg16() -> SHF:
    """The released SHF (VGG16) with random initialisation (new layers: Gaussian std 0.01, as Caffe).

    Example:
        >>> sum(p.numel() for p in shf_vgg16().parameters())
        18077010
    """
    return SHF()


def shf_mnet025() -> SHF:
    """SHF on the MobileNetV1-0.25 body: reductions to 64, fusion 128, head 64 (facescope's small variant;
    the body takes Pytorch_Retinaface's ImageNet weights through a recipe's ``backbone_weights``).

    The fusion and the shared head conv start from He (Kaiming) normal weights instead of the release's
    Gaussian std 0.01: the release's std suits VGG's raw-pixel-scale activations, but on the batch-normalised
    MobileNet maps it shrinks the signal ~30x per layer, and the stacked ReLUs die within the first steps
    (measured: every anchor then scores the same). The classification and box convs keep std 0.01.

    Example:
        >>> sum(p.numel() for p in shf_mnet025().parameters())
        484962
    """
    model = SHF(MobileNetStride16Body(), reduced=64, fused=128, head_channels=64)
    fusion = model.fusion
    for conv in (fusion.conv5_256, fusion.conv4_256, fusion.conv4_fuse_final, fusion.conv4_fuse_final_dim_red, model.head.convs[0]):
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
    return model


# ---------------------------------------------------------------------------------------------
# Training protocol of the release, as data (``configs/default.toml`` [TRAIN] @76fa1d8; the test
# protocols are presets of the catalogue entries, :mod:`facescope.models.catalog.shf`).
# ---------------------------------------------------------------------------------------------

# The data side of training (short sides {400, 800, 1200}, long side <= 2000, crop) is the ``shf`` data
# pipeline (facescope.data.pipelines / facescope.data.shf_transforms); the optimiser side is here.
# Learning-rate and weight-decay multipliers of every parameter in the release, as
# (fnmatch pattern over parameter names, lr multiplier, decay multiplier); the first match wins.
# Caffe: weights lr_mult 1, biases lr_mult 2; every layer before the first ``head*`` layer (VGG
# conv3_1 on, the fusion and the 512 -> 128 reduction) is further x BACKBONE_MULT 2; conv1_x and
# conv2_x have lr_mult 0 (frozen); the head's biases (shared 3x3, cls, bbox) have decay_mult 0, the
# other biases the default 1.
SHF_PARAMETER_RULES: tuple[tuple[str, float, float], ...] = (
    ("body.conv1_*", 0.0, 0.0),
    ("body.conv2_*", 0.0, 0.0),
    ("body.*.weight", 2.0, 1.0),
    ("body.*.bias", 4.0, 1.0),
    ("fusion.*.weight", 2.0, 1.0),
    ("fusion.*.bias", 4.0, 1.0),
    ("head.*.weight", 1.0, 1.0),
    ("head.*.bias", 2.0, 0.0),
)
SHF_SOLVER = {
    "base_lr": 0.004,
    "momentum": 0.9,
    "weight_decay": 0.00025,
    "step_iterations": 46_000,
    "gamma": 0.1,
    "iterations": 60_000,
    "images_per_update": 8,  # 4 GPUs x 1 image x iter_size 2
    "backbone_lr_mult": 2.0,  # every layer before the head (conv3_1 .. dim_red); conv1_x, conv2_x frozen
    "head_lr_mult": 1.0,
}


__all__ = [
    "SHF",
    "SHF_ANCHOR_SIZES",
    "SHF_DILATIONS",
    "SHF_INPUT",
    "SHF_PARAMETER_RULES",
    "SHF_STRIDE",
    "FixedBilinearUpsample",
    "MobileNetStride16Body",
    "SHFFusion",
    "caffe_bilinear_kernel",
    "shf_anchor_generator",
    "shf_mnet025",
    "shf_vgg16",
]
