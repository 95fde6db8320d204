"""FaceTargets: the per-face ignore flag."""

import pytest
import torch

from facescope.structures import FaceTargets


def test_ignore_defaults_to_all_false_and_travels_with_to():
    faces = FaceTargets(torch.zeros(2, 4), torch.zeros(2, 5, 2), torch.ones(2, 5, dtype=torch.bool))
    assert faces.ignore is not None and faces.ignore.tolist() == [False, False]
    flagged = FaceTargets.from_boxes(torch.zeros(2, 4), ignore=torch.tensor([True, False]))
    assert flagged.to("cpu").ignore.tolist() == [True, False]


def test_ignore_must_be_one_bool_per_face():
    with pytest.raises(ValueError, match=r"ignore must have shape \[2\], got \[3\]"):
        FaceTargets.from_boxes(torch.zeros(2, 4), ignore=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="ignore must be a bool tensor"):
        FaceTargets.from_boxes(torch.zeros(2, 4), ignore=torch.zeros(2))
