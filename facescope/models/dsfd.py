"""DSFD: "Dual Shot Face Detector" (Li et al., CVPR 2019) — the networks.

Three architectures (facts: ``shared/reference/dsfd_asfd_shf_eval.md`` section 1; paper section 3):

* :class:`DSFD` — the paper's dual-shot detector (``dsfd_vgg16``, ``dsfd_r50``, ``dsfd_r101``,
  ``dsfd_r152``). Six original maps of1..of6 (strides 4..128: conv3_3, conv4_3, conv5_3, fc7 of
  VGG-16 or the four ResNet stages, then two extra stride-2 blocks conv6_2 and conv7_2); a
  top-down fusion over all six levels (1x1 "normalising" convs, bilinear up-sampling of the upper
  map, element-wise product with the current one); a Feature Enhance Module per level (the fused
  map split into three dilated-convolution branches of depth 1, 2 and 3, concatenated); the
  **first shot** predicts from the original maps, the **second shot** from the enhanced ones, both
  with SSD-style 3x3 heads and one anchor per location. L2Norm (initial scales 10, 8, 5) is applied
  on the VGG taps conv3_3/conv4_3/conv5_3 for the first shot and, as separate layers, on the first
  three enhanced maps for the second shot.
* :class:`DSFDOfficial` — the network of the released checkpoint ``WIDERFace_DSFD_RES152.pth``
  (``dsfd_official``): ResNet-152, a product fusion over the three lowest levels only, six FEMs of
  the release's design (512 output channels), deep per-level heads with max-in-out classification
  and the release's extra "head"/"body" channels, of which only the face outputs are returned. It
  is a single-shot network (the release has no first shot). Attribute names follow the checkpoint,
  so its state dict matches the file key for key and shape for shape.
* ``dsfd_mnet025`` — the same :class:`DSFD` code path (FEM, two shots, PAL) on the MobileNetV1-0.25 body
  of Pytorch_Retinaface (:class:`MobileNetV1Taps`), a light CPU variant for the learning check.

``forward(images)`` returns :class:`~facescope.models.base.DenseOutputs` with per-level
``Tensor[B, N_l, 2]`` (background, face) logits and ``Tensor[B, N_l, 4]`` SSD deltas (variances
0.1/0.2), rows ordered (row, column, anchor), ``N_l = ceil(H / s_l) * ceil(W / s_l)``. For
:class:`DSFD` the outputs are the second shot and ``aux == (first_shot,)``; ``anchor_generators``
is ``(second-shot anchors, first-shot anchors)``. :class:`DSFD` is a
:class:`~facescope.models.dual_shot.DualShotDetector` whose enhance stages are the FEM's fusion and
dilated branches (:func:`dsfd_enhance`) and whose heads are two depth-0
:class:`~facescope.models.heads.shot_head.ShotHead`. The registry entries name their training criterion,
the Progressive Anchor Loss (``dsfd_pal`` in :mod:`facescope.losses.criteria`: one multibox criterion per
shot, loss = second + first).

Anchors (Progressive Anchor Loss, paper Table 1): one anchor per location with height:width 1.5:1;
second-shot scales 16..512, first-shot scales half of them (8..256); see
:func:`~facescope.models.catalog.dsfd.pal_anchor_sizes` (declared torch-free in the catalogue and
re-exported here). Centres are cell centres ``((j + 0.5) * s, (i + 0.5) * s)``. ``dsfd_official``'s
priors are clamped to the input as the release's ``PriorBox(clip=True)``
(:class:`~facescope.ops.clipped_anchors.ClippedAnchorGenerator`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from facescope.models.backbones.retinaface_mobilenet import MobileNetV1Taps
from facescope.models.backbones.torchvision_resnet import TorchvisionResNetBody
from facescope.models.backbones.vgg import L2Norm, ReducedFC, VGG16Body
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.catalog.dsfd import (  # noqa: F401 - anchor design re-exported for callers
    ANCHOR_HEIGHT_TO_WIDTH,
    DSFD_INPUT,
    FIRST_SHOT_ANCHOR_SCALES,
    OFFICIAL_HEAD,
    PAL_STRIDES,
    SECOND_SHOT_ANCHOR_SCALES,
    VARIANCES,
    Shot,
    anchor_width_height,
    dsfd_head,
    pal_anchor_sizes,
)
from facescope.models.dual_shot import DualShotDetector
from facescope.models.heads.dsfd_head import DeepHeadModule, max_in_out
from facescope.models.heads.shot_head import ShotHead
from facescope.models.layers import PerLevel, flatten_level, xavier_init_convs

# --------------------------------------------------------------------------------------------
# The paper's detector
# --------------------------------------------------------------------------------------------

VGG_LEVEL_CHANNELS = (256, 512, 512, 1024, 512, 256)
RESNET_LEVEL_CHANNELS = (256, 512, 1024, 2048, 512, 256)
#: L2Norm initial scales on conv3_3, conv4_3, conv5_3 (VGG only; both references).
VGG_L2NORM_SCALES = (10.0, 8.0, 5.0)
#: dsfd_mnet025 (not a paper model) L2-normalises its six original maps to about 1 per element (scale
#: sqrt(C): 32, 64, 128, 256, 512, 256 channels), fuses the normalised maps with a BatchNorm on every fused level
#: (:class:`ProductTopDown` ``batch_norm``) and has no L2Norm on the enhanced maps. The product fusion scales each
#: level by the magnitude of the one above, so with the thin MobileNet maps the fused maps shrank level by level:
#: without the BatchNorm, 0.43 at stride 128 down to 2.5e-4 at stride 4 after 390 real-data iterations, whose
#: second shot sat at the constant-prediction loss. An L2Norm on the enhanced (second-shot) maps, as VGG has,
#: diverged instead: FEM outputs are ReLU'd and a near-zero vector gives L2Norm a huge gradient (grad norm 7,272
#: at step 10). In a 60-step overfitting probe the BatchNorm variant's second shot fell from 6.5 / 3.6 to
#: 0.09 / 0.006 (classification / box), as fast as the first shot.
MNET_L2NORM_SCALES = tuple(math.sqrt(c) for c in (32, 64, 128, 256, 512, 256))


def upsample_product(upper: Tensor, lateral: Tensor, align_corners: bool) -> Tensor:
    """Bilinearly resize ``upper`` to ``lateral``'s exact size (odd sizes included) and multiply."""
    return F.interpolate(upper, size=lateral.shape[-2:], mode="bilinear", align_corners=align_corners) * lateral


class ExtraLayers(nn.Module):
    """conv6_2 and conv7_2 (strides 64, 128) on top of fc7, each ``1x1 -> ReLU -> 3x3/2 -> ReLU``.

    Channel plan ``in -> 256 -> 512`` (conv6_2) and ``512 -> 128 -> 256`` (conv7_2).

    Shapes: ``Tensor[B, in, H, W] -> [Tensor[B, 512, ceil(H/2), .], Tensor[B, 256, ceil(H/4), .]]``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv6_1 = nn.Conv2d(in_channels, 256, kernel_size=1)
        self.conv6_2 = nn.Conv2d(256, 512, kernel_size=3, stride=2, padding=1)
        self.conv7_1 = nn.Conv2d(512, 128, kernel_size=1)
        self.conv7_2 = nn.Conv2d(128, 256, kernel_size=3, stride=2, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> list[Tensor]:
        conv6_2 = self.relu(self.conv6_2(self.relu(self.conv6_1(x))))
        conv7_2 = self.relu(self.conv7_2(self.relu(self.conv7_1(conv6_2))))
        return [conv6_2, conv7_2]


class ProductTopDown(nn.Module):
    """The FEM's fusion part over all levels: ``nc_l = up(oc_{l+1}) (*) oc_l`` (paper eq. 1).

    The top level is ``ReLU(top(of_L))``; below it ``x = ReLU(reduce_l(nc_{l+1}))`` ("1x1 kernel to
    normalise", to ``C_l`` channels) is bilinearly up-sampled to level ``l`` and multiplied
    element-wise with ``lateral_l(of_l)``, then ReLU.

    Args:
        channels: ``C_l`` of every level, lowest (stride 4) first.
        align_corners: of the bilinear up-sampling.
        batch_norm: a BatchNorm before the ReLU of every fused level (``norms``; not in the paper). A
            product of two maps scales as the product of their magnitudes, so level after level the
            fused maps shrink (or grow) geometrically; with thin maps the lowest ones vanish.

    Shapes: the output maps have exactly the input maps' shapes.
    """

    def __init__(self, channels: Sequence[int], align_corners: bool = False, batch_norm: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.top = nn.Conv2d(channels[-1], channels[-1], kernel_size=1)
        lower_levels = range(len(channels) - 1)
        self.reduce = nn.ModuleList(nn.Conv2d(channels[i + 1], channels[i], kernel_size=1) for i in lower_levels)
        self.lateral = nn.ModuleList(nn.Conv2d(channels[i], channels[i], kernel_size=1) for i in lower_levels)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) if batch_norm else nn.Identity() for c in channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        fused = [self.relu(self.norms[-1](self.top(features[-1])))]
        for level in range(len(features) - 2, -1, -1):
            upper = self.relu(self.reduce[level](fused[0]))
            lateral = self.lateral[level](features[level])
            product = upsample_product(upper, lateral, self.align_corners)
            fused.insert(0, self.relu(self.norms[level](product)))
        return fused


class FeatureEnhanceModule(nn.Module):
    """The FEM's receptive-field part: the map is split into three dilated-conv sub-networks.

    Branches of 1, 2 and 3 stacked 3x3 convolutions, dilation 3 (ReLU between them), with
    ``C // 3``, ``C // 3`` and ``C - 2 * (C // 3)`` channels, concatenated back to ``C`` and ReLU.

    Shapes: ``Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.
    """

    def __init__(self, channels: int, dilation: int = 3) -> None:
        super().__init__()
        third = channels // 3
        rest = channels - 2 * third

        def dilated(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=3, padding=dilation, dilation=dilation)

        self.branch1 = dilated(channels, third)
        self.branch2 = nn.Sequential(dilated(channels, third), nn.ReLU(inplace=True), dilated(third, third))
        self.branch3 = nn.Sequential(
            dilated(channels, rest),
            nn.ReLU(inplace=True),
            dilated(rest, rest),
            nn.ReLU(inplace=True),
            dilated(rest, rest),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], dim=1))


def _level_norms(channels: Sequence[int], scales: Sequence[float]) -> PerLevel:
    """L2Norm on the first ``len(scales)`` levels, identity on the others."""
    return PerLevel(L2Norm(c, scales[i]) if i < len(scales) else nn.Identity() for i, c in enumerate(channels))


def dsfd_enhance(channels: Sequence[int], batch_norm: bool = False) -> dict[str, nn.Module]:
    """DSFD's Feature Enhance Module as the two enhance stages of a dual-shot detector.

    ``fusion``: :class:`ProductTopDown` over all levels; ``fem``: one :class:`FeatureEnhanceModule` per level.

    Args:
        channels: ``C_l`` of every level, lowest first (the output maps keep them).
        batch_norm: BatchNorm on every fused level (:class:`ProductTopDown`; dsfd_mnet025).

    Example:
        >>> stages = dsfd_enhance((8, 16))
        >>> [tuple(t.shape) for t in stages["fem"](stages["fusion"]([torch.ones(1, 8, 4, 4), torch.ones(1, 16, 2, 2)]))]
        [(1, 8, 4, 4), (1, 16, 2, 2)]
    """
    return {
        "fusion": ProductTopDown(channels, batch_norm=batch_norm),
        "fem": PerLevel(FeatureEnhanceModule(c) for c in channels),
    }


class DSFD(DualShotDetector):
    """The paper's dual-shot detector: a :class:`~facescope.models.dual_shot.DualShotDetector` with DSFD's parts.

    Args:
        backbone: returns four maps (strides 4, 8, 16, 32) and exposes ``out_channels``
            (:class:`~facescope.models.backbones.vgg.VGG16Body`, a torchvision ResNet body or
            :class:`~facescope.models.backbones.retinaface_mobilenet.MobileNetV1Taps`).
        l2norm_scales: initial L2Norm scales of the lowest levels (VGG: 10, 8, 5 on both shots; ResNet:
            none; dsfd_mnet025: all six levels of the first shot).
        top: a module turning the body's stride-32 map into fc7 (VGG's :class:`ReducedFC`), with an
            ``out_channels`` attribute; None = the body's map is fc7 (ResNet, MobileNet).
        fuse_normalised: the fusion takes the first shot's L2-normalised maps instead of the raw ones
            (dsfd_mnet025, see :data:`MNET_L2NORM_SCALES`); the paper models fuse the raw maps.
        second_shot_l2norm: L2Norm (``l2norm_scales``) also on the enhanced maps before the second
            shot's head (the paper models; not dsfd_mnet025).
        fusion_batch_norm: BatchNorm on every fused level (:class:`ProductTopDown`; dsfd_mnet025 only).

    Attributes:
        backbone: the ImageNet-initialisable body.
        top: VGG's fc6/fc7 or None.
        extras: conv6_2 and conv7_2.
        first_norms / second_norms: per-level L2Norm (or identity) before each shot's head.
        fusion: :class:`ProductTopDown`; fem: one :class:`FeatureEnhanceModule` per level (the enhance stages).
        first_shot / second_shot: :class:`~facescope.models.heads.shot_head.ShotHead` (depth 0), one per shot.
        anchor_generator: the second shot's priors (scales 16..512), the inference shot;
            ``first_shot_anchor_generator`` the first shot's (8..256).

    Example:
        >>> with torch.device("meta"):
        ...     out = dsfd_vgg16()(torch.zeros(1, 3, 128, 128))
        >>> [t.shape[1] for t in out.cls_logits]
        [1024, 256, 64, 16, 4, 1]
    """

    family = "dsfd"
    strides = PAL_STRIDES
    num_anchors = 1

    def __init__(
        self,
        backbone: nn.Module,
        l2norm_scales: Sequence[float] = (),
        top: nn.Module | None = None,
        fuse_normalised: bool = False,
        second_shot_l2norm: bool = True,
        fusion_batch_norm: bool = False,
    ) -> None:
        body_channels = tuple(backbone.out_channels)  # type: ignore[arg-type]
        if len(body_channels) != 4:
            raise ValueError(f"the DSFD backbone must return 4 maps (strides 4..32), it has {len(body_channels)}")
        if top is not None:
            body_channels = body_channels[:3] + (int(top.out_channels),)  # type: ignore[arg-type]
        level_channels = body_channels + (512, 256)
        # The parts are made in the order of the checkpoints trained before the detector was composable, so
        # that a seed gives the same initial weights.
        extras = ExtraLayers(body_channels[-1])
        first_norms = _level_norms(level_channels, l2norm_scales)
        enhance = dsfd_enhance(level_channels, batch_norm=fusion_batch_norm)
        second_norms = _level_norms(level_channels, l2norm_scales if second_shot_l2norm else ())
        first_head = ShotHead(level_channels, self.num_anchors)
        second_head = ShotHead(level_channels, self.num_anchors)
        for new_part in (extras, *enhance.values()):
            xavier_init_convs(new_part)
        super().__init__(
            backbone,
            extras,
            enhance,
            second_head,
            layouts=(dsfd_head("second"), dsfd_head("first")),
            input_spec=DSFD_INPUT,
            first_head=first_head,
            top=top,
            first_norms=first_norms,
            second_norms=second_norms,
            enhance_normalised=fuse_normalised,
        )
        self.level_channels = level_channels


# --------------------------------------------------------------------------------------------
# The official release (WIDERFace_DSFD_RES152.pth)
# --------------------------------------------------------------------------------------------

OFFICIAL_LEVEL_CHANNELS = RESNET_LEVEL_CHANNELS
#: Output channels of the release's loc / conf heads per level (face, + "head", + "body" parts;
#: conf with the max-in-out candidates): reference section 1.4.
OFFICIAL_LOC_CHANNELS = (4, 8, 12, 12, 12, 12)
OFFICIAL_CONF_CHANNELS = (4, 6, 8, 8, 8, 8)
#: Width of every official FEM output (256 + 128 + 128).
OFFICIAL_FEM_CHANNELS = 512


class OfficialFEM(nn.Module):
    """The release's FEM (``cpm1`` .. ``cpm5``), ReLU after every conv.

    ``cpm1``: 3x3 C->256; ``cpm2``: 3x3 dilation 2 C->256 shared by ``cpm3`` (3x3 256->128) and
    ``cpm4`` (3x3 dilation 2 256->128) -> ``cpm5`` (3x3 128->128); output ``cat(cpm1, cpm3, cpm5)``.

    Shapes: ``Tensor[B, C, H, W] -> Tensor[B, 512, H, W]``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.cpm1 = nn.Conv2d(in_channels, 256, kernel_size=3, padding=1)
        self.cpm2 = nn.Conv2d(in_channels, 256, kernel_size=3, padding=2, dilation=2)
        self.cpm3 = nn.Conv2d(256, 128, kernel_size=3, padding=1)
        self.cpm4 = nn.Conv2d(256, 128, kernel_size=3, padding=2, dilation=2)
        self.cpm5 = nn.Conv2d(128, 128, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        branch1 = self.relu(self.cpm1(x))
        shared = self.relu(self.cpm2(x))
        branch2 = self.relu(self.cpm3(shared))
        branch3 = self.relu(self.cpm5(self.relu(self.cpm4(shared))))
        return torch.cat([branch1, branch2, branch3], dim=1)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> list[nn.Module]:
    # The release's extra layers keep the conv bias although BN follows.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class DSFDOfficial(DenseFaceDetector):
    """The released DSFD-ResNet-152 network; attribute names are the checkpoint's key prefixes.

    ``layer1`` = ResNet stem + stage 1 (``layer1.0`` conv1, ``layer1.1`` bn1, ``layer1.4`` the
    stage), ``layer2`` .. ``layer4`` the other stages (each wrapped once more, ``layer2.0.<block>``),
    ``layer5`` / ``layer6`` the conv6_2 / conv7_2 extras with BN, ``latlayer1..3`` / ``smooth1..3``
    the three product fusions (bilinear with ``align_corners=True``, as the release's PyTorch 0.3
    ``upsample`` did), ``cpm3_3 .. cpm7_2`` the six :class:`OfficialFEM`, ``loc`` / ``conf`` the
    :class:`~facescope.models.heads.dsfd_head.DeepHeadModule` heads.

    Returns (forward): face outputs only, :class:`DenseOutputs` with per level
    ``Tensor[B, N_l, 2]`` max-in-out (background, face) logits and ``Tensor[B, N_l, 4]`` deltas of
    the face anchors (second-shot sizes of :func:`pal_anchor_sizes`, clamped to the input as the
    release's priors).

    Its registry entry's criterion (``dsfd_pal``, single shot here) fine-tunes the face outputs; the
    release's head/body part losses (their weights were never published) are not reproduced.
    """

    family = "dsfd"
    strides = PAL_STRIDES
    num_anchors = 1

    def __init__(self) -> None:
        super().__init__(
            OFFICIAL_HEAD.anchor_generator(),
            OFFICIAL_HEAD.coder,
            DSFD_INPUT,
            has_landmarks=False,
            score_activation=OFFICIAL_HEAD.score_activation,
        )
        resnet = torchvision.models.resnet152(weights=None)
        self.layer1 = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1)
        self.layer2 = nn.Sequential(resnet.layer2)
        self.layer3 = nn.Sequential(resnet.layer3)
        self.layer4 = nn.Sequential(resnet.layer4)
        self.layer5 = nn.Sequential(*_conv_bn_relu(2048, 512, 1, 1), *_conv_bn_relu(512, 512, 3, 2))
        self.layer6 = nn.Sequential(*_conv_bn_relu(512, 128, 1, 1), *_conv_bn_relu(128, 256, 3, 2))
        c = OFFICIAL_LEVEL_CHANNELS
        self.latlayer3 = nn.Conv2d(c[3], c[2], kernel_size=1)
        self.latlayer2 = nn.Conv2d(c[2], c[1], kernel_size=1)
        self.latlayer1 = nn.Conv2d(c[1], c[0], kernel_size=1)
        self.smooth3 = nn.Conv2d(c[2], c[2], kernel_size=1)
        self.smooth2 = nn.Conv2d(c[1], c[1], kernel_size=1)
        self.smooth1 = nn.Conv2d(c[0], c[0], kernel_size=1)
        self.cpm3_3 = OfficialFEM(c[0])
        self.cpm4_3 = OfficialFEM(c[1])
        self.cpm5_3 = OfficialFEM(c[2])
        self.cpm7 = OfficialFEM(c[3])
        self.cpm6_2 = OfficialFEM(c[4])
        self.cpm7_2 = OfficialFEM(c[5])
        self.loc = nn.ModuleList(DeepHeadModule(OFFICIAL_FEM_CHANNELS, n) for n in OFFICIAL_LOC_CHANNELS)
        self.conf = nn.ModuleList(DeepHeadModule(OFFICIAL_FEM_CHANNELS, n) for n in OFFICIAL_CONF_CHANNELS)

    def enhanced_features(self, images: Tensor) -> list[Tensor]:
        """``Tensor[B, 3, H, W]`` -> six ``Tensor[B, 512, ceil(H/s_l), ceil(W/s_l)]`` FEM outputs."""
        conv3_3 = self.layer1(images)
        conv4_3 = self.layer2(conv3_3)
        conv5_3 = self.layer3(conv4_3)
        fc7 = self.layer4(conv5_3)
        conv6_2 = self.layer5(fc7)
        conv7_2 = self.layer6(conv6_2)
        fused5 = upsample_product(self.latlayer3(fc7), self.smooth3(conv5_3), align_corners=True)
        fused4 = upsample_product(self.latlayer2(fused5), self.smooth2(conv4_3), align_corners=True)
        fused3 = upsample_product(self.latlayer1(fused4), self.smooth1(conv3_3), align_corners=True)
        return [
            self.cpm3_3(fused3),
            self.cpm4_3(fused4),
            self.cpm5_3(fused5),
            self.cpm7(fc7),
            self.cpm6_2(conv6_2),
            self.cpm7_2(conv7_2),
        ]

    def forward(self, images: Tensor) -> DenseOutputs:
        cls: list[Tensor] = []
        box: list[Tensor] = []
        for level, x in enumerate(self.enhanced_features(images)):
            # Channels 0..3 of loc are the face box of the single anchor; the rest are head/body parts.
            box.append(flatten_level(self.loc[level](x)[:, :4], 4))
            cls.append(flatten_level(max_in_out(self.conf[level](x), max_out_background=level == 0), 2))
        return DenseOutputs(cls, box)

    @property
    def backbone(self) -> nn.Module:
        """The ResNet-152 stem and stages (``layer1`` .. ``layer4``, the checkpoint's names)."""
        return nn.ModuleList([self.layer1, self.layer2, self.layer3, self.layer4])


# --------------------------------------------------------------------------------------------
# Builders (registered, with presets and the release, in facescope.models.catalog.dsfd)
# --------------------------------------------------------------------------------------------


def dsfd_vgg16() -> DSFD:
    """The paper's DSFD on VGG-16 (``backbone.features.*`` loads torchvision's ImageNet ``vgg16``; fc6/fc7 are
    ``top``).

    Example:
        >>> with torch.device("meta"):
        ...     model = dsfd_vgg16()
        >>> sum(p.numel() for p in model.parameters())
        49793432
    """
    return DSFD(VGG16Body(), l2norm_scales=VGG_L2NORM_SCALES, top=ReducedFC())


def _dsfd_resnet(depth: int) -> DSFD:
    # zero-gain residual branches: from random weights, ResNet-152's activations (grown block by block) pass
    # through the six-level product fusion, whose products overflowed float32 (non-finite boxes)
    return DSFD(TorchvisionResNetBody(depth, ("layer1", "layer2", "layer3", "layer4"), zero_init_residual=True))


def dsfd_r50() -> DSFD:
    """The paper's DSFD on ResNet-50 (``backbone.*`` = torchvision ``resnet50`` keys without ``fc``).

    Example:
        >>> with torch.device("meta"):
        ...     out = dsfd_r50()(torch.zeros(1, 3, 64, 64))
        >>> [t.shape[1] for t in out.aux[0].box_regs]  # the first shot, as many rows as the second
        [256, 64, 16, 4, 1, 1]
    """
    return _dsfd_resnet(50)


def dsfd_r101() -> DSFD:
    """The paper's DSFD on ResNet-101 (torchvision ``resnet101`` keys).

    Example:
        >>> with torch.device("meta"):
        ...     model = dsfd_r101()
        >>> sum(p.numel() for p in model.parameters())
        125737112
    """
    return _dsfd_resnet(101)


def dsfd_r152() -> DSFD:
    """The paper's DSFD on ResNet-152 (torchvision ``resnet152`` keys).

    Example:
        >>> with torch.device("meta"):
        ...     model = dsfd_r152()
        >>> sum(p.numel() for p in model.parameters())
        141380760
    """
    return _dsfd_resnet(152)


def dsfd_mnet025() -> DSFD:
    """The small variant: the DSFD code path on MobileNetV1-0.25 (``backbone.stage*`` = Pytorch_Retinaface's
    ``mobilenetV1X0.25_pretrain.tar`` keys without ``module.`` and the classifier), with L2Norm on all six
    original maps and the fusion fed the normalised maps (:data:`MNET_L2NORM_SCALES`).

    Example:
        >>> out = dsfd_mnet025().eval()(torch.zeros(1, 3, 64, 96))
        >>> [tuple(t.shape) for t in out.cls_logits[:2]], len(out.aux)
        ([(1, 384, 2), (1, 96, 2)], 1)
    """
    return DSFD(
        MobileNetV1Taps(),
        l2norm_scales=MNET_L2NORM_SCALES,
        fuse_normalised=True,
        second_shot_l2norm=False,
        fusion_batch_norm=True,
    )


def dsfd_official() -> DSFDOfficial:
    """The released DSFD-ResNet-152 (``WIDERFace_DSFD_RES152.pth`` layout).

    Example:
        >>> with torch.device("meta"):
        ...     model = dsfd_official()
        >>> sum(p.numel() for p in model.parameters()), len(model.anchor_generators)
        (120058406, 1)
    """
    return DSFDOfficial()
