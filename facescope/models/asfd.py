"""ASFD: "Automatic and Scalable Face Detector" (Li et al., arXiv 2003.11228) -- the networks.

Facts: ``shared/reference/dsfd_asfd_shf_eval.md`` section 2.5 (what the paper states and what it leaves open).
ASFD is DSFD's dual-shot paradigm (:class:`~facescope.models.dual_shot.DualShotDetector`) with:

* a backbone giving four maps (strides 4..32) and two extra stride-2 blocks (strides 64, 128);
* ``lateral``: a 1x1 conv + BatchNorm + ReLU per level projecting every map to one width ``W`` (so one head
  serves both shots); these are the **original** maps, the first shot's input;
* the enhance stage ``autofem``: :class:`~facescope.models.autofem.AutoFEM` (the searched FPN cell, then one
  searched CPM cell per level) built from a genotype, giving the **enhanced** maps, the second shot's input;
* **one** :class:`~facescope.models.heads.shot_head.ShotHead` of ``head_depth`` 3x3 convs per tower, shared by
  both shots, whose class convs output cosines (:class:`~facescope.models.heads.shot_head.CosineConv2d`) for the
  large-margin cosine loss; the model scores ``softmax(cls_scale * cos)``;
* DSFD's anchors: one per location, height:width 1.5, second shot 16..512, first shot 8..256 (PAL).

The family ``asfd_d0`` .. ``asfd_d6`` is one builder scaled by :data:`~facescope.models.catalog.asfd.ASFD_SCALES`
(backbone, width, CPM cell repeats, head depth): facescope's compound scaling, chosen so that parameters and
multiply-adds at 640x480 land within 5 % of the paper's Table 4 (the paper publishes neither its scaling rule
nor its searched cells). :func:`asfd_supernet` is the search's network (:class:`~facescope.models.autofem.SearchAutoFEM`).

``forward(images)`` returns :class:`~facescope.models.base.DenseOutputs` of the second shot (cosines
``Tensor[B, N_l, 2]``, SSD deltas ``Tensor[B, N_l, 4]``) with the first shot in ``aux``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from facescope.models.autofem import AutoFEM, Genotype, SearchAutoFEM, default_genotype
from facescope.models.backbones.retinaface_mobilenet import MobileNetV1Taps
from facescope.models.backbones.torchvision_resnet import TorchvisionResNetBody
from facescope.models.catalog.asfd import ASFD_SCALES, DEFAULT_CLS_SCALE, ASFDScale, asfd_head
from facescope.models.catalog.dsfd import DSFD_INPUT, PAL_STRIDES
from facescope.models.dual_shot import DualShotDetector
from facescope.models.heads.shot_head import ShotHead
from facescope.models.layers import PerLevel, conv_bn_act, xavier_init_convs
from facescope.models.options import ModelFile


def build_backbone(name: str) -> nn.Module:
    """The body of a scaling-table row: four maps at strides 4..32 with ``out_channels``.

    ``mobilenet_v1_0.25`` is Pytorch_Retinaface's MobileNetV1-0.25 with a stride-4 tap (its ImageNet file
    ``mobilenetV1X0.25_pretrain.tar`` loads into ``backbone.*``); ``mobilenet_v1_1.0`` the same layers at full
    width; ``resnet18`` .. ``resnet152`` are torchvision's bodies (``backbone.*`` = torchvision keys without ``fc``).
    """
    if name.startswith("mobilenet_v1_"):
        return MobileNetV1Taps(float(name.removeprefix("mobilenet_v1_")))
    if name.startswith("resnet"):
        return TorchvisionResNetBody(int(name.removeprefix("resnet")), ("layer1", "layer2", "layer3", "layer4"), zero_init_residual=True)
    raise ValueError(f"unknown ASFD backbone '{name}' (mobilenet_v1_0.25, mobilenet_v1_1.0, resnet18 ... resnet152)")


class ExtraBlocks(nn.Module):
    """The two extra levels (strides 64, 128) on the body's last map, each ``1x1 -> ReLU -> 3x3/2 -> ReLU``
    with ``mid`` channels between the two convs.

    Shapes: ``Tensor[B, C, H, W] -> [Tensor[B, width, ceil(H/2), .], Tensor[B, width, ceil(H/4), .]]``.
    """

    def __init__(self, in_channels: int, width: int, mid: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels if i == 0 else width, mid, 1), nn.ReLU(inplace=True),
                nn.Conv2d(mid, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            )  # fmt: skip
            for i in range(2)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs


def lateral_projections(channels: Sequence[int], width: int) -> PerLevel:
    """Per level, ``1x1 conv (no bias) -> BatchNorm -> ReLU`` from ``C_l`` to ``width``."""
    return PerLevel(conv_bn_act(c, width, stride=1, kernel_size=1) for c in channels)


class ASFD(DualShotDetector):
    """A dual-shot detector with an AutoFEM enhance stage and one shared cosine head.

    Args:
        backbone: four maps (strides 4..32) with ``out_channels``.
        width: the width ``W`` of every level after ``lateral`` (AutoFEM's and the head's input).
        enhance: the AutoFEM (:class:`AutoFEM` or, for the search, :class:`SearchAutoFEM`) over ``W``-wide maps.
        head_depth: 3x3 conv + ReLU layers in each tower of the shared head (the paper's "light" heads: 2).
        head_width: channels of the head's tower convs (default ``width``).
        extra_mid: channels between the two convs of each extra block (default ``width // 2``).
        cls_scale: the scale ``s`` of the cosine logits (``softmax(s * cos)``; the DRMC loss's ``margin_scale``).

    Attributes: ``backbone``, ``extras``, ``lateral``, ``autofem``, ``second_shot`` (the shared head).

    Example:
        >>> model = asfd_d0().eval()
        >>> out = model(torch.zeros(1, 3, 64, 96))
        >>> [tuple(t.shape) for t in out.cls_logits[:2]], len(out.aux), model.logit_scale
        ([(1, 384, 2), (1, 96, 2)], 1, 30.0)
    """

    family = "asfd"
    strides = PAL_STRIDES
    num_anchors = 1
    #: the search's one-path forward leaves the other candidate ops without gradients (DDP must know)
    dynamic_graph = False

    def __init__(
        self,
        backbone: nn.Module,
        width: int,
        enhance: nn.Module,
        head_depth: int = 2,
        *,
        head_width: int | None = None,
        extra_mid: int | None = None,
        cls_scale: float = DEFAULT_CLS_SCALE,
    ) -> None:
        body_channels = tuple(backbone.out_channels)  # type: ignore[arg-type]
        if len(body_channels) != 4:
            raise ValueError(f"the ASFD backbone must return 4 maps (strides 4..32), it has {len(body_channels)}")
        if cls_scale <= 0:
            raise ValueError(f"cls_scale must be > 0, got {cls_scale}")
        extras = ExtraBlocks(body_channels[-1], width, extra_mid or max(width // 2, 8))
        lateral = lateral_projections((*body_channels, width, width), width)
        head = ShotHead((width,) * len(PAL_STRIDES), self.num_anchors, depth=head_depth, width=head_width or width, cosine=True)
        for new_part in (extras, lateral):
            xavier_init_convs(new_part)
        super().__init__(
            backbone,
            extras,
            {"autofem": enhance},
            head,
            layouts=(asfd_head("second", cls_scale), asfd_head("first", cls_scale)),
            input_spec=DSFD_INPUT,
            lateral=lateral,
            first_shot_in_eval=False,  # the first shot only trains (its loss is the auxiliary one)
        )
        self.width = width


def _genotype(genotype: ModelFile | None, nodes: int = 6) -> Genotype:
    """The option's genotype (checked: six levels), or facescope's default one when it is None."""
    if genotype is None:
        return default_genotype(levels=len(PAL_STRIDES), nodes=nodes)
    found = Genotype.from_json(genotype.text(), f"model option 'genotype' ({genotype.name})")
    if found.levels != len(PAL_STRIDES):
        raise ValueError(f"model option 'genotype' ({genotype.name}): {found.levels} levels, ASFD has {len(PAL_STRIDES)}")
    return found


def build_asfd(scale: ASFDScale, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """An ASFD of one scaling-table row with ``genotype`` (None: facescope's default genotype)."""
    cells = _genotype(genotype)
    fem = AutoFEM(scale.width, cells, cpm_repeats=scale.cpm_repeats)
    xavier_init_convs(fem)
    return ASFD(
        build_backbone(scale.backbone), scale.width, fem, scale.head_depth,
        head_width=scale.head_width, extra_mid=scale.extra_mid, cls_scale=cls_scale,
    )  # fmt: skip


def asfd_d0(*, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """ASFD-D0 (:data:`~facescope.models.catalog.asfd.ASFD_SCALES` row 0; paper Table 4: 0.62 M, 0.73 GMACs).

    Args:
        genotype: a genotype JSON file (``facescope search asfd`` writes one); None = facescope's default.
        cls_scale: the cosine logits' scale ``s``.
    """
    return build_asfd(ASFD_SCALES["asfd_d0"], genotype, cls_scale)


def asfd_d1(*, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """ASFD-D1 (paper Table 4: 3.90 M, 4.27 GMACs); options as :func:`asfd_d0`."""
    return build_asfd(ASFD_SCALES["asfd_d1"], genotype, cls_scale)


def asfd_d2(*, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """ASFD-D2 (paper Table 4: 13.56 M, 20.48 GMACs); options as :func:`asfd_d0`."""
    return build_asfd(ASFD_SCALES["asfd_d2"], genotype, cls_scale)


def asfd_d3(*, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """ASFD-D3 (paper Table 4: 26.56 M, 46.32 GMACs); options as :func:`asfd_d0`."""
    return build_asfd(ASFD_SCALES["asfd_d3"], genotype, cls_scale)


def asfd_d4(*, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """ASFD-D4 (paper Table 4: 36.76 M, 70.45 GMACs); options as :func:`asfd_d0`."""
    return build_asfd(ASFD_SCALES["asfd_d4"], genotype, cls_scale)


def asfd_d5(*, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """ASFD-D5 (paper Table 4: 67.73 M, 147.40 GMACs); options as :func:`asfd_d0`."""
    return build_asfd(ASFD_SCALES["asfd_d5"], genotype, cls_scale)


def asfd_d6(*, genotype: ModelFile | None = None, cls_scale: float = DEFAULT_CLS_SCALE) -> ASFD:
    """ASFD-D6 (paper Table 4: 86.10 M, 183.11 GMACs); options as :func:`asfd_d0`."""
    return build_asfd(ASFD_SCALES["asfd_d6"], genotype, cls_scale)


def asfd_supernet(
    *,
    backbone: str = "resnet50",
    width: int = 256,
    nodes: int = 6,
    partial: int = 4,
    head_depth: int = 2,
    cls_scale: float = DEFAULT_CLS_SCALE,
) -> ASFD:
    """The AutoFEM search's network (paper section 3: ResNet-50, width 256, 6-node CPMs, 2-layer heads).

    Args:
        backbone: a body name of :func:`build_backbone`.
        width: the FPN/CPM width (a multiple of ``partial``).
        nodes: intermediate nodes per CPM cell.
        partial: PC-DARTS's channel fraction ``1/partial`` per edge.
        head_depth: 3x3 convs per tower of the shared head.
        cls_scale: the cosine logits' scale ``s``.

    Its architecture logits are the parameters named ``*.alpha.*`` / ``*.beta.*``
    (:func:`~facescope.models.autofem.architecture_parameters`); ``model.autofem.genotype()`` derives the result.

    Example:
        >>> net = asfd_supernet(backbone="mobilenet_v1_0.25", width=16, nodes=2)
        >>> net.autofem.genotype().levels
        6
    """
    fem = SearchAutoFEM(width, levels=len(PAL_STRIDES), nodes=nodes, partial=partial)
    model = ASFD(build_backbone(backbone), width, fem, head_depth, cls_scale=cls_scale)
    model.dynamic_graph = True
    return model
