"""SHF anchor labels on constructed images, every expected value worked out by hand.

A 64x64 image has an 8x8 grid per level (stride 8). Level 0 anchors (side 16) of row r, column c
are [8c, 8r, 8c + 16, 8r + 16]; level 1 (side 32) [8c - 8, ..., 8c + 24]; level 2 (side 64)
[8c - 24, ..., 8c + 40]. Inside the image (border 0): level 0 columns/rows 0..6 (49 anchors),
level 1 1..5 (25), level 2 only row 3, column 3 ([0, 0, 64, 64]).
"""

import math

import pytest
import torch

from facescope.assign.shf_labels import IGNORE, NEGATIVE, POSITIVE, SHFLabelConfig, anchors_inside, shf_anchor_targets
from facescope.models.shf import shf_anchor_generator
from facescope.ops.coders import DeltaCoder

HW = (64, 64)


def idx(level: int, row: int, col: int, grid: int = 8) -> int:
    return level * grid * grid + row * grid + col


@pytest.fixture(scope="module")
def priors():
    return shf_anchor_generator().priors(HW)


def targets(priors, faces, **kwargs):
    return shf_anchor_targets(priors.boxes(), torch.tensor(faces, dtype=torch.float32).reshape(-1, 4), HW, **kwargs)


def test_inside_anchors_of_a_64x64_image(priors):
    inside = anchors_inside(priors.boxes(), HW, 0.0)
    assert int(inside[:64].sum()) == 49 and int(inside[64:128].sum()) == 25 and int(inside[128:].sum()) == 1
    assert bool(inside[idx(2, 3, 3)]) and not bool(inside[idx(0, 0, 7)]) and not bool(inside[idx(1, 0, 1)])


def test_exact_match_neighbours_and_regression(priors):
    t = targets(priors, [[16, 16, 32, 32]])  # a 16-pixel face on the level-0 anchor of row 2, column 2
    assert t.labels[idx(0, 2, 2)] == POSITIVE and t.max_ious[idx(0, 2, 2)] == 1.0
    # Shifted by half a side: intersection 8x16 = 128, union 384 -> IoU 1/3, between 0.3 and 0.5.
    for r, c in ((2, 1), (2, 3), (1, 2), (3, 2)):
        assert t.labels[idx(0, r, c)] == IGNORE
        assert t.max_ious[idx(0, r, c)].item() == pytest.approx(1 / 3)
    # Diagonal neighbour: 8x8 = 64 / (512 - 64) = 1/7 -> negative.
    assert t.labels[idx(0, 1, 1)] == NEGATIVE and t.max_ious[idx(0, 1, 1)].item() == pytest.approx(1 / 7)
    # The 32-anchor covering the face: 256 / 1024 = 0.25 -> negative (faces are not forced onto anchors).
    assert t.labels[idx(1, 1, 1)] == NEGATIVE and t.max_ious[idx(1, 1, 1)].item() == pytest.approx(0.25)
    assert int(t.positive.sum()) == 1
    # Regression: IoU >= 0.3 -> the matched anchor and its four 1/3 neighbours, although 4 of them are ignored.
    expected = {idx(0, 2, 2), idx(0, 2, 1), idx(0, 2, 3), idx(0, 1, 2), idx(0, 3, 2)}
    assert set(t.regression.nonzero().flatten().tolist()) == expected
    assert t.matched_faces.tolist() == [True]
    # Faster R-CNN deltas of the left neighbour (centre (16, 24), side 16) towards the face (centre (24, 24)).
    anchor = priors.select(torch.tensor([idx(0, 2, 1)]))
    deltas = DeltaCoder((1.0, 1.0)).encode_boxes(anchor, torch.tensor([[16.0, 16.0, 32.0, 32.0]]))
    torch.testing.assert_close(deltas, torch.tensor([[0.5, 0.0, 0.0, 0.0]]))


def test_no_forced_match_for_faces_off_the_anchor_scales(priors):
    # An 8-pixel face: its best anchor [32, 32, 48, 48] overlaps it by 64 / 256 = 0.25 -> that anchor
    # stays NEGATIVE (Faster R-CNN / SSD would force it positive), the face gets no positive anchor.
    small = targets(priors, [[36, 36, 44, 44]])
    assert small.max_ious.max().item() == pytest.approx(0.25)
    assert small.labels[idx(0, 4, 4)] == NEGATIVE
    assert int(small.positive.sum()) == 0 and small.matched_faces.tolist() == [False]
    assert int(small.regression.sum()) == 0
    # A 10-pixel face: best IoU 100 / 256 = 0.39 -> its anchor is ignored but still regressed (>= 0.3).
    ten = targets(priors, [[42, 2, 52, 12]])
    best = idx(0, 0, 5)  # [40, 0, 56, 16]
    assert ten.max_ious[best].item() == pytest.approx(100 / 256)
    assert ten.labels[best] == IGNORE and bool(ten.regression[best]) and ten.matched_faces.tolist() == [False]
    deltas = DeltaCoder((1.0, 1.0)).encode_boxes(priors.select(torch.tensor([best])), torch.tensor([[42.0, 2, 52, 12]]))
    log_ratio = math.log(10 / 16)
    torch.testing.assert_close(deltas, torch.tensor([[-1 / 16, -1 / 16, log_ratio, log_ratio]]))


def test_border_anchor_is_ignored(priors):
    # Face [56, 24, 64, 40] (8x16): IoU 128 / 256 = 0.5 with both [48, 24, 64, 40] (inside) and
    # [56, 24, 72, 40], which crosses the right border by 8 pixels.
    t = targets(priors, [[56, 24, 64, 40]])
    crossing, inner = idx(0, 3, 7), idx(0, 3, 6)
    assert t.labels[inner] == POSITIVE and t.max_ious[inner].item() == pytest.approx(0.5)
    assert t.labels[crossing] == IGNORE and not bool(t.inside[crossing]) and not bool(t.regression[crossing])
    no_rule = targets(priors, [[56, 24, 64, 40]], config=SHFLabelConfig(allowed_border=None))
    assert no_rule.labels[crossing] == POSITIVE and bool(no_rule.regression[crossing])
    allowed = targets(priors, [[56, 24, 64, 40]], config=SHFLabelConfig(allowed_border=8))
    assert allowed.labels[crossing] == POSITIVE


def test_ignored_faces_and_faces_too_large_for_the_anchors():
    hw = (128, 128)
    priors = shf_anchor_generator().priors(hw)  # 16x16 grid
    face = torch.tensor([[0.0, 0.0, 128.0, 128.0]])
    # Too large: the best anchor (64) overlaps 4096 / 16384 = 0.25, so the release labels every inside
    # anchor negative, including the ones on the face.
    released = shf_anchor_targets(priors.boxes(), face, hw)
    inside = released.inside
    assert bool((released.labels[inside] == NEGATIVE).all()) and released.matched_faces.tolist() == [False]
    # Flagged as ignored: anchors lying (>= 50 %) inside it are neither positive nor negative.
    ignored = shf_anchor_targets(priors.boxes(), face, hw, gt_ignore=torch.tensor([True]))
    assert bool((ignored.labels[inside] == IGNORE).all()) and int(ignored.regression.sum()) == 0
    # An ignored face next to a valid one: the valid face keeps its positive.
    faces = torch.tensor([[16.0, 16.0, 32.0, 32.0], [96.0, 96.0, 112.0, 112.0]])
    mixed = shf_anchor_targets(priors.boxes(), faces, hw, gt_ignore=torch.tensor([False, True]))
    grid = 16
    assert mixed.labels[2 * grid + 2] == POSITIVE and mixed.gt_indices[2 * grid + 2] == 0
    assert mixed.labels[12 * grid + 12] == IGNORE  # the ignored face's exact anchor [96, 96, 112, 112]
    assert mixed.matched_faces.tolist() == [True, False]


def test_ties_go_to_the_first_face_and_no_faces_means_all_negative(priors):
    # Two faces at IoU 1/3 with the anchor [16, 16, 32, 32] from the left and from the right.
    t = targets(priors, [[8, 16, 24, 32], [24, 16, 40, 32]])
    assert t.gt_indices[idx(0, 2, 2)] == 0 and t.labels[idx(0, 2, 2)] == IGNORE
    empty = targets(priors, [])
    assert bool((empty.labels[empty.inside] == NEGATIVE).all()) and bool((empty.labels[~empty.inside] == IGNORE).all())
    assert int(empty.regression.sum()) == 0 and empty.matched_faces.numel() == 0


def test_image_smaller_than_every_anchor_uses_all_anchors():
    priors = shf_anchor_generator().priors((8, 8))  # one anchor per level, none inside
    t = shf_anchor_targets(priors.boxes(), torch.tensor([[0.0, 0.0, 16.0, 16.0]]), (8, 8))
    assert t.inside.tolist() == [True, True, True]
    assert t.labels.tolist() == [POSITIVE, NEGATIVE, NEGATIVE]  # IoU 1, 256/1024, 256/4096


def test_bad_inputs_are_rejected(priors):
    with pytest.raises(ValueError, match="gt_boxes must be"):
        shf_anchor_targets(priors.boxes(), torch.zeros(3), HW)
    with pytest.raises(ValueError, match="gt_ignore must be"):
        shf_anchor_targets(priors.boxes(), torch.zeros(2, 4), HW, gt_ignore=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="negative_iou <= positive_iou"):
        SHFLabelConfig(positive_iou=0.3, negative_iou=0.5)
