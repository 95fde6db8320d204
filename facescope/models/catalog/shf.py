"""SHF (Zhang et al., WACV 2020, "Robust Face Detection via Learning Small Faces on Hard Images"): the
torch-free declaration of the family.

One stride-8 detection map; three head branches (one shared 3x3 conv at dilations 1, 2, 4) are three
"levels" of the layout, all at stride 8, with one square anchor each (16, 32, 64) centred at
``8 * (j + 1)`` (the Faster R-CNN anchors of the release); Faster R-CNN deltas without normalisation,
softmax scores, no landmarks. Input: raw BGR minus the Caffe means, padded bottom/right to a multiple of 16.

The test protocols are the release's (``bairdzhang/smallhardface`` @76fa1d8, written down in
``shared/reference/dsfd_asfd_shf_eval.md`` section 3.7): the WIDER FACE pyramid is the test-time
augmentation protocol ``"shf"`` declared here (:data:`SHF_TTA`); the FDDB, AFW and PASCAL presets are that
protocol with the scale sets and flip of their release configs.

No weights: the release's Caffe model is no longer downloadable, so the entries have no ``WeightSpec``;
``facescope train configs/shf_vgg16.yaml`` trains one. Builders: :mod:`facescope.models.shf`.
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
    square_anchors,
)
from facescope.models.tta_specs import REFERENCE, MergeSpec, ShortSidePyramid, TTASpec
from facescope.ops.coders import DeltaCoder

SHF_STRIDE = 8
SHF_DILATIONS = (1, 2, 4)
SHF_ANCHOR_SIZES = (16.0, 32.0, 64.0)  # one per dilation branch
# Caffe anchors are inclusive-pixel windows [8j, 8j + 15] whose Faster R-CNN centre (x1 + w / 2) is
# 8j + 8: in continuous pixels the grid starts one stride in.
SHF_ANCHOR_CENTER_OFFSET = 1.0
SHF_HEAD = HeadLayout(
    (SHF_STRIDE,) * len(SHF_ANCHOR_SIZES),
    square_anchors(tuple((size,) for size in SHF_ANCHOR_SIZES)),
    SHF_ANCHOR_CENTER_OFFSET,
    DeltaCoder((1.0, 1.0)),
    False,
    "softmax",
)
# Caffe's BGR means (``PIXEL_MEANS``), raw 0-255 pixels, no std scaling; inputs padded to /16 (MAX_RESOLUTION).
SHF_INPUT = InputSpec(mean=(102.9801, 115.9465, 122.7717), std=(1.0, 1.0, 1.0), color="bgr", size_divisor=16)

_RELEASE = "bairdzhang/smallhardface@76fa1d8"


SHF_TTA = register_tta_protocol(
    TTASpec(
        name="shf",
        # PYRAMID_BASE_SIZE [800, 1200], scales s / 800 x base for s in [100, 300, 600, 1000, 1400]: ref:473-474
        scales=ShortSidePyramid(sizes=(100, 300, 600, 1000, 1400), base_short=800, base_max_long=1200),
        flip=True,  # "flip at every scale", ref:475
        # x' = w - x in pass pixels: smallhardface lib/test.py forward_net mirrors the boxes blob
        # with ``w - boxes[:, [3, 1]]`` (the reference does not state SHF's convention).
        flip_pixel_offset=0.0,
        merge=MergeSpec("box_voting", iou=0.4, singleton="keep_last", max_detections=None),  # ref:478-480, ref:504
        pass_score_threshold=0.002,  # ref:476
        pass_top_k=10_000,  # ref:476
        # "clip to image", ref:476; the reference gives no pixel convention, so the pass image's edges
        pass_clip=True,
        union_score_threshold=0.05,  # "keep score > 0.05", ref:478
        source=f"bairdzhang/smallhardface lib/test.py, {REFERENCE} §3.7 and §4.1",
    )
)


def shf_pyramid(name: str, sizes: tuple[int, ...], flip: bool, source: str) -> TTASpec:
    """The ``"shf"`` protocol with another pyramid (short sides relative to its 800 / 1200 base) and flip."""
    scales = SHF_TTA.scales
    assert isinstance(scales, ShortSidePyramid)  # the "shf" protocol is a short-side pyramid
    return replace(SHF_TTA, name=name, scales=replace(scales, sizes=sizes), flip=flip, source=source)


SHF_FDDB_TTA = shf_pyramid("shf_fddb", (50, 190, 390), True, f"{_RELEASE} configs/smallhardface-fddb.toml")
SHF_AFW_TTA = shf_pyramid("shf_afw", (50, 100, 200, 400, 600), True, f"{_RELEASE} configs/smallhardface-afw.toml")
SHF_PASCAL_TTA = shf_pyramid("shf_pascal", (100, 300), False, f"{_RELEASE} configs/smallhardface-pascal.toml")
# The release's pyramid without its two up-scaled passes (1000, 1400), which cost ~4.6 of the ~5.3
# base-pass areas of the full pyramid (the learning check scores the small variant with it).
SHF_LIGHT_TTA = shf_pyramid(
    "shf_light", (100, 300, 600), True, f"facescope: the {_RELEASE} WIDER FACE pyramid without the passes 1000 and 1400"
)

_ORIGINAL = ResizeSpec("original", size_divisor=16)
# Per-pass candidates of the release: score >= 0.002 (the protocol's pass threshold), clip, top 10,000.
_PASS = PostprocessSettings(score_thresh=0.002, nms_thresh=0.4, nms_pixel_offset=1.0)


def _protocol_preset(description: str, tta: TTASpec | str) -> InferencePreset:
    return InferencePreset(description, _ORIGINAL, _PASS, tta)


_DEFAULT = InferencePreset(
    "single pass at the original size (padded to /16), score >= 0.5, NMS 0.4 (+1 areas)",
    _ORIGINAL,
    PostprocessSettings(score_thresh=0.5, nms_thresh=0.4, nms_pixel_offset=1.0),
)
_PROTOCOL_PRESETS = {
    "fddb": _protocol_preset("release FDDB protocol: pyramid 50/190/390 of the 800/1200 base, flips, box voting 0.4", SHF_FDDB_TTA),
    "afw": _protocol_preset("release AFW protocol: pyramid 50/100/200/400/600 of the 800/1200 base, flips, box voting 0.4", SHF_AFW_TTA),
    "pascal": _protocol_preset("release PASCAL faces protocol: pyramid 100/300 of the 800/1200 base, no flip, box voting 0.4", SHF_PASCAL_TTA),
}
# One preset set for the family (a Detector built from a model object, not a name, uses the family's).
_RELEASE_TEST = _protocol_preset(
    "release WIDER FACE protocol ('shf'): pyramid 100/300/600/1000/1400 of the 800/1200 base, flips, "
    "score > 0.05, box voting 0.4",
    SHF_TTA.name,  # by name: the protocol is registered above
)
SHF_PRESETS: dict[str, InferencePreset] = {
    "default": _DEFAULT,
    "official": _RELEASE_TEST,  # the release's lib/test.py
    "widerface": _RELEASE_TEST,
    "widerface_light": _protocol_preset(
        "the release's WIDER FACE pyramid without its up-scaled passes ('shf_light'): 100/300/600 of the "
        "800/1200 base, flips, score > 0.05, box voting 0.4 (about a quarter of the cost)",
        SHF_LIGHT_TTA,
    ),
    **_PROTOCOL_PRESETS,
}


register_model(
    "shf_vgg16",
    builder="facescope.models.shf:shf_vgg16",
    family="shf",
    summary="SHF (smallhardface) VGG16: stride-8 conv4_3+conv5_3 fusion, one 3x3 conv shared at dilations 1/2/4, "
    "anchors 16/32/64; no released weights (Caffe model gone)",
    input_spec=SHF_INPUT,
    head=SHF_HEAD,
    presets=SHF_PRESETS,
    criterion="shf",
    # peak memory of an eager CPU forward per input pixel: 533.2 measured by benchmarks/memory_per_pixel.py
    # (random weights, one thread, slope between 256 and 384) plus its 25% margin
    bytes_per_pixel=667,
    paper_metrics={"easy": 95.7, "medium": 94.9, "hard": 89.7},  # the released model, reference section 3.7
)
register_model(
    "shf_mnet025",
    builder="facescope.models.shf:shf_mnet025",
    family="shf",
    summary="SHF with a MobileNetV1-0.25 body (facescope's small variant): stride-8 fusion of the stride 8/16 "
    "maps, shared dilated head, anchors 16/32/64; no weights",
    input_spec=SHF_INPUT,
    head=SHF_HEAD,
    presets=SHF_PRESETS,
    criterion="shf",
    bytes_per_pixel=68,  # 54.2 measured as shf_vgg16's (slope between 320 and 512) plus 25%
)
