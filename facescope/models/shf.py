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

Not registered yet: :func:`shf_vgg16` builds the model; the training rule lives in
:mod:`facescope.assign.shf_labels`, :mod:`facescope.losses.shf` and
:mod:`facescope.engine.hard_image_miner`; the test protocols are the constants at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facescope.models.backbones.shf_vgg import CaffeVGG16Body
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.heads.shf_head import SharedDilatedHead
from facescope.models.spec import InputSpec
from facescope.ops.anchors import AnchorGenerator
from facescope.ops.coders import DeltaCoder

SHF_STRIDE = 8
SHF_DILATIONS = (1, 2, 4)
SHF_ANCHOR_SIZES = (16.0, 32.0, 64.0)  # one per dilation branch
# Caffe anchors are inclusive-pixel windows [8j, 8j + 15] whose Faster R-CNN centre (x1 + w / 2)
# is 8j + 8: in continuous pixels the grid starts one stride in.
SHF_ANCHOR_CENTER_OFFSET = 1.0
# Caffe's BGR means (``PIXEL_MEANS``), raw 0-255 pixels, no std scaling; inputs padded to /16.
SHF_INPUT = InputSpec(mean=(102.9801, 115.9465, 122.7717), std=(1.0, 1.0, 1.0), color="bgr", size_divisor=16)


def shf_anchor_generator() -> AnchorGenerator:
    """Three stride-8 "levels", one square anchor each: 16, 32, 64 (the three head branches)."""
    return AnchorGenerator(
        (SHF_STRIDE,) * len(SHF_ANCHOR_SIZES),
        tuple((size,) for size in SHF_ANCHOR_SIZES),
        center_offset=SHF_ANCHOR_CENTER_OFFSET,
    )


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
    """The SHF detector: VGG16 body, stride-8 fusion, shared-weight dilated head.

    ``forward`` returns raw outputs only; training losses and post-processing are separate objects.

    Example:
        >>> model = shf_vgg16().eval()
        >>> out = model(torch.zeros(1, 3, 480, 640))
        >>> [tuple(t.shape) for t in out.cls_logits]
        [(1, 4800, 2), (1, 4800, 2), (1, 4800, 2)]
    """

    family = "shf"

    def __init__(self) -> None:
        super().__init__(shf_anchor_generator(), DeltaCoder((1.0, 1.0)), SHF_INPUT, has_landmarks=False)
        self.body = CaffeVGG16Body()
        self.fusion = SHFFusion(self.body.out_channels)
        self.head = SharedDilatedHead(128, 128, SHF_DILATIONS, num_classes=2)

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` (H, W multiples of 16) -> three levels of ``[B, H/8 * W/8, 2]`` logits
        and ``[B, H/8 * W/8, 4]`` deltas, for the anchors 16, 32, 64."""
        if not torch.jit.is_tracing():
            _check_input_size(images)
        conv4_3, conv5_3 = self.body(images)
        cls_logits, box_regs = self.head(self.fusion(conv4_3, conv5_3))
        return DenseOutputs(cls_logits, box_regs, None)

    def scores_from_logits(self, cls_logits: Tensor) -> Tensor:
        """Softmax over (background, face), column 1: ``Tensor[B, N, 2] -> Tensor[B, N]``."""
        return torch.softmax(cls_logits, dim=-1)[..., 1]


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


def shf_vgg16() -> SHF:
    """The released SHF (VGG16) with random initialisation (new layers: Gaussian std 0.01, as Caffe)."""
    return SHF()


# ---------------------------------------------------------------------------------------------
# Test and training protocols of the release, as data (``lib/test.py``, ``lib/utils/test_utils.py``,
# ``configs/default.toml`` and the per-benchmark ``configs/smallhardface-*.toml`` @76fa1d8).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SHFPyramidProtocol:
    """One multi-scale test protocol of the release.

    The base scale brings the short side to ``base_short_side`` unless the long side would then
    round above ``base_long_side_max`` (then the long side is brought to that). Each pass ``s`` of
    ``short_sides`` runs at ``s / base_short_side * base_scale`` (cv2 bilinear), and again
    horizontally flipped when ``flip``. Each pass keeps at most ``pass_top_k`` boxes with score
    ``>= pass_score_thresh`` (no NMS); the union is filtered with ``score > score_thresh`` and merged
    by box voting at IoU ``vote_iou`` (+1 pixel areas; a singleton cluster is dropped unless it is
    the last box of the pool; no cap; an empty result is one dummy box of score 1e-4 in the release).

    Attributes:
        name: protocol name.
        short_sides: pyramid short sides relative to the base.
        flip: also run every scale flipped.
        source: where the numbers come from.
    """

    name: str
    short_sides: tuple[int, ...]
    flip: bool
    source: str
    base_short_side: int = 800
    base_long_side_max: int = 1200
    score_thresh: float = 0.05
    vote_iou: float = 0.4
    pass_score_thresh: float = 0.002
    pass_top_k: int = 10_000

    def base_scale(self, image_hw: tuple[int, int]) -> float:
        """Scale of the base pass for an image of ``(height, width)`` (``_compute_scaling_factor``; the
        one implementation is :func:`facescope.inference.tta.pyramid_base_scale`)."""
        from facescope.inference.tta import pyramid_base_scale

        return pyramid_base_scale(image_hw, self.base_short_side, self.base_long_side_max)

    def scales(self, image_hw: tuple[int, int]) -> tuple[float, ...]:
        """Resize factor of every pyramid pass, in ``short_sides`` order."""
        base = self.base_scale(image_hw)
        return tuple(side / self.base_short_side * base for side in self.short_sides)


_RELEASE = "bairdzhang/smallhardface@76fa1d8"
SHF_WIDER_PROTOCOL = SHFPyramidProtocol(
    "widerface", (100, 300, 600, 1000, 1400), True, f"{_RELEASE} configs/default.toml [TEST]; paper Sec. 4.1"
)
SHF_FDDB_PROTOCOL = SHFPyramidProtocol(
    "fddb", (50, 190, 390), True, f"{_RELEASE} configs/smallhardface-fddb.toml (FLIP default true)"
)
SHF_AFW_PROTOCOL = SHFPyramidProtocol(
    "afw", (50, 100, 200, 400, 600), True, f"{_RELEASE} configs/smallhardface-afw.toml"
)
SHF_PASCAL_PROTOCOL = SHFPyramidProtocol("pascal", (100, 300), False, f"{_RELEASE} configs/smallhardface-pascal.toml")
SHF_TEST_PROTOCOLS: dict[str, SHFPyramidProtocol] = {
    p.name: p for p in (SHF_WIDER_PROTOCOL, SHF_FDDB_PROTOCOL, SHF_AFW_PROTOCOL, SHF_PASCAL_PROTOCOL)
}

# Training (configs/default.toml [TRAIN]; reference section 3.5-3.6).
SHF_TRAIN_SHORT_SIDES = (400, 800, 1200)  # drawn uniformly per image
SHF_TRAIN_MAX_SIZE = 2000  # long side cap
SHF_TRAIN_CROP = {"prob": 0.5, "lower": 0.6, "upper": 1.0, "max_tries": 50}  # keep centre-inside faces
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
    "SHF_AFW_PROTOCOL",
    "SHF_ANCHOR_SIZES",
    "SHF_DILATIONS",
    "SHF_FDDB_PROTOCOL",
    "SHF_INPUT",
    "SHF_PARAMETER_RULES",
    "SHF_PASCAL_PROTOCOL",
    "SHF_STRIDE",
    "SHF_TEST_PROTOCOLS",
    "SHF_WIDER_PROTOCOL",
    "FixedBilinearUpsample",
    "SHFFusion",
    "SHFPyramidProtocol",
    "caffe_bilinear_kernel",
    "shf_anchor_generator",
    "shf_vgg16",
]
