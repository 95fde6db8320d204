"""SCRFD: "Sample and Computation Redistribution for Efficient Face Detection" (Guo et al., ICLR 2022).

Backbone (MobileNetV1 or ResNetV1e) -> PAFPN on strides 8/16/32 -> SCRFD head with 2 square
anchors per location (16/32, 64/128, 256/512), sigmoid classification, distance box coding and
10-value landmark coding. State dicts match the official mmdet checkpoints key for key. The head layout,
presets and releases are declared in :mod:`facescope.models.catalog.scrfd`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from facescope.assign.atss import atss_assign
from facescope.losses.gfl import quality_focal_loss
from facescope.losses.iou import aligned_iou, diou_loss
from facescope.losses.landmark import weighted_smooth_l1
from facescope.losses.reduce import mean_across_ranks
from facescope.models.backbones import MobileNetV1, ResNetV1e
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.heads import SCRFDHead
from facescope.models.layers import BN, GN, NormSpec
from facescope.models.necks import PAFPN
from facescope.models.catalog.scrfd import (  # noqa: F401 - presets and releases re-exported for callers
    ANCHOR_SIZES,
    SCRFD_10G_KPS_WEIGHTS,
    SCRFD_2_5G_KPS_WEIGHTS,
    SCRFD_500M_KPS_WEIGHTS,
    SCRFD_INPUT,
    SCRFD_PRESETS,
    STRIDES,
    scrfd_head,
)
from facescope.ops.anchors import AnchorGenerator, Priors
from facescope.structures import FaceTargets

@dataclass(frozen=True)
class SCRFDLossConfig:
    """Loss settings of the official configs: ATSS top-9, QFL (beta 2), DIoU x2, landmark
    smooth-L1 (beta 1/9) x0.1."""

    atss_topk: int = 9
    qfl_beta: float = 2.0
    box_weight: float = 2.0
    landmark_weight: float = 0.1
    landmark_beta: float = 1.0 / 9.0


class SCRFD(DenseFaceDetector):
    """SCRFD detector: ``backbone -> neck -> head`` with injected components.

    Args:
        backbone: returns 4 feature maps (strides 4..32).
        neck: maps them to 3 levels (strides 8, 16, 32).
        head: :class:`SCRFDHead`.
        anchor_generator: defaults to SCRFD's 2 anchors per location.

    Example:
        >>> model = create_model("scrfd_500m_kps").eval()
        >>> out = model(torch.zeros(1, 3, 640, 640))
        >>> [t.shape[1] for t in out.cls_logits]
        [12800, 3200, 800]
    """

    family = "scrfd"

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: SCRFDHead,
        anchor_generator: AnchorGenerator | None = None,
        loss_config: SCRFDLossConfig | None = None,
    ) -> None:
        layout = scrfd_head(head.use_landmarks)  # the catalogue's declaration: one source of truth
        super().__init__(
            anchor_generator or layout.anchor_generator(),
            layout.coder,
            SCRFD_INPUT,
            has_landmarks=head.use_landmarks,
        )
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = head
        self.loss_config = loss_config or SCRFDLossConfig()

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` (H, W multiples of 32) -> per-level logits and regressions."""
        cls_logits, box_regs, landmark_regs = self.bbox_head(self.neck(self.backbone(images)))
        return DenseOutputs(cls_logits, box_regs, landmark_regs)

    def scores_from_logits(self, cls_logits: Tensor) -> Tensor:
        """Sigmoid of the single face logit: ``Tensor[B, N, 1] -> Tensor[B, N]``."""
        return torch.sigmoid(cls_logits[..., 0])

    def loss(self, outputs: DenseOutputs, targets: list[FaceTargets], input_hw: tuple[int, int]) -> dict[str, Tensor]:
        """SCRFD losses (as the official head): ATSS assignment; QFL on all priors with IoU targets,
        normalised by the positive count; DIoU on positives weighted by their detached scores and
        landmark smooth-L1 on annotated points, both normalised by the summed weights. Normalisers
        are averaged across data-parallel ranks.

        Returns:
            ``{"cls": ..., "box": ...[, "landmark": ...]}`` scalar tensors (already weighted).
        """
        cfg = self.loss_config
        logits = torch.cat(outputs.cls_logits, dim=1)[..., 0]  # [B, N]
        regs = torch.cat(outputs.box_regs, dim=1)  # [B, N, 4]
        priors = self.anchor_generator.priors(input_hw, logits.device, logits.dtype)
        assigned = torch.stack([atss_assign(priors.boxes(), priors.num_per_level, t.boxes, cfg.atss_topk) for t in targets])
        image_idxs, prior_idxs = (assigned >= 0).nonzero(as_tuple=True)
        gt_idxs = assigned[image_idxs, prior_idxs]
        positives = priors.select(prior_idxs)
        gt_boxes = _gather(targets, "boxes", image_idxs, gt_idxs)
        pred_boxes, target_boxes = _stride_unit_boxes(positives, regs[image_idxs, prior_idxs], gt_boxes)
        weights = logits[image_idxs, prior_idxs].detach().sigmoid()

        quality = torch.zeros_like(logits)
        quality[image_idxs, prior_idxs] = aligned_iou(pred_boxes.detach(), target_boxes)
        num_positive = sum(max(int((assigned[i] >= 0).sum()), 1) for i in range(len(targets)))
        cls_normaliser = mean_across_ranks(logits.new_tensor(float(num_positive))).clamp(min=1.0)
        weight_normaliser = mean_across_ranks(weights.sum()).clamp(min=1e-6)
        losses = {
            "cls": quality_focal_loss(logits, quality, cfg.qfl_beta).sum() / cls_normaliser,
            "box": cfg.box_weight * (weights * diou_loss(pred_boxes, target_boxes)).sum() / weight_normaliser,
        }
        if outputs.landmark_regs is not None:
            landmark_regs = torch.cat(outputs.landmark_regs, dim=1)[image_idxs, prior_idxs]  # [P, 10]
            landmark_targets = self.coder.encode_landmarks(positives, _gather(targets, "landmarks", image_idxs, gt_idxs))
            valid = _gather(targets, "landmark_valid", image_idxs, gt_idxs).float()  # [P, 5]
            point_weights = valid.repeat_interleave(2, dim=1) * weights[:, None]  # [P, 10]
            smooth_l1 = weighted_smooth_l1(landmark_regs, landmark_targets, point_weights, cfg.landmark_beta)
            losses["landmark"] = cfg.landmark_weight * smooth_l1 / weight_normaliser
        return losses


def _gather(targets: list[FaceTargets], field: str, image_idxs: Tensor, gt_idxs: Tensor) -> Tensor:
    """Ground-truth rows ``targets[image_idxs[k]].<field>[gt_idxs[k]]`` for every positive ``k``."""
    offsets = torch.tensor([0] + [len(t) for t in targets], device=gt_idxs.device).cumsum(0)[:-1]
    stacked = torch.cat([getattr(t, field) for t in targets], dim=0)
    return stacked[offsets[image_idxs] + gt_idxs]


def _stride_unit_boxes(priors: Priors, regs: Tensor, gt_boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted and target boxes in units of each prior's stride (where SCRFD applies its losses)."""
    strides = priors.strides[:, None]
    centers = priors.centers / strides
    pred = torch.cat([centers - regs[:, :2], centers + regs[:, 2:]], dim=1)
    return pred, gt_boxes / strides


def build_scrfd(
    backbone: nn.Module,
    neck_channels: int,
    feat_channels: int,
    stacked_convs: int,
    norm: NormSpec,
    *,
    share_towers: bool,
    depthwise: bool,
    use_scale: bool,
    use_landmarks: bool,
) -> SCRFD:
    """Wire a backbone into PAFPN and an SCRFD head (the structure all SCRFD configs share)."""
    neck = PAFPN(backbone.out_channels, neck_channels, start_level=1)
    head = SCRFDHead(
        neck_channels,
        feat_channels,
        stacked_convs,
        norm,
        STRIDES,
        share_towers=share_towers,
        depthwise=depthwise,
        use_scale=use_scale,
        use_landmarks=use_landmarks,
    )
    return SCRFD(backbone, neck, head)


def _mbv1_500m() -> MobileNetV1:
    return MobileNetV1((16, 16, 40, 72, 152, 288), (2, 3, 2, 6))


def _resnet_2_5g() -> ResNetV1e:
    return ResNetV1e(24, "basic", (3, 5, 3, 2), (24, 48, 48, 80))


def _resnet_10g() -> ResNetV1e:
    return ResNetV1e(56, "basic", (3, 4, 2, 3), (56, 88, 88, 224))


def scrfd_500m() -> SCRFD:
    return build_scrfd(_mbv1_500m(), 16, 64, 2, GN(16), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


def scrfd_500m_kps() -> SCRFD:
    return build_scrfd(_mbv1_500m(), 16, 64, 2, BN, share_towers=False, depthwise=True, use_scale=False, use_landmarks=True)


def scrfd_1g() -> SCRFD:
    backbone = MobileNetV1((32, 48, 48, 160, 216, 312), (3, 2, 1, 5))
    return build_scrfd(backbone, 24, 96, 2, GN(8), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


def scrfd_2_5g() -> SCRFD:
    return build_scrfd(_resnet_2_5g(), 24, 64, 2, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_2_5g_kps() -> SCRFD:
    return build_scrfd(_resnet_2_5g(), 24, 64, 2, BN, share_towers=False, depthwise=False, use_scale=True, use_landmarks=True)


def scrfd_10g() -> SCRFD:
    return build_scrfd(_resnet_10g(), 56, 80, 3, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_10g_kps() -> SCRFD:
    return build_scrfd(_resnet_10g(), 56, 80, 3, BN, share_towers=False, depthwise=False, use_scale=True, use_landmarks=True)


def scrfd_34g() -> SCRFD:
    backbone = ResNetV1e(56, "bottleneck", (17, 16, 2, 8), (56, 56, 144, 184))
    return build_scrfd(backbone, 128, 256, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


# Baselines of the paper's Table 2 (configs/scrfd/base_*.py), registered in facescope.models.catalog.scrfd.


def scrfd_base_500m() -> SCRFD:
    backbone = MobileNetV1((8, 16, 32, 64, 128, 256), (2, 2, 6, 3))
    return build_scrfd(backbone, 32, 80, 2, GN(16), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


def scrfd_base_2_5g() -> SCRFD:
    backbone = ResNetV1e(16, "basic", (3, 4, 6, 3), (16, 32, 64, 128))
    return build_scrfd(backbone, 48, 96, 2, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_base_10g() -> SCRFD:
    backbone = ResNetV1e(32, "basic", (3, 4, 6, 3), (32, 64, 128, 256))
    return build_scrfd(backbone, 128, 160, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_base_34g() -> SCRFD:
    backbone = ResNetV1e(64, "bottleneck", (3, 8, 4, 3), (64, 128, 256, 512))
    return build_scrfd(backbone, 128, 256, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)
