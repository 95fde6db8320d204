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

``forward`` returns raw logits and encodings; the registry entries name the training criterion
(``retinaface_port`` / ``retinaface_paper`` in :mod:`facescope.losses.criteria`: a multibox criterion,
softmax + OHEM, smooth-L1 boxes and landmarks, plus the pixel loss when the dense branch is on). Decoding and NMS live in :mod:`facescope.inference.postprocess`; head
layouts, presets and weights in :mod:`facescope.models.catalog.retinaface`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from facescope.models.backbones import RetinaFaceMobileNetV1, TorchvisionResNetBody
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.heads.mesh_decoder import DenseRegressionBranch
from facescope.models.options import ModelFile
from facescope.models.heads.retinaface_head import (
    BboxHead,
    ClassHead,
    LandmarkHead,
    SharedRetinaFaceHead,
    make_level_heads,
)
from facescope.models.necks import SSH, RetinaFaceFPN, RetinaFacePaperFPN
from facescope.models.catalog.retinaface import (  # noqa: F401 - presets and releases re-exported for callers
    PAPER_HEAD,
    PAPER_STRIDES,
    PORT_HEAD,
    RETINAFACE_INPUT,
    RETINAFACE_MNET025_WEIGHTS,
    RETINAFACE_PRESETS,
    RETINAFACE_R50_WEIGHTS,
    paper_anchor_sizes,
)
from facescope.ops.anchors import AnchorGenerator

class _RetinaFaceBase(DenseFaceDetector):
    """Shared by both RetinaFace families: coder, input spec and softmax scores of the catalogue."""

    family = "retinaface"

    def __init__(self, anchor_generator: AnchorGenerator) -> None:
        # coder, input spec and score activation from the catalogue's declaration (both layouts share them)
        super().__init__(
            anchor_generator, PORT_HEAD.coder, RETINAFACE_INPUT, has_landmarks=True, score_activation=PORT_HEAD.score_activation
        )

    @property
    def backbone(self) -> nn.Module:
        """The classification body (both families keep the port's state-dict prefix ``body``)."""
        return self.body



class RetinaFace(_RetinaFaceBase):
    """The Pytorch_Retinaface architecture (attribute names are the official state-dict prefixes).

    Args:
        body: returns C3, C4, C5 (strides 8, 16, 32) and exposes ``out_channels``.
        out_channels: FPN / SSH width (64 for MobileNet-0.25, 256 for ResNet-50).

    Example:
        >>> model = create_model("retinaface_mnet025").eval()
        >>> out = model(torch.zeros(1, 3, 640, 640))
        >>> [t.shape[1] for t in out.cls_logits]
        [12800, 3200, 800]
    """

    def __init__(self, body: nn.Module, out_channels: int) -> None:
        super().__init__(PORT_HEAD.anchor_generator())
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


class RetinaFacePaper(_RetinaFaceBase):
    """The paper's RetinaFace: ResNet C2..C5 -> P2..P6 -> context modules -> shared 1x1 head.

    Args:
        depth: ResNet depth (50 or 152).
        deformable: deformable 3x3 convs in the lateral connections and context modules.
        dense_branch: optional mesh-decoder branch (the ``retinaface_paper`` criterion adds its ``pixel`` term).
        out_channels: pyramid width.

    Example:
        >>> model = build_retinaface_paper(50, deformable=False)
        >>> len(model.anchor_generator.priors((640, 640)))
        102300
    """

    def __init__(
        self,
        depth: int = 50,
        deformable: bool = True,
        dense_branch: DenseRegressionBranch | None = None,
        out_channels: int = 256,
    ) -> None:
        super().__init__(PAPER_HEAD.anchor_generator())
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


# ---------------------------------------------------------------------------------------------
# Builders (registered, with their weights, in facescope.models.catalog.retinaface)
# ---------------------------------------------------------------------------------------------

def retinaface_mnet025() -> RetinaFace:
    """The Pytorch_Retinaface MobileNet-0.25 network (``mobilenet0.25_Final.pth`` layout).

    Example:
        >>> sum(p.numel() for p in retinaface_mnet025().parameters())
        426608
    """
    return RetinaFace(RetinaFaceMobileNetV1(), out_channels=64)


def retinaface_r50() -> RetinaFace:
    """The Pytorch_Retinaface ResNet-50 network (``Resnet50_Final.pth`` layout).

    Example:
        >>> sum(p.numel() for p in retinaface_r50().parameters())
        27293600
    """
    return RetinaFace(TorchvisionResNetBody(50, ("layer2", "layer3", "layer4")), out_channels=256)


def build_retinaface_paper(
    depth: int = 50,
    *,
    deformable: bool = True,
    mesh_topology: str | Path | ModelFile | None = None,
) -> RetinaFacePaper:
    """The paper's RetinaFace with explicit options.

    Args:
        depth: ResNet depth of the body (50, 101 or 152).
        deformable: deformable convs in lateral connections and context modules (the paper: on).
        mesh_topology: a mesh topology ``.npz`` (:mod:`facescope.models.mesh_topology`; a path, or the
            file's content) to enable the dense-regression branch and the pixel loss; None = no dense branch.

    Example:
        >>> model = build_retinaface_paper(50, deformable=False)
    """
    dense_branch = None
    if mesh_topology is not None:
        from facescope.models.mesh_topology import load_mesh_topology

        dense_branch = DenseRegressionBranch(load_mesh_topology(mesh_topology))
    return RetinaFacePaper(depth, deformable, dense_branch)


def retinaface_paper_r50(*, deformable: bool = True, mesh_topology: ModelFile | None = None) -> RetinaFacePaper:
    """``retinaface_paper_r50``: :func:`build_retinaface_paper` with ResNet-50. ``mesh_topology`` is a
    file-valued option: the registry reads the path it is given, checkpoints carry the file's content.

    Example:
        >>> model = create_model("retinaface_paper_r50", deformable=False, mesh_topology="ico.npz")
    """
    return build_retinaface_paper(50, deformable=deformable, mesh_topology=mesh_topology)


def retinaface_paper_r152(*, deformable: bool = True, mesh_topology: ModelFile | None = None) -> RetinaFacePaper:
    """``retinaface_paper_r152``: :func:`build_retinaface_paper` with ResNet-152 (options as ``retinaface_paper_r50``).

    Example:
        >>> model = create_model("retinaface_paper_r152", deformable=False)
    """
    return build_retinaface_paper(152, deformable=deformable, mesh_topology=mesh_topology)


__all__ = [
    "RETINAFACE_MNET025_WEIGHTS",
    "RETINAFACE_PRESETS",
    "RETINAFACE_R50_WEIGHTS",
    "RetinaFace",
    "RetinaFacePaper",
    "build_retinaface_paper",
    "paper_anchor_sizes",
]
