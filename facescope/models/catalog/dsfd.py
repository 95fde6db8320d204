"""DSFD (Li et al., CVPR 2019): the torch-free declaration of the family.

Facts: ``/work/shared/reference/dsfd_asfd_shf_eval.md`` section 1 (and 2.6 for the release).

* Six levels, strides 4..128, one anchor per location of height:width 1.5 (``w = s / sqrt(1.5)``,
  ``h = s * sqrt(1.5)``) centred at ``((j + 0.5) s, (i + 0.5) s)``; second-shot (final, inference)
  scales 16..512, first-shot scales 8..256 (Progressive Anchor Loss: half the second's).
* SSD delta coding with variances (0.1, 0.2); 2-way softmax (background, face); no landmarks.
* Input: BGR minus (104, 117, 123), no std scaling, any size.
* ``dsfd_official`` (the released ResNet-152 network) clamps its priors to the input as the release's
  ``PriorBox(clip=True)`` does (:class:`~facescope.ops.clipped_anchors.ClippedAnchorGenerator`); the paper
  models (re-implementations, trained here) use the plain grid.

The test-time augmentation protocols of the S3FD lineage DSFD's evaluation script comes from
(``s3fd``, ``dsfd``, ``pyramidbox``) are declared here; ``dsfd`` is the ``widerface`` preset's.

Builders: :mod:`facescope.models.dsfd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from facescope.models.registry import register_model, register_tta_protocol
from facescope.models.spec import HeadLayout, InferencePreset, InputSpec, PostprocessSettings, ResizeSpec, WeightSpec
from facescope.models.tta_specs import REFERENCE, MergeSpec, ShrinkRule, TTASpec
from facescope.ops.coders import DeltaCoder

#: Strides of of1..of6 / ef1..ef6 (paper Table 1: 160..5 cells on a 640 input).
PAL_STRIDES: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
#: Second-shot anchor scales (paper Table 1 "Scale"; the release's ``min_sizes``).
SECOND_SHOT_ANCHOR_SCALES: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
#: First-shot anchor scales: "anchor size in the first shot is half of ones in the second shot".
FIRST_SHOT_ANCHOR_SCALES: tuple[int, ...] = tuple(s // 2 for s in SECOND_SHOT_ANCHOR_SCALES)
#: Anchor aspect ratio height:width = 1.5:1 ("based on face scale statistics", paper section 3.4).
ANCHOR_HEIGHT_TO_WIDTH = 1.5
#: SSD box-coding variances of both DSFD code bases.
VARIANCES = (0.1, 0.2)

Shot = Literal["first", "second"]

DSFD_INPUT = InputSpec(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), color="bgr", size_divisor=1)


def anchor_width_height(scale: float, height_to_width: float = ANCHOR_HEIGHT_TO_WIDTH) -> tuple[float, float]:
    """``(width, height)`` of an anchor of side ``scale`` and the given aspect ratio.

    The area stays ``scale**2``: ``width = scale / sqrt(r)``, ``height = scale * sqrt(r)``, the
    rule of the release's prior box (``s_k / sqrt(ar)``, ``s_k * sqrt(ar)``; reference section 1.5),
    e.g. 13.06 x 19.60 px for scale 16 and r = 1.5.
    """
    root = math.sqrt(height_to_width)
    return (scale / root, scale * root)


def pal_anchor_sizes(shot: Shot) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Per level, the ``(width, height)`` of each anchor of one shot (one anchor per location).

    Args:
        shot: ``"second"`` (enhanced maps, the inference shot: scales 16..512) or ``"first"``
            (original maps, Progressive Anchor Loss only: scales 8..256, half the second's).

    Returns:
        Six levels (strides :data:`PAL_STRIDES`), each a 1-tuple ``((w, h),)``.

    Reference: paper Table 1 and section 3.3-3.4; ``dsfd_asfd_shf_eval.md`` section 1.5.
    """
    if shot == "second":
        scales = SECOND_SHOT_ANCHOR_SCALES
    elif shot == "first":
        scales = FIRST_SHOT_ANCHOR_SCALES
    else:
        raise ValueError(f"shot must be 'first' or 'second', got {shot!r}")
    return tuple((anchor_width_height(s),) for s in scales)


@dataclass(frozen=True)
class ClippedHeadLayout(HeadLayout):
    """A :class:`HeadLayout` whose prior generator clamps anchors to the input (the release's ``clip=True``)."""

    def anchor_generator(self) -> object:
        from facescope.ops.clipped_anchors import ClippedAnchorGenerator

        return ClippedAnchorGenerator(self.strides, self.anchors, self.center_offset)


def dsfd_head(shot: Shot) -> HeadLayout:
    """The paper models' head layout of one shot (the catalogue declares the second, the inference shot)."""
    return HeadLayout(PAL_STRIDES, pal_anchor_sizes(shot), 0.5, DeltaCoder(VARIANCES), False, "softmax")


#: The release's face priors: the second-shot layout, clamped to the input.
OFFICIAL_HEAD = ClippedHeadLayout(PAL_STRIDES, pal_anchor_sizes("second"), 0.5, DeltaCoder(VARIANCES), False, "softmax")

_ORIGINAL = ResizeSpec("original", size_divisor=1)
_OFFICIAL_POST = PostprocessSettings(
    score_thresh=0.01,
    nms_thresh=0.3,
    # The SSD-style Detect runs NMS on normalised coordinates, where "+1 pixel" areas have no meaning.
    nms_pixel_offset=0.0,
    strict_score=True,  # conf > 0.01
    pre_nms_top_k=5000,
    max_detections=750,
)
S3FD_TTA = register_tta_protocol(
    TTASpec(
        name="s3fd",
        scales=ShrinkRule("s3fd"),  # ref:525, ref:530-537
        flip=True,  # det1, ref:530
        flip_pixel_offset=0.0,  # x1' = W - x2, ref:530
        # singletons dropped ref:499, first 750 ref:503, IoU 0.3 ref:505, vote(det0, det1, det_s, det_b) ref:541-542
        merge=MergeSpec("box_voting", iou=0.3, singleton="drop", max_detections=750),
        source=f"S3FD wider_test.py, {REFERENCE} §4.1 and §4.3",
    )
)
DSFD_TTA = register_tta_protocol(
    TTASpec(
        name="dsfd",
        scales=ShrinkRule("dsfd"),  # ref:526, ref:530-540
        flip=True,  # ref:530
        flip_pixel_offset=0.0,  # ref:530
        # singletons dropped ref:499, first 750 ref:503, IoU 0.3 ref:505, vote over all five groups ref:542
        merge=MergeSpec("box_voting", iou=0.3, singleton="drop", max_detections=750),
        pass_score_threshold=0.01,  # Tencent Detect conf_thresh 0.01, ref:213
        pass_top_k=5000,  # the top-5000 scores enter NMS, ref:213-214
        # Detect's NMS 0.3, ref:213. Continuous IoU (pixel offset 0): the SSD-style Detect works on
        # normalised coordinates, where "+1 pixel" has no meaning (SSD lineage; the reference is silent).
        pass_nms_iou=0.3,
        pass_nms_pixel_offset=0.0,
        source=f"Tencent/FaceDetection-DSFD widerface_val.py, {REFERENCE} §1.9, §4.1 and §4.3",
    )
)
PYRAMIDBOX_TTA = register_tta_protocol(
    TTASpec(
        name="pyramidbox",
        scales=ShrinkRule("pyramidbox"),  # ref:527-528, ref:530-540
        flip=True,  # ref:530
        flip_pixel_offset=0.0,  # ref:530
        # last singleton kept ref:500-501, first 750 ref:503, IoU 0.3 ref:505, vote over all five groups ref:542
        merge=MergeSpec("box_voting", iou=0.3, singleton="keep_last", max_detections=750),
        source=f"PaddlePaddle/models widerface_eval.py, {REFERENCE} §4.1 and §4.3",
    )
)

DSFD_PRESETS: dict[str, InferencePreset] = {
    "default": InferencePreset(
        "original image size, BGR - (104, 117, 123), score >= 0.5, NMS 0.3",
        _ORIGINAL,
        PostprocessSettings(score_thresh=0.5, nms_thresh=0.3, nms_pixel_offset=0.0),
    ),
    "official": InferencePreset(
        "Tencent DSFD Detect, single pass: original size, BGR - (104, 117, 123), score > 0.01, top 5000 scores "
        "into NMS 0.3, at most 750 faces (paper section 4.1)",
        _ORIGINAL,
        _OFFICIAL_POST,
    ),
    "widerface": InferencePreset(
        "Tencent DSFD widerface_val.py: the 'dsfd' test-time augmentation (original + flip + S3FD/DSFD "
        "multi-scale + pyramid, per pass score > 0.01, top 5000, NMS 0.3; box voting IoU 0.3, top 750)",
        _ORIGINAL,
        _OFFICIAL_POST,
        tta=DSFD_TTA.name,  # by name: the protocol is registered above
    ),
}

#: The small variant is a CPU learning-check model, not a published one: its WIDER FACE protocol is the
#: single pass (the 'dsfd' protocol runs up to ~10 passes per image, several above the original size).
DSFD_MNET025_PRESETS: dict[str, InferencePreset] = {
    **DSFD_PRESETS,
    "widerface": InferencePreset(
        "single pass at the original size (as 'official'); the multi-scale 'dsfd' protocol is "
        "available with tta='dsfd'",
        _ORIGINAL,
        _OFFICIAL_POST,
    ),
}

DSFD_RES152_WEIGHTS = WeightSpec(
    tag="official",
    # The Tencent release (Google Drive / Weiyun links in Tencent/FaceDetection-DSFD's README) cannot be
    # fetched by URL; hukkelas/DSFD-Pytorch-Inference keeps the file in Git LFS at commit 07f8d4a, whose
    # record gives the size (481,004,605 bytes) and this sha256 (reference section 2.6). Not downloaded
    # or verified in this workspace: the file is not available offline.
    url="https://github.com/hukkelas/DSFD-Pytorch-Inference/raw/07f8d4ad149c21c83f8cb3b54f6298feab0f43fa/weights/WIDERFace_DSFD_RES152.pth",
    sha256="76ea889083f2dddaa87cbaf4cff6bb70e3e34c83fb0ab8de7b2df15eaf78caf1",
    filename="dsfd_WIDERFace_DSFD_RES152.pth",
    license="Apache-2.0 (Tencent/FaceDetection-DSFD; redistributed by hukkelas/DSFD-Pytorch-Inference, Apache-2.0)",
    format="torch",
    source="https://github.com/Tencent/FaceDetection-DSFD",
    input_size=None,
    preset="widerface",
    # Paper abstract (reference section 1.10), with the multi-scale protocol.
    metrics={"widerface_val": {"easy": 96.6, "medium": 95.7, "hard": 90.4}},
    size_bytes=481_004_605,
)


# Peak memory of one eager CPU forward pass per input pixel (``ModelEntry.bytes_per_pixel``), measured
# by ``benchmarks/memory_per_pixel.py`` (random weights, batch 1, one thread: a warm forward's growth, the
# slope between the two sizes in the comment) plus its 25% margin for more threads and other allocators.
BYTES_PER_PIXEL: dict[str, int] = {
    "dsfd_vgg16": 567,  # 452.9 measured (256, 384)
    "dsfd_r50": 484,  # 386.6 measured (256, 384)
    # not measured: dsfd_r50's figure (ResNet-101/152 have the same stage widths and strides; their extra
    # blocks run one after another and do not raise the peak of an eager forward)
    "dsfd_r101": 484,
    "dsfd_r152": 484,
    "dsfd_mnet025": 129,  # 102.9 measured (320, 512)
    "dsfd_official": 605,  # 483.9 measured (256, 384)
}


def _register(
    name: str,
    summary: str,
    head: HeadLayout,
    presets: dict[str, InferencePreset] = DSFD_PRESETS,
    weights: tuple[WeightSpec, ...] = (),
) -> None:
    register_model(
        name,
        builder=f"facescope.models.dsfd:{name}",
        family="dsfd",
        summary=summary,
        input_spec=DSFD_INPUT,
        head=head,
        presets=presets,
        bytes_per_pixel=BYTES_PER_PIXEL[name],
        weights=weights,
        criterion="dsfd_pal",  # Progressive Anchor Loss: a multibox criterion per shot (one for the release)
    )


_PAPER = "FEM (product fusion + dilated branches), two shots with PAL anchors 8-256 / 16-512, strides 4-128"
_register("dsfd_vgg16", f"DSFD as in the paper, VGG-16 (L2Norm taps): {_PAPER}", dsfd_head("second"))
_register("dsfd_r50", f"DSFD as in the paper, ResNet-50: {_PAPER}", dsfd_head("second"))
_register("dsfd_r101", f"DSFD as in the paper, ResNet-101: {_PAPER}", dsfd_head("second"))
_register("dsfd_r152", f"DSFD as in the paper, ResNet-152: {_PAPER}", dsfd_head("second"))
_register(
    "dsfd_mnet025",
    f"DSFD small variant, MobileNetV1-0.25 body (Pytorch_Retinaface ImageNet weights): {_PAPER}",
    dsfd_head("second"),
    DSFD_MNET025_PRESETS,
)
_register(
    "dsfd_official",
    "DSFD released ResNet-152 (Tencent WIDERFace_DSFD_RES152.pth): product FPN, 6 FEMs, deep max-in-out heads, "
    "single (second) shot, priors clamped to the input",
    OFFICIAL_HEAD,
    weights=(DSFD_RES152_WEIGHTS,),
)
