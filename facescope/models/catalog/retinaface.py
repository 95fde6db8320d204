"""RetinaFace (Deng et al., CVPR 2020): the torch-free declaration of the family.

Two head layouts: the PyTorch port's (strides 8/16/32, 2 square priors per location 16/32,
64/128, 256/512) and the paper's (P2..P6, strides 4..64, 3 anchors per location
``16 * 2^(l + k/3)``); both centre anchors at ``(j + 0.5) * stride`` and use SSD delta coding with
variances (0.1, 0.2), softmax scores and 5 landmarks. Builders: :mod:`facescope.models.retinaface`.

The insightface WIDER FACE test pyramid is the test-time augmentation protocol ``retinaface`` declared
here; the port's published numbers (every preset below) are single-pass.
"""

from __future__ import annotations

from dataclasses import replace

from facescope.models.registry import register_model, register_tta_protocol
from facescope.models.spec import (
    HeadLayout,
    InferencePreset,
    InputSpec,
    PostprocessSettings,
    ResizeSpec,
    WeightSpec,
    square_anchors,
)
from facescope.models.tta_specs import REFERENCE, MergeSpec, ShortSidePyramid, TTASpec
from facescope.ops.coders import DeltaCoder

PORT_STRIDES = (8, 16, 32)
PORT_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
PAPER_STRIDES = (4, 8, 16, 32, 64)
VARIANCES = (0.1, 0.2)


def paper_anchor_sizes(base_size: float = 16.0, num_levels: int = 5, scales_per_octave: int = 3) -> tuple[tuple[float, ...], ...]:
    """Anchor sides per level: ``base * 2^(level + k / scales_per_octave)`` (paper Table 2)."""
    return tuple(
        tuple(base_size * 2 ** (level + k / scales_per_octave) for k in range(scales_per_octave))
        for level in range(num_levels)
    )


PORT_HEAD = HeadLayout(PORT_STRIDES, square_anchors(PORT_MIN_SIZES), 0.5, DeltaCoder(VARIANCES), True, "softmax")
PAPER_HEAD = HeadLayout(PAPER_STRIDES, square_anchors(paper_anchor_sizes()), 0.5, DeltaCoder(VARIANCES), True, "softmax")

# Pytorch_Retinaface feeds raw BGR pixels minus the ImageNet-Caffe mean, no std scaling, at any size.
RETINAFACE_INPUT = InputSpec(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), color="bgr", size_divisor=1)

RETINAFACE_TTA = register_tta_protocol(
    TTASpec(
        name="retinaface",
        # short side 800 / long side <= 1200 as base, [500, 800, 1100, 1400, 1700] / 800 x base: ref:514-515
        scales=ShortSidePyramid(sizes=(500, 800, 1100, 1400, 1700), base_short=800, base_max_long=1200),
        flip=True,  # ref:515
        flip_pixel_offset=1.0,  # x' = W - x - 1, ref:515
        # last singleton kept ref:500-501, loop stops at 750 ref:503, IoU 0.4 ref:505-506 and ref:516
        merge=MergeSpec("box_voting", iou=0.4, singleton="keep_last", max_detections=750),
        pass_score_threshold=0.02,  # ref:515-516 (the stride-4 decay4 belongs to the model's post-processing)
        source=f"deepinsight/insightface retinaface test_widerface.py, {REFERENCE} §4.1 and §4.2",
    )
)

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

PYTORCH_RETINAFACE_RELEASES = "https://drive.google.com/open?id=1oZRSG0ZegbVkVwUd8wUIQx8W7yfZ_ki1"
PYTORCH_RETINAFACE_LICENSE = "MIT (biubug6/Pytorch_Retinaface)"

# facescope's own ONNX export of the official checkpoint below, shipped inside the package (see
# facescope/models/embedded/SOURCE.md): the default model of `facescope detect` and Detector(),
# torch-free and offline. The published numbers are the checkpoint's (the export's outputs differ
# from PyTorch's by < 1e-4, checked in tests/models/test_embedded_model.py).
RETINAFACE_MNET025_EMBEDDED = WeightSpec(
    tag="facescope",
    url="",
    sha256="f31f0e2c83b0d65185e77bac061348615a0b6875fadb981265de1ee02428416f",
    filename="retinaface_mnet025.onnx",
    license="MIT (biubug6/Pytorch_Retinaface checkpoint, ONNX export by facescope)",
    format="onnx",
    source="facescope/models/embedded/SOURCE.md",
    input_size=None,
    preset="official",
    metrics={"widerface_val": {"easy": 90.70, "medium": 88.16, "hard": 73.82}},
    size_bytes=1_741_687,
    embedded=True,
)

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


# Peak memory of one eager CPU forward pass per input pixel (``ModelEntry.bytes_per_pixel``), measured
# with random weights, batch 1, one thread, plus a 25% margin for more threads and other allocators.
# ``*``: peak RSS minus the RSS after a 64x64 warm-up at 1024x1024 (the fixed part included);
# ``slope``: ``benchmarks/memory_per_pixel.py`` (a warm forward's growth, slope between the two sizes named).
BYTES_PER_PIXEL: dict[str, int] = {
    "retinaface_mnet025": 75,  # * 60 measured
    "retinaface_r50": 250,  # * 200 measured
    "retinaface_paper_r50": 1446,  # slope 1156.3 measured (256, 384): P2 at stride 4 and deformable context
    # not measured: retinaface_paper_r50's figure (ResNet-152 has the same stage widths and strides; its extra
    # blocks run one after another and do not raise the peak of an eager forward)
    "retinaface_paper_r152": 1446,
}


def _register(name: str, builder: str, summary: str, head: HeadLayout, weights: tuple[WeightSpec, ...] = ()) -> None:
    # The port trains with Pytorch_Retinaface's MultiBoxLoss settings, the paper models with the paper's (+ pixel term).
    register_model(
        name,
        builder=f"facescope.models.retinaface:{builder}",
        family="retinaface",
        summary=summary,
        input_spec=RETINAFACE_INPUT,
        head=head,
        presets=RETINAFACE_PRESETS,
        bytes_per_pixel=BYTES_PER_PIXEL[name],
        weights=weights,
        criterion="retinaface_paper" if head is PAPER_HEAD else "retinaface_port",
    )


_register(
    "retinaface_mnet025",
    "retinaface_mnet025",
    "RetinaFace MobileNet-0.25 (Pytorch_Retinaface): FPN 8/16/32, SSH, 2 priors/location, 5 landmarks",
    PORT_HEAD,
    (RETINAFACE_MNET025_EMBEDDED, RETINAFACE_MNET025_WEIGHTS),
)
_register(
    "retinaface_r50",
    "retinaface_r50",
    "RetinaFace ResNet-50 (Pytorch_Retinaface): FPN 8/16/32, SSH, 2 priors/location, 5 landmarks",
    PORT_HEAD,
    (RETINAFACE_R50_WEIGHTS,),
)
_register(
    "retinaface_paper_r50",
    "retinaface_paper_r50",
    "RetinaFace as in the paper, ResNet-50: P2-P6, 3 anchors/location, deformable context, shared head",
    PAPER_HEAD,
)
_register(
    "retinaface_paper_r152",
    "retinaface_paper_r152",
    "RetinaFace as in the paper, ResNet-152: P2-P6, 3 anchors/location, deformable context, shared head",
    PAPER_HEAD,
)
