"""Max-IoU assignment: hand-computed layouts for the port's and the paper's rules."""

import pytest
import torch

from facescope.assign.labels import IGNORE
from facescope.assign.max_iou import MaxIoUAssigner, assign_max_iou
from facescope.ops.anchors import Priors

# A0 equals the face; A1 overlaps it by 1/3; A2 is far away; A3 contains it (IoU 1/4).
ANCHORS = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 20, 20]])
FACE = torch.tensor([[0.0, 0, 10, 10]])
PORT = {"pos_iou": 0.35, "force_match_min_iou": 0.2, "retarget_below_floor": True}
PAPER = {"pos_iou": 0.5, "neg_iou": 0.3}


def test_port_rule_is_positive_at_035_and_negative_below():
    result = assign_max_iou(ANCHORS, FACE, **PORT)
    assert result.labels.tolist() == [1, 0, 0, 0]
    assert result.max_ious.tolist() == pytest.approx([2.0, 1 / 3, 0.0, 0.25])  # forced match marked 2, as the port
    assert result.gt_indices.tolist() == [0, 0, 0, 0]


def test_paper_rule_ignores_between_03_and_05():
    result = assign_max_iou(ANCHORS, FACE, **PAPER)
    assert result.labels.tolist() == [1, -1, 0, 0]  # A1 (IoU 1/3) is ignored, A3 (1/4) negative


def test_force_match_gives_a_small_face_its_best_anchor():
    small = torch.tensor([[0.0, 0, 5, 5]])  # IoU 0.25 with A0: below 0.35 but above the 0.2 floor
    assert assign_max_iou(ANCHORS, small, **PORT).labels.tolist() == [1, 0, 0, 0]
    assert assign_max_iou(ANCHORS, small, pos_iou=0.35).labels.tolist() == [0, 0, 0, 0]


def test_faces_below_the_floor_leave_the_image_all_background():
    tiny = torch.tensor([[0.0, 0, 4, 4]])  # best IoU 0.16 < 0.2
    result = assign_max_iou(ANCHORS, tiny, **PORT)
    assert result.labels.tolist() == [0, 0, 0, 0]


def test_port_quirk_retargets_the_best_anchor_of_a_face_below_the_floor():
    # The tiny face's best anchor is A0 (IoU 0.16). The port points A0 at it although only the
    # big face made A0 positive; without the quirk A0 keeps the big face.
    faces = torch.tensor([[0.0, 0, 10, 10], [0, 0, 4, 4]])
    quirk = assign_max_iou(ANCHORS, faces, **PORT)
    assert quirk.labels[0] == 1 and quirk.gt_indices[0] == 1
    clean = assign_max_iou(ANCHORS, faces, pos_iou=0.35, force_match_min_iou=0.2, retarget_below_floor=False)
    assert clean.labels[0] == 1 and clean.gt_indices[0] == 0


def test_two_faces_sharing_a_best_anchor_the_later_one_wins():
    faces = torch.tensor([[0.0, 0, 10, 10], [0, 0, 9, 9]])  # both best-match A0 (IoU 1.0 and 0.81)
    result = assign_max_iou(ANCHORS, faces, **PORT)
    assert result.gt_indices[0] == 1 and result.max_ious[0] == 2.0


def test_no_faces_is_all_background():
    result = assign_max_iou(ANCHORS, torch.zeros((0, 4)), **PAPER)
    assert result.labels.tolist() == [0, 0, 0, 0]


def test_an_ignored_face_makes_no_positive_and_its_overlapping_negatives_are_ignored():
    # The face over A0 is ignored: A0 (IoU 1) and A1 (1/3 >= neg_iou 0.3) become IGNORE; A3 (1/4)
    # and A2 (0) stay negative.
    result = assign_max_iou(ANCHORS, FACE, **PAPER, ignore=torch.tensor([True]))
    assert result.labels.tolist() == [IGNORE, IGNORE, 0, 0]
    # The port's single threshold 0.35: only A0 reaches it.
    assert assign_max_iou(ANCHORS, FACE, **PORT, ignore=torch.tensor([True])).labels.tolist() == [IGNORE, 0, 0, 0]


def test_a_real_face_is_matched_as_if_the_ignored_one_were_absent():
    # Real face far away over A2; the ignored face over A0. A2 is positive for face index 1.
    faces = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    result = assign_max_iou(ANCHORS, faces, **PAPER, ignore=torch.tensor([True, False]))
    assert result.labels.tolist() == [IGNORE, IGNORE, 1, 0]
    assert result.gt_indices[2].item() == 1


def test_assigner_object_reads_the_prior_boxes():
    priors = Priors(torch.tensor([[5.0, 5.0], [10.0, 5.0], [25.0, 25.0], [10.0, 10.0]]), torch.tensor([[10.0, 10.0]] * 3 + [[20.0, 20.0]]), torch.ones(4), (4,))
    result = MaxIoUAssigner(pos_iou=0.5, neg_iou=0.3)(priors, FACE)
    assert result.labels.tolist() == [1, -1, 0, 0]  # the same four anchors as ANCHORS
