"""ASFD (Li et al., arXiv 2003.11228): the torch-free declaration of the family.

Facts: ``/work/shared/reference/dsfd_asfd_shf_eval.md`` section 2.5. What the paper leaves open is decided here
and in :mod:`facescope.models.asfd` as facescope's own choices (listed in the README's ASFD section):

* anchors, box coding, input normalisation: DSFD's (six levels, strides 4..128, one 1.5:1 anchor per
  location, second shot 16..512, first shot 8..256; SSD deltas 0.1/0.2; BGR minus (104, 117, 123));
* classification: the shared head outputs cosines, scored ``softmax(s * cos)`` with ``s`` =
  :data:`DEFAULT_CLS_SCALE` (the ``cls_scale`` model option; the DRMC loss's ``margin_scale`` must equal it);
* the scaling table :data:`ASFD_SCALES`: backbone, width, CPM cell repeats and head depth per model, chosen so
  that parameters and multiply-adds at 640x480 land within 5 % of the paper's Table 4 (:data:`PAPER_TABLE4`).

Inference (paper section 4): NMS IoU 0.3, the top 5,000 scores into NMS, 750 kept (the ``official`` preset);
``widerface`` names the paper's multi-scale test, DSFD's ``dsfd`` protocol (the paper follows DSFD's).

Builders: :mod:`facescope.models.asfd`.
"""

from __future__ import annotations

from dataclasses import dataclass

from facescope.models.catalog.dsfd import DSFD_INPUT, DSFD_PRESETS, PAL_STRIDES, VARIANCES, Shot, pal_anchor_sizes
from facescope.models.registry import register_model
from facescope.models.spec import HeadLayout, InferencePreset
from facescope.ops.coders import DeltaCoder

#: The large-margin cosine loss's default scale ``s`` (reference section 2.5 item 5: s = 30, m = 0.2).
DEFAULT_CLS_SCALE = 30.0


@dataclass(frozen=True)
class ASFDScale:
    """One row of facescope's compound scaling of ASFD (the paper does not publish its rule).

    Attributes:
        backbone: the body (:func:`facescope.models.asfd.build_backbone`).
        width: channels of every level after the lateral 1x1 (AutoFEM's and the head's width).
        cpm_repeats: how many times each level's searched CPM cell is stacked (AutoFEM's depth).
        head_depth: 3x3 convs per tower of the shared head.
        head_width: channels of the head's tower convs.
        extra_mid: channels between the two convs of each extra block (strides 64, 128).
    """

    backbone: str
    width: int
    cpm_repeats: int
    head_depth: int
    head_width: int
    extra_mid: int


#: facescope's scaling table (see the README's ASFD section for the measured parameters and GMACs).
ASFD_SCALES: dict[str, ASFDScale] = {
    "asfd_d0": ASFDScale("mobilenet_v1_0.25", 16, 1, 2, 16, 512),
    "asfd_d1": ASFDScale("mobilenet_v1_1.0", 24, 1, 2, 16, 384),
    "asfd_d2": ASFDScale("resnet18", 72, 1, 2, 96, 32),
    "asfd_d3": ASFDScale("resnet34", 96, 1, 3, 128, 32),
    "asfd_d4": ASFDScale("resnet50", 160, 2, 3, 144, 256),
    "asfd_d5": ASFDScale("resnet101", 192, 2, 4, 208, 32),
    "asfd_d6": ASFDScale("resnet152", 192, 2, 4, 224, 64),
}

#: Paper Table 4 (single-scale WIDER FACE val AP easy / medium / hard, parameters in millions, GMACs at 640x480).
PAPER_TABLE4: dict[str, dict[str, float]] = {
    "asfd_d0": {"easy": 90.1, "medium": 87.5, "hard": 74.4, "params_m": 0.62, "gmacs": 0.73},
    "asfd_d1": {"easy": 93.3, "medium": 91.7, "hard": 82.0, "params_m": 3.90, "gmacs": 4.27},
    "asfd_d2": {"easy": 95.1, "medium": 93.7, "hard": 83.6, "params_m": 13.56, "gmacs": 20.48},
    "asfd_d3": {"easy": 95.3, "medium": 94.3, "hard": 84.8, "params_m": 26.56, "gmacs": 46.32},
    "asfd_d4": {"easy": 95.6, "medium": 94.5, "hard": 85.8, "params_m": 36.76, "gmacs": 70.45},
    "asfd_d5": {"easy": 95.7, "medium": 94.7, "hard": 85.9, "params_m": 67.73, "gmacs": 147.40},
    "asfd_d6": {"easy": 95.8, "medium": 94.7, "hard": 86.0, "params_m": 86.10, "gmacs": 183.11},
}


def asfd_head(shot: Shot, cls_scale: float = DEFAULT_CLS_SCALE) -> HeadLayout:
    """One shot's layout: DSFD's PAL anchors and deltas, 2-way softmax over ``cls_scale`` x the head's cosines."""
    return HeadLayout(PAL_STRIDES, pal_anchor_sizes(shot), 0.5, DeltaCoder(VARIANCES), False, "softmax", cls_scale)


#: DSFD's presets: ``default`` (score >= 0.5, NMS 0.3), ``official`` (score > 0.01, top 5,000 into NMS 0.3,
#: 750 kept: ASFD's stated inference) and ``widerface`` (DSFD's multi-scale ``dsfd`` protocol).
ASFD_PRESETS: dict[str, InferencePreset] = {
    "default": DSFD_PRESETS["default"],
    "official": InferencePreset(
        "the paper's inference (section 4), single pass: original size, BGR - (104, 117, 123), score > 0.01, "
        "the top 5000 scores into NMS 0.3, at most 750 faces",
        DSFD_PRESETS["official"].resize,
        DSFD_PRESETS["official"].postprocess,
    ),
    "widerface": InferencePreset(
        "the paper's multi-scale test (it follows DSFD): the 'dsfd' test-time augmentation (original + flip + "
        "S3FD/DSFD multi-scale + pyramid, per pass score > 0.01, top 5000, NMS 0.3; box voting IoU 0.3, top 750)",
        DSFD_PRESETS["widerface"].resize,
        DSFD_PRESETS["widerface"].postprocess,
        tta=DSFD_PRESETS["widerface"].tta,
    ),
}

# Peak memory of one eager CPU forward per input pixel (``ModelEntry.bytes_per_pixel``), measured by
# ``benchmarks/memory_per_pixel.py`` (random weights, batch 1, one thread: a warm forward's growth, the slope
# between the two sizes in the comment) plus its 25 % margin for more threads and other allocators.
BYTES_PER_PIXEL: dict[str, int] = {
    "asfd_d0": 83,  # 65.7 measured (320, 512)
    "asfd_d1": 190,  # 151.4 measured (320, 512)
    "asfd_d2": 279,  # 223.1 measured (256, 384)
    "asfd_d3": 377,  # 301.5 measured (256, 384)
    "asfd_d4": 624,  # 498.5 measured (256, 384)
    "asfd_d5": 750,  # 599.4 measured (256, 384)
    "asfd_d6": 725,  # 579.6 measured (256, 384)
    "asfd_supernet": 1430,  # 1143.8 measured (256, 384)
}


def _register(name: str, summary: str) -> None:
    register_model(
        name,
        builder=f"facescope.models.asfd:{name}",
        family="asfd",
        summary=summary,
        input_spec=DSFD_INPUT,
        head=asfd_head("second"),
        presets=ASFD_PRESETS,
        bytes_per_pixel=BYTES_PER_PIXEL[name],
        paper_metrics={k: v for k, v in PAPER_TABLE4[name].items() if k in ("easy", "medium", "hard")} if name in PAPER_TABLE4 else None,
        criterion="drmc",  # DIoU box regression + large-margin cosine classification on both shots of the shared head
    )


for _name, _scale in ASFD_SCALES.items():
    _register(
        _name,
        f"ASFD-{_name[-2:].upper()} (facescope's scaling): {_scale.backbone} body, AutoFEM width {_scale.width} "
        f"(CPM x{_scale.cpm_repeats}), shared {_scale.head_depth}-layer cosine head on both shots, PAL anchors",
    )
_register("asfd_supernet", "ASFD's AutoFEM search network (PC-DARTS cells, one-path forward); trained by `facescope search asfd`")
