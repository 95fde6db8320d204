"""SCRFD: "Sample and Computation Redistribution for Efficient Face Detection" (Guo et al., ICLR 2022).

Backbone (MobileNetV1 or ResNetV1e) -> PAFPN on strides 8/16/32 -> SCRFD head with 2 square
anchors per location (16/32, 64/128, 256/512), sigmoid classification, distance box coding and
10-value landmark coding. State dicts match the official mmdet checkpoints key for key.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from facescope.losses.scrfd import SCRFDCriterion, SCRFDLossConfig
from facescope.models.backbones import MobileNetV1, ResNetV1e
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.heads import SCRFDHead
from facescope.models.layers import BN, GN, NormSpec
from facescope.models.necks import PAFPN
from facescope.models.registry import register_model
from facescope.models.spec import InferencePreset, InputSpec, PostprocessSettings, ResizeSpec
from facescope.models.weights import WeightSpec
from facescope.ops.anchors import AnchorGenerator
from facescope.ops.coders import DistanceCoder

STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))

SCRFD_PRESETS: dict[str, InferencePreset] = {
    "default": InferencePreset(
        "letterbox to 640x640, score >= 0.5, NMS 0.4 (the insightface model_zoo pipeline)",
        ResizeSpec("letterbox", (640, 640)),
        PostprocessSettings(score_thresh=0.5, nms_thresh=0.4, nms_pixel_offset=1.0),
    ),
    "official": InferencePreset(
        "insightface model_zoo SCRFD: letterbox top-left on black 640x640, (x-127.5)/128 RGB, "
        "score >= 0.5, numpy NMS 0.4 with +1 areas",
        ResizeSpec("letterbox", (640, 640)),
        PostprocessSettings(score_thresh=0.5, nms_thresh=0.4, nms_pixel_offset=1.0),
    ),
    "widerface": InferencePreset(
        "SCRFD WIDER FACE 'VGA' test (tools/test_widerface.py mode 0): keep-ratio resize to 640, "
        "pad to 640x640 after normalisation, score 0.02, NMS 0.45",
        ResizeSpec("letterbox", (640, 640), rounding="round", scale_mode="per_axis", pad_value=127.5),
        PostprocessSettings(score_thresh=0.02, nms_thresh=0.45, nms_pixel_offset=0.0),
    ),
    "original": InferencePreset(
        "original image size padded to a multiple of 32 (test_widerface.py mode 2), score 0.02, NMS 0.45",
        ResizeSpec("original", size_divisor=32, pad_value=127.5),
        PostprocessSettings(score_thresh=0.02, nms_thresh=0.45, nms_pixel_offset=0.0),
    ),
}

INSIGHTFACE_LICENSE = "insightface model zoo: non-commercial research purposes only"
INSIGHTFACE_RELEASES = "https://github.com/deepinsight/insightface/tree/master/model_zoo"


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
    presets = SCRFD_PRESETS
    default_loss_config = SCRFDLossConfig()

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: SCRFDHead,
        anchor_generator: AnchorGenerator | None = None,
    ) -> None:
        super().__init__(
            anchor_generator or AnchorGenerator(STRIDES, ANCHOR_SIZES, center_offset=0.0),
            DistanceCoder(),
            InputSpec(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0), color="rgb", size_divisor=32),
            has_landmarks=head.use_landmarks,
        )
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = head

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` (H, W multiples of 32) -> per-level logits and regressions."""
        cls_logits, box_regs, landmark_regs = self.bbox_head(self.neck(self.backbone(images)))
        return DenseOutputs(cls_logits, box_regs, landmark_regs)

    def scores_from_logits(self, cls_logits: Tensor) -> Tensor:
        """Sigmoid of the single face logit: ``Tensor[B, N, 1] -> Tensor[B, N]``."""
        return torch.sigmoid(cls_logits[..., 0])

    def make_criterion(self, config: SCRFDLossConfig) -> SCRFDCriterion:
        """ATSS + QFL + DIoU (+ landmark smooth-L1) over this model's priors."""
        return SCRFDCriterion(self.anchor_generator, self.coder, config)


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


def _insightface_onnx(pack: str, member: str, sha256: str, mirrors: tuple[str, ...], ap: tuple[float, ...]) -> WeightSpec:
    return WeightSpec(
        tag="insightface",
        url=f"https://github.com/deepinsight/insightface/releases/download/v0.7/{pack}.zip",
        archive_member=member,
        sha256=sha256,
        filename=f"scrfd_{pack}_{member}",
        license=INSIGHTFACE_LICENSE,
        format="onnx",
        mirrors=mirrors,
        source=INSIGHTFACE_RELEASES,
        input_size=(640, 640),
        preset="official",
        metrics={"widerface_val": dict(zip(("easy", "medium", "hard"), ap))},
    )


SCRFD_500M_KPS_WEIGHTS = _insightface_onnx(
    "buffalo_sc",
    "det_500m.onnx",
    "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
    ("https://huggingface.co/deepghs/insightface/resolve/4e1f33d3fe0e50a0945f3a53ab94ae8977ae7ddb/buffalo_s/det_500m.onnx",),
    (90.97, 88.44, 69.49),
)
SCRFD_2_5G_KPS_WEIGHTS = _insightface_onnx(
    "buffalo_m",
    "det_2.5g.onnx",
    "041f73f47371333d1d17a6fee6c8ab4e6aecabefe398ff32cca4e2d5eaee0af9",
    ("https://huggingface.co/immich-app/buffalo_m/resolve/main/detection/model.onnx",),
    (93.80, 92.02, 77.13),
)
SCRFD_10G_KPS_WEIGHTS = _insightface_onnx(
    "buffalo_l",
    "det_10g.onnx",
    "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
    ("https://huggingface.co/immich-app/buffalo_l/resolve/main/detection/model.onnx",),
    (95.40, 94.01, 82.80),
)


@register_model(
    "scrfd_500m",
    family="scrfd",
    summary="SCRFD-0.5GF: MobileNetV1 backbone, GN shared depthwise head",
    paper_metrics={"easy": 90.57, "medium": 88.12, "hard": 68.51},
)
def scrfd_500m() -> SCRFD:
    return build_scrfd(_mbv1_500m(), 16, 64, 2, GN(16), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


@register_model(
    "scrfd_500m_kps",
    family="scrfd",
    summary="SCRFD-0.5GF with 5 landmarks (config scrfd_500m_bnkps: BN, per-level towers, no scales)",
    weights=(SCRFD_500M_KPS_WEIGHTS,),
    paper_metrics={"easy": 90.97, "medium": 88.44, "hard": 69.49},
)
def scrfd_500m_kps() -> SCRFD:
    return build_scrfd(_mbv1_500m(), 16, 64, 2, BN, share_towers=False, depthwise=True, use_scale=False, use_landmarks=True)


@register_model(
    "scrfd_1g",
    family="scrfd",
    summary="SCRFD-1GF: MobileNetV1 backbone, GN shared depthwise head",
    paper_metrics={"easy": 92.38, "medium": 90.57, "hard": 74.80},
)
def scrfd_1g() -> SCRFD:
    backbone = MobileNetV1((32, 48, 48, 160, 216, 312), (3, 2, 1, 5))
    return build_scrfd(backbone, 24, 96, 2, GN(8), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


@register_model(
    "scrfd_2.5g",
    family="scrfd",
    summary="SCRFD-2.5GF: basic-block ResNetV1e, GN shared head",
    paper_metrics={"easy": 93.78, "medium": 92.16, "hard": 77.87},
)
def scrfd_2_5g() -> SCRFD:
    return build_scrfd(_resnet_2_5g(), 24, 64, 2, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


@register_model(
    "scrfd_2.5g_kps",
    family="scrfd",
    summary="SCRFD-2.5GF with 5 landmarks (config scrfd_2.5g_bnkps: BN, per-level towers)",
    weights=(SCRFD_2_5G_KPS_WEIGHTS,),
    paper_metrics={"easy": 93.80, "medium": 92.02, "hard": 77.13},
)
def scrfd_2_5g_kps() -> SCRFD:
    return build_scrfd(_resnet_2_5g(), 24, 64, 2, BN, share_towers=False, depthwise=False, use_scale=True, use_landmarks=True)


@register_model(
    "scrfd_10g",
    family="scrfd",
    summary="SCRFD-10GF: basic-block ResNetV1e, 3-conv GN shared head",
    paper_metrics={"easy": 95.16, "medium": 93.87, "hard": 83.05},
)
def scrfd_10g() -> SCRFD:
    return build_scrfd(_resnet_10g(), 56, 80, 3, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


@register_model(
    "scrfd_10g_kps",
    family="scrfd",
    summary="SCRFD-10GF with 5 landmarks (config scrfd_10g_bnkps: BN, per-level towers)",
    weights=(SCRFD_10G_KPS_WEIGHTS,),
    paper_metrics={"easy": 95.40, "medium": 94.01, "hard": 82.80},
)
def scrfd_10g_kps() -> SCRFD:
    return build_scrfd(_resnet_10g(), 56, 80, 3, BN, share_towers=False, depthwise=False, use_scale=True, use_landmarks=True)


@register_model(
    "scrfd_34g",
    family="scrfd",
    summary="SCRFD-34GF: bottleneck ResNetV1e, GN shared head",
    paper_metrics={"easy": 96.06, "medium": 94.92, "hard": 85.29},
)
def scrfd_34g() -> SCRFD:
    backbone = ResNetV1e(56, "bottleneck", (17, 16, 2, 8), (56, 56, 144, 184))
    return build_scrfd(backbone, 128, 256, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


# Baselines of the paper's Table 2 (configs/scrfd/base_*.py): classification backbones with the same
# neck/head design, trained with the same recipe.


@register_model(
    "scrfd_base_500m",
    family="scrfd",
    summary="Table 2 baseline MobileNet-0.5GF (MobileNetV1 x0.25 widths)",
    paper_metrics={"easy": 90.38, "medium": 87.05, "hard": 66.68},
)
def scrfd_base_500m() -> SCRFD:
    backbone = MobileNetV1((8, 16, 32, 64, 128, 256), (2, 2, 6, 3))
    return build_scrfd(backbone, 32, 80, 2, GN(16), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


@register_model(
    "scrfd_base_2.5g",
    family="scrfd",
    summary="Table 2 baseline ResNet-2.5GF (ResNet-34 layout, base width 16)",
    paper_metrics={"easy": 93.21, "medium": 91.11, "hard": 74.47},
)
def scrfd_base_2_5g() -> SCRFD:
    backbone = ResNetV1e(16, "basic", (3, 4, 6, 3), (16, 32, 64, 128))
    return build_scrfd(backbone, 48, 96, 2, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


@register_model(
    "scrfd_base_10g",
    family="scrfd",
    summary="Table 2 baseline ResNet-10GF (ResNet-34 layout, base width 32)",
    paper_metrics={"easy": 94.69, "medium": 92.90, "hard": 80.42},
)
def scrfd_base_10g() -> SCRFD:
    backbone = ResNetV1e(32, "basic", (3, 4, 6, 3), (32, 64, 128, 256))
    return build_scrfd(backbone, 128, 160, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


@register_model(
    "scrfd_base_34g",
    family="scrfd",
    summary="Table 2 baseline ResNet-34GF (bottleneck ResNetV1e depth 56: 3-8-4-3 blocks)",
    paper_metrics={"easy": 95.64, "medium": 94.22, "hard": 84.02},
)
def scrfd_base_34g() -> SCRFD:
    backbone = ResNetV1e(64, "bottleneck", (3, 8, 4, 3), (64, 128, 256, 512))
    return build_scrfd(backbone, 128, 256, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)
