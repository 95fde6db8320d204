"""ATSS on a layout small enough to compute by hand (numbers in the comments)."""

import torch

from facescope.assign.atss import ATSSAssigner, atss_assign
from facescope.assign.labels import IGNORE, NEGATIVE, POSITIVE
from facescope.ops.anchors import AnchorGenerator

# Two levels on a 32x32 input: stride 8 with 16 px anchors (centres 0, 8, 16, 24),
# stride 16 with 32 px anchors (centres 0, 16). One anchor per location.
GEN = AnchorGenerator((8, 16), ((16,), (32,)))
PRIORS = GEN.priors((32, 32))
ANCHORS = PRIORS.boxes()


def assign(gt, topk=2, ignore=None):
    """Matched face per anchor, -1 for a non-positive one."""
    result = atss_assign(ANCHORS, PRIORS.num_per_level, torch.tensor(gt, dtype=torch.float32).reshape(-1, 4), topk, ignore)
    return torch.where(result.labels == POSITIVE, result.gt_indices, -1)


def test_threshold_is_mean_plus_std_of_candidates():
    # Face A = [2, 3, 18, 19], centre (10, 11).
    # Level 0 nearest centres: (8, 8) d=3.61 -> IoU 182/330 = 0.5515; (8, 16) d=5.39 -> 154/358 = 0.4302.
    # Level 1 nearest: (16, 16) d=7.81 -> 256/1024 = 0.25; (0, 16) d=11.18 -> 224/1056 = 0.2121.
    # mean 0.3610, unbiased std 0.1587 -> threshold 0.5197: only the (8, 8) anchor passes,
    # and its centre is inside A (5 px from the top edge, 5 / 16 > 0.001).
    assigned = assign([[2, 3, 18, 19]])
    assert assigned.tolist().count(0) == 1
    assert assigned[1 * 4 + 1].item() == 0  # level 0, row 1, column 1
    assert (assigned >= 0).sum() == 1


def test_centre_must_lie_inside_the_face():
    # Face C = [9, 9, 13, 14]: its candidates on level 0 are centred at x = 8 < 9, outside the
    # face, so nothing is positive even though the best IoU passes its own threshold.
    assert (assign([[9, 9, 13, 14]]) == -1).all()


def test_anchor_claimed_by_two_faces_goes_to_higher_iou():
    # Face D = [0, 0, 17, 18]: candidates (8, 8) IoU 256/306 = 0.8366, (8, 16) 0.3980, (16, 16) 0.2988,
    # (0, 16) 0.2764 -> threshold 0.4525 + 0.2615 = 0.7140: only (8, 8) passes - the same anchor A takes.
    # IoU with D (0.8366) beats IoU with A (0.5515).
    assigned = assign([[2, 3, 18, 19], [0, 0, 17, 18]])
    assert assigned[5].item() == 1 and (assigned >= 0).sum() == 1


def test_no_faces_means_all_background():
    result = ATSSAssigner(topk=2)(PRIORS, torch.zeros((0, 4)))
    assert (result.labels == NEGATIVE).all()


def test_an_ignored_face_makes_no_positive_and_ignores_the_anchors_above_its_threshold():
    # Face A (threshold 0.5197, see above) ignored: its positive anchor (8, 8) becomes IGNORE, and so
    # does every other anchor whose IoU with A reaches 0.5197 - here none (the next best is 0.4302).
    result = atss_assign(ANCHORS, PRIORS.num_per_level, torch.tensor([[2.0, 3, 18, 19]]), 2, torch.tensor([True]))
    assert result.labels.tolist().count(IGNORE) == 1 and result.labels[5].item() == IGNORE
    assert (result.labels != POSITIVE).all()


def test_a_real_face_keeps_its_positives_next_to_an_ignored_one():
    # D = [0, 0, 17, 18] is real, A ignored: D takes anchor 5 exactly as if A did not exist (A's
    # claim on it, which D won anyway, does not turn it into IGNORE: positives stay positive).
    faces = torch.tensor([[2.0, 3, 18, 19], [0, 0, 17, 18]])
    both = atss_assign(ANCHORS, PRIORS.num_per_level, faces, 2, torch.tensor([True, False]))
    alone = atss_assign(ANCHORS, PRIORS.num_per_level, faces[1:], 2)
    assert both.labels.tolist() == alone.labels.tolist()
    assert both.gt_indices[5].item() == 1 and alone.gt_indices[5].item() == 0  # indices into the full list
