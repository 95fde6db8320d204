"""SCRFD (Guo et al., ICLR 2022): the torch-free declaration of the family.

Head layout: strides 8/16/32, 2 square anchors per location (16/32, 64/128, 256/512) on grid
corners, sigmoid scores, distance box coding, optional 5 landmarks. The builders live in
:mod:`facescope.models.scrfd`.
"""

from __future__ import annotations

from facescope.models.registry import register_model
from facescope.models.spec import (
    HeadLayout,
    InferencePreset,
    InputSpec,
    PostprocessSettings,
    ResizeSpec,
    WeightSpec,
    square_anchors,
)
from facescope.ops.coders import DistanceCoder

STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
SCRFD_INPUT = InputSpec(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0), color="rgb", size_divisor=32)


def scrfd_head(has_landmarks: bool) -> HeadLayout:
    """The head layout shared by every SCRFD architecture."""
    return HeadLayout(STRIDES, square_anchors(ANCHOR_SIZES), 0.0, DistanceCoder(), has_landmarks, "sigmoid")


SCRFD_PRESETS: dict[str, InferencePreset] = {
    "default": InferencePreset(
        "longer side to 640, aspect kept, padded only to a multiple of 32 (long:640: the scale of the 640x640 "
        "letterbox without its padding), score >= 0.5, NMS 0.4; files with a fixed input size letterbox to it",
        ResizeSpec("long", (640, 640)),
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


def _insightface_onnx(pack: str, member: str, sha256: str, mirrors: tuple[str, ...], ap: tuple[float, ...]) -> WeightSpec:
    # The published WIDER FACE numbers of these files come from SCRFD's own test script
    # (tools/test_widerface.py, the 'widerface' preset); 'default' is for photos.
    return WeightSpec(
        tag="insightface",
        url=f"https://github.com/deepinsight/insightface/releases/download/v0.7/{pack}.zip",
        archive_member=member,
        sha256=sha256,
        filename=f"scrfd_{pack}_{member}",
        license=INSIGHTFACE_LICENSE,
        permissive=False,
        format="onnx",
        mirrors=mirrors,
        source=INSIGHTFACE_RELEASES,
        input_size=(640, 640),
        preset="widerface",
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


# Peak memory of one eager CPU forward pass per input pixel (``ModelEntry.bytes_per_pixel``), measured
# with random weights, batch 1, one thread, plus a 25% margin for more threads and other allocators.
# ``*``: peak RSS minus the RSS after a 64x64 warm-up at 1024x1024 (the fixed part included);
# ``slope``: ``benchmarks/memory_per_pixel.py --sizes 320 512`` (a warm forward's growth, slope between the
# two sizes; scrfd_2.5g_kps gives 65.8 there at 640/1024, below its * figure).
BYTES_PER_PIXEL: dict[str, int] = {
    "scrfd_500m": 91,  # slope 72.3 measured
    "scrfd_500m_kps": 98,  # * 78 measured
    "scrfd_1g": 170,  # slope 135.9 measured
    "scrfd_2.5g": 83,  # slope 66.1 measured
    "scrfd_2.5g_kps": 103,  # * 82 measured
    "scrfd_10g": 153,  # slope 121.9 measured
    "scrfd_10g_kps": 154,  # * 123 measured
    "scrfd_34g": 293,  # * 234 measured
    "scrfd_base_500m": 81,  # slope 64.1 measured
    "scrfd_base_2.5g": 67,  # slope 53.1 measured
    "scrfd_base_10g": 101,  # slope 80.7 measured
    "scrfd_base_34g": 228,  # slope 181.9 measured (256, 384)
    # any point of the CR space: its activations grow with the sampled widths, so the space declares the
    # figure of its 34 GF point (scrfd_34g), above every budget searched here (its defaults, 2.5 GF, need 83)
    "scrfd_cr": 293,
}


def _register(
    name: str, builder: str, summary: str, ap: tuple[float, float, float] | None, *, landmarks: bool, weights: tuple[WeightSpec, ...] = ()
) -> None:
    register_model(
        name,
        builder=f"facescope.models.scrfd:{builder}",
        family="scrfd",
        summary=summary,
        input_spec=SCRFD_INPUT,
        head=scrfd_head(landmarks),
        presets=SCRFD_PRESETS,
        bytes_per_pixel=BYTES_PER_PIXEL[name],
        weights=weights,
        paper_metrics=dict(zip(("easy", "medium", "hard"), ap)) if ap else None,
        criterion="scrfd",
    )


_register("scrfd_500m", "scrfd_500m", "SCRFD-0.5GF: MobileNetV1 backbone, GN shared depthwise head", (90.57, 88.12, 68.51), landmarks=False)
_register(
    "scrfd_500m_kps",
    "scrfd_500m_kps",
    "SCRFD-0.5GF with 5 landmarks (config scrfd_500m_bnkps: BN, per-level towers, no scales)",
    (90.97, 88.44, 69.49),
    landmarks=True,
    weights=(SCRFD_500M_KPS_WEIGHTS,),
)
_register("scrfd_1g", "scrfd_1g", "SCRFD-1GF: MobileNetV1 backbone, GN shared depthwise head", (92.38, 90.57, 74.80), landmarks=False)
_register("scrfd_2.5g", "scrfd_2_5g", "SCRFD-2.5GF: basic-block ResNetV1e, GN shared head", (93.78, 92.16, 77.87), landmarks=False)
_register(
    "scrfd_2.5g_kps",
    "scrfd_2_5g_kps",
    "SCRFD-2.5GF with 5 landmarks (config scrfd_2.5g_bnkps: BN, per-level towers)",
    (93.80, 92.02, 77.13),
    landmarks=True,
    weights=(SCRFD_2_5G_KPS_WEIGHTS,),
)
_register("scrfd_10g", "scrfd_10g", "SCRFD-10GF: basic-block ResNetV1e, 3-conv GN shared head", (95.16, 93.87, 83.05), landmarks=False)
_register(
    "scrfd_10g_kps",
    "scrfd_10g_kps",
    "SCRFD-10GF with 5 landmarks (config scrfd_10g_bnkps: BN, per-level towers)",
    (95.40, 94.01, 82.80),
    landmarks=True,
    weights=(SCRFD_10G_KPS_WEIGHTS,),
)
_register("scrfd_34g", "scrfd_34g", "SCRFD-34GF: bottleneck ResNetV1e, GN shared head", (96.06, 94.92, 85.29), landmarks=False)
# Baselines of the paper's Table 2 (configs/scrfd/base_*.py): classification backbones with the same
# neck/head design, trained with the same recipe.
_register("scrfd_base_500m", "scrfd_base_500m", "Table 2 baseline MobileNet-0.5GF (MobileNetV1 x0.25 widths)", (90.38, 87.05, 66.68), landmarks=False)
_register("scrfd_base_2.5g", "scrfd_base_2_5g", "Table 2 baseline ResNet-2.5GF (ResNet-34 layout, base width 16)", (93.21, 91.11, 74.47), landmarks=False)
_register("scrfd_base_10g", "scrfd_base_10g", "Table 2 baseline ResNet-10GF (ResNet-34 layout, base width 32)", (94.69, 92.90, 80.42), landmarks=False)
_register(
    "scrfd_base_34g",
    "scrfd_base_34g",
    "Table 2 baseline ResNet-34GF (bottleneck ResNetV1e depth 56: 3-8-4-3 blocks)",
    (95.64, 94.22, 84.02),
    landmarks=False,
)
# Any point of the computation-redistribution search space (facescope.search.scrfd_cr.space), set by
# model_args; the defaults are SCRFD-2.5GF's structure.
_register(
    "scrfd_cr",
    "scrfd_cr",
    "SCRFD computation-redistribution space: ResNetV1e + PAFPN + GN shared head, shaped by model_args",
    None,
    landmarks=False,
)
