"""RetinaFace: "Single-stage Dense Face Localisation in the Wild" (Deng et al., CVPR 2020).

Two families of architectures:

* ``retinaface_mnet025`` / ``retinaface_r50``: exactly the widely used PyTorch port
  (biubug6/Pytorch_Retinaface). MobileNetV1-0.25 (LeakyReLU 0.1) or torchvision ResNet-50 body ->
  3-level FPN (strides 8/16/32) -> one SSH context module per level -> per-level 1x1 class / box /
  landmark heads; 2 square priors per location (16/32, 64/128, 256/512) centred at
  ``(j + 0.5) * stride``; SSD delta coding with variances (0.1, 0.2). State dicts match the
  official checkpoints key for key, so ``mobilenet0.25_Final.pth`` / ``Resnet50_Final.pth`` load
  as they are.
* ``retinaface_paper_r50`` / ``retinaface_paper_r152``: the paper's detector: P2..P6 (strides
  4..64), 3 anchors per location (16 * 2^(l + k/3)), an independent context module per level,
  optional deformable convolutions, one shared 1x1 loss head, and an optional dense-regression
  (mesh decoder) branch.

``forward`` returns raw logits and encodings; the training loss is a
:class:`~facescope.losses.multibox.MultiBoxCriterion` (softmax + OHEM, smooth-L1 boxes and
landmarks, plus the pixel loss when the dense branch is on), port settings ``PORT_LOSS`` and paper
settings ``PAPER_LOSS``; ``postprocess`` decodes and applies NMS.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from facescope.losses.multibox import PAPER_LOSS, PORT_LOSS, MultiBoxCriterion, MultiBoxLossConfig
from facescope.losses.pixel import PixelLoss
from facescope.models.backbones import RetinaFaceMobileNetV1, TorchvisionResNetBody
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.heads.mesh_decoder import DenseRegressionBranch
from facescope.models.heads.retinaface_head import (
    BboxHead,
    ClassHead,
    LandmarkHead,
    SharedRetinaFaceHead,
    make_level_heads,
)
from facescope.models.necks import SSH, RetinaFaceFPN, RetinaFacePaperFPN
from facescope.models.registry import register_model
from facescope.models.spec import InferencePreset, InputSpec, PostprocessSettings, ResizeSpec
from facescope.models.weights import WeightSpec
from facescope.ops.anchors import AnchorGenerator
from facescope.ops.coders import DeltaCoder

PORT_STRIDES = (8, 16, 32)
PORT_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
PAPER_STRIDES = (4, 8, 16, 32, 64)
VARIANCES = (0.1, 0.2)

# Pytorch_Retinaface feeds raw BGR pixels minus the ImageNet-Caffe mean, no std scaling, at any size.
RETINAFACE_INPUT = InputSpec(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), color="bgr", size_divisor=1)

_OFFICIAL_TEST = InferencePreset(
    "Pytorch_Retinaface test_widerface.py: original size without padding, BGR - (104, 117, 123), "
    "score > 0.02, numpy NMS 0.4 with +1 areas, no top-k",
    ResizeSpec("original", size_divisor=1),
    PostprocessSettings(score_thresh=0.02, nms_thresh=0.4, nms_pixel_offset=1.0, strict_score=True),
)
RETINAFACE_PRESETS: dict[str, InferencePreset] = {
    "default": InferencePreset(
        "original image size, score >= 0.5, NMS 0.4 (+1 areas)",
        ResizeSpec("original", size_divisor=1),
        PostprocessSettings(score_thresh=0.5, nms_thresh=0.4, nms_pixel_offset=1.0),
    ),
    "official": _OFFICIAL_TEST,
    # The protocol of the published WIDER FACE numbers: the port evaluates with its test script.
    "widerface": replace(_OFFICIAL_TEST, description="WIDER FACE protocol of the port (= 'official')"),
    "official_detect": InferencePreset(
        "Pytorch_Retinaface detect.py: as 'official', plus top 5000 scores before NMS and at most 750 faces after",
        ResizeSpec("original", size_divisor=1),
        PostprocessSettings(
            score_thresh=0.02,
            nms_thresh=0.4,
            nms_pixel_offset=1.0,
            strict_score=True,
            pre_nms_top_k=5000,
            max_detections=750,
        ),
    ),
}


class _RetinaFaceBase(DenseFaceDetector):
    """Shared by both RetinaFace families: softmax scores and the multibox criterion."""

    family = "retinaface"
    presets = RETINAFACE_PRESETS
    default_loss_config = PORT_LOSS

    def __init__(self, anchor_generator: AnchorGenerator) -> None:
        super().__init__(anchor_generator, DeltaCoder(VARIANCES), RETINAFACE_INPUT, has_landmarks=True)

    @property
    def backbone(self) -> nn.Module:
        """The classification body (both families keep the port's state-dict prefix ``body``)."""
        return self.body

    def scores_from_logits(self, cls_logits: Tensor) -> Tensor:
        """Softmax over (background, face), column 1: ``Tensor[B, N, 2] -> Tensor[B, N]``."""
        return torch.softmax(cls_logits, dim=-1)[..., 1]

    def make_criterion(self, config: MultiBoxLossConfig) -> MultiBoxCriterion:
        """Multibox criterion (max-IoU, softmax + OHEM, smooth-L1) over this model's priors."""
        return MultiBoxCriterion(self.anchor_generator, self.coder, config)


class RetinaFace(_RetinaFaceBase):
    """The Pytorch_Retinaface architecture (attribute names are the official state-dict prefixes).

    Args:
        body: returns C3, C4, C5 (strides 8, 16, 32) and exposes ``out_channels``.
        out_channels: FPN / SSH width (64 for MobileNet-0.25, 256 for ResNet-50).

    Its default criterion settings are the port's (:data:`~facescope.losses.multibox.PORT_LOSS`).

    Example:
        >>> model = create_model("retinaface_mnet025").eval()
        >>> out = model(torch.zeros(1, 3, 640, 640))
        >>> [t.shape[1] for t in out.cls_logits]
        [12800, 3200, 800]
    """

    def __init__(self, body: nn.Module, out_channels: int) -> None:
        super().__init__(AnchorGenerator(PORT_STRIDES, PORT_MIN_SIZES, center_offset=0.5))
        num_anchors = 2
        self.body = body
        self.fpn = RetinaFaceFPN(body.out_channels, out_channels)
        self.ssh1 = SSH(out_channels, out_channels)
        self.ssh2 = SSH(out_channels, out_channels)
        self.ssh3 = SSH(out_channels, out_channels)
        self.ClassHead = make_level_heads(ClassHead, 3, out_channels, num_anchors)  # noqa: N815 - official key
        self.BboxHead = make_level_heads(BboxHead, 3, out_channels, num_anchors)  # noqa: N815
        self.LandmarkHead = make_level_heads(LandmarkHead, 3, out_channels, num_anchors)  # noqa: N815

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` (any H, W) -> per-level ``[B, N_l, 2]`` logits, ``[B, N_l, 4]`` and ``[B, N_l, 10]``."""
        p3, p4, p5 = self.fpn(self.body(images))
        features = [self.ssh1(p3), self.ssh2(p4), self.ssh3(p5)]
        return DenseOutputs(
            [head(f) for head, f in zip(self.ClassHead, features)],
            [head(f) for head, f in zip(self.BboxHead, features)],
            [head(f) for head, f in zip(self.LandmarkHead, features)],
        )


def paper_anchor_sizes(base_size: float = 16.0, num_levels: int = 5, scales_per_octave: int = 3) -> tuple[tuple[float, ...], ...]:
    """Anchor sides per level: ``base * 2^(level + k / scales_per_octave)`` (paper Table 2)."""
    return tuple(
        tuple(base_size * 2 ** (level + k / scales_per_octave) for k in range(scales_per_octave))
        for level in range(num_levels)
    )


class RetinaFacePaper(_RetinaFaceBase):
    """The paper's RetinaFace: ResNet C2..C5 -> P2..P6 -> context modules -> shared 1x1 head.

    Args:
        depth: ResNet depth (50 or 152).
        deformable: deformable 3x3 convs in the lateral connections and context modules.
        dense_branch: optional mesh-decoder branch; adds the ``pixel`` term to the criterion.
        out_channels: pyramid width.

    Its default criterion settings are the paper's (:data:`~facescope.losses.multibox.PAPER_LOSS`).

    Example:
        >>> model = build_retinaface_paper(50, deformable=False)
        >>> len(model.anchor_generator.priors((640, 640)))
        102300
    """

    default_loss_config = PAPER_LOSS

    def __init__(
        self,
        depth: int = 50,
        deformable: bool = True,
        dense_branch: DenseRegressionBranch | None = None,
        out_channels: int = 256,
    ) -> None:
        super().__init__(AnchorGenerator(PAPER_STRIDES, paper_anchor_sizes(), center_offset=0.5))
        self.deformable = deformable
        self.body = TorchvisionResNetBody(depth, ("layer1", "layer2", "layer3", "layer4"))
        self.fpn = RetinaFacePaperFPN(self.body.out_channels, out_channels, deformable)
        self.context = nn.ModuleList(SSH(out_channels, out_channels, deformable) for _ in PAPER_STRIDES)
        dense_params = dense_branch.num_params if dense_branch is not None else 0
        self.head = SharedRetinaFaceHead(out_channels, 3, dense_params)
        self.dense_branch = dense_branch

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` -> five levels of logits / encodings (and dense parameters in ``extras``)."""
        pyramid = self.fpn(self.body(images))
        features = [context(p) for context, p in zip(self.context, pyramid)]
        cls, box, landmarks, dense = self.head(features)
        extras = {}
        if dense is not None:
            # The pixel loss compares renderings with crops of the input, so the batch travels along.
            extras = {"dense_params": dense, "images": images}
        return DenseOutputs(cls, box, landmarks, extras)

    def make_criterion(self, config: MultiBoxLossConfig) -> MultiBoxCriterion:
        """Multibox criterion over the P2-P6 anchors, plus the pixel loss when the dense branch is on."""
        terms = [PixelLoss(self.dense_branch, config.pixel_weight, config.max_pixel_anchors)] if self.dense_branch is not None else []
        return MultiBoxCriterion(self.anchor_generator, self.coder, config, terms=terms)


# ---------------------------------------------------------------------------------------------
# Builders and weights
# ---------------------------------------------------------------------------------------------

PYTORCH_RETINAFACE_RELEASES = "https://drive.google.com/open?id=1oZRSG0ZegbVkVwUd8wUIQx8W7yfZ_ki1"
PYTORCH_RETINAFACE_LICENSE = "MIT (biubug6/Pytorch_Retinaface)"

RETINAFACE_MNET025_WEIGHTS = WeightSpec(
    tag="official",
    # The official release is a Google Drive folder (``source``) that cannot be fetched by URL; this
    # GitHub release serves the identical file (same sha256 as the Drive file).
    url="https://github.com/elliottzheng/face-detection/releases/download/0.0.1/mobilenet0.25_Final.pth",
    sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
    filename="retinaface_mobilenet0.25_Final.pth",
    license=PYTORCH_RETINAFACE_LICENSE,
    format="torch",
    source=PYTORCH_RETINAFACE_RELEASES,
    input_size=None,
    preset="official",
    metrics={"widerface_val": {"easy": 90.70, "medium": 88.16, "hard": 73.82}},
)

RETINAFACE_R50_WEIGHTS = WeightSpec(
    tag="facexlib",
    # facexlib's re-release of the Pytorch_Retinaface ResNet-50 checkpoint, loaded by facexlib into
    # the same module tree with strict=True. sha256 (and size, 109,497,761 bytes) as stated in
    # several public download manifests that verify this exact URL (e.g. GFPGAN / Stable Diffusion
    # deployment scripts); not re-verified here, since nothing can be downloaded in this workspace.
    url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
    sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
    filename="retinaface_Resnet50_Final.pth",
    license=PYTORCH_RETINAFACE_LICENSE,
    format="torch",
    source=PYTORCH_RETINAFACE_RELEASES,
    input_size=None,
    preset="official",
    metrics={"widerface_val": {"easy": 95.48, "medium": 94.04, "hard": 84.43}},
)


@register_model(
    "retinaface_mnet025",
    family="retinaface",
    summary="RetinaFace MobileNet-0.25 (Pytorch_Retinaface): FPN 8/16/32, SSH, 2 priors/location, 5 landmarks",
    weights=(RETINAFACE_MNET025_WEIGHTS,),
)
def retinaface_mnet025() -> RetinaFace:
    return RetinaFace(RetinaFaceMobileNetV1(), out_channels=64)


@register_model(
    "retinaface_r50",
    family="retinaface",
    summary="RetinaFace ResNet-50 (Pytorch_Retinaface): FPN 8/16/32, SSH, 2 priors/location, 5 landmarks",
    weights=(RETINAFACE_R50_WEIGHTS,),
)
def retinaface_r50() -> RetinaFace:
    return RetinaFace(TorchvisionResNetBody(50, ("layer2", "layer3", "layer4")), out_channels=256)


def build_retinaface_paper(
    depth: int = 50,
    *,
    deformable: bool = True,
    mesh_topology: str | Path | None = None,
) -> RetinaFacePaper:
    """The paper's RetinaFace with explicit options.

    Args:
        depth: ResNet depth of the body (50, 101 or 152).
        deformable: deformable convs in lateral connections and context modules (the paper: on).
        mesh_topology: a mesh topology ``.npz`` (:mod:`facescope.models.mesh_topology`) to enable the
            dense-regression branch and the pixel loss; None = no dense branch.
    """
    dense_branch = None
    if mesh_topology is not None:
        from facescope.models.mesh_topology import load_mesh_topology

        dense_branch = DenseRegressionBranch(load_mesh_topology(mesh_topology))
    return RetinaFacePaper(depth, deformable, dense_branch)


@register_model(
    "retinaface_paper_r50",
    family="retinaface",
    summary="RetinaFace as in the paper, ResNet-50: P2-P6, 3 anchors/location, deformable context, shared head",
)
def retinaface_paper_r50() -> RetinaFacePaper:
    return build_retinaface_paper(50)


@register_model(
    "retinaface_paper_r152",
    family="retinaface",
    summary="RetinaFace as in the paper, ResNet-152: P2-P6, 3 anchors/location, deformable context, shared head",
)
def retinaface_paper_r152() -> RetinaFacePaper:
    return build_retinaface_paper(152)


__all__ = [
    "RETINAFACE_PRESETS",
    "RetinaFace",
    "RetinaFacePaper",
    "build_retinaface_paper",
    "paper_anchor_sizes",
]
