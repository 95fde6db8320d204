"""The one label convention of every assigner, and the assignment type they all return.

``POSITIVE`` anchors train the face class and the regressions, ``NEGATIVE`` anchors train the
background class, ``IGNORE`` anchors train nothing (between the IoU thresholds, or overlapping a
face marked ``ignore`` in :class:`~facescope.structures.FaceTargets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from facescope.ops.anchors import Priors

POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


@dataclass(frozen=True)
class Assignment:
    """Anchors matched to faces, for one image (``[N]``) or a batch (``[B, N]``).

    Attributes:
        labels: int64 :data:`POSITIVE` / :data:`NEGATIVE` / :data:`IGNORE`.
        gt_indices: int64 index of the matched face in the image's targets (meaningful where
            positive; 0 when the image has no faces).
        max_ious: IoU with that face (the max-IoU assigner marks forced matches 2.0, as the port).
    """

    labels: Tensor
    gt_indices: Tensor
    max_ious: Tensor

    @property
    def positive(self) -> Tensor:
        """Bool mask of the positive anchors."""
        return self.labels == POSITIVE

    @property
    def negative(self) -> Tensor:
        """Bool mask of the background anchors."""
        return self.labels == NEGATIVE

    @property
    def ignored(self) -> Tensor:
        """Bool mask of the anchors that train nothing."""
        return self.labels == IGNORE

    @staticmethod
    def stack(per_image: Sequence[Assignment]) -> Assignment:
        """``B`` assignments of ``[N]`` anchors -> one of ``[B, N]``."""
        return Assignment(
            torch.stack([a.labels for a in per_image]),
            torch.stack([a.gt_indices for a in per_image]),
            torch.stack([a.max_ious for a in per_image]),
        )

    def with_faces(self, kept: Tensor) -> Assignment:
        """Map indices into a subset of faces (``kept[j]`` = original index of face ``j``) back."""
        if kept.numel() == 0:
            return self
        return Assignment(self.labels, kept[self.gt_indices], self.max_ious)


def background(num_anchors: int, device: torch.device, dtype: torch.dtype) -> Assignment:
    """Every anchor negative (an image without faces)."""
    return Assignment(
        torch.full((num_anchors,), NEGATIVE, dtype=torch.int64, device=device),
        torch.zeros(num_anchors, dtype=torch.int64, device=device),
        torch.zeros(num_anchors, dtype=dtype, device=device),
    )


def ignore_negatives(assignment: Assignment, near_ignored_face: Tensor) -> Assignment:
    """Turn the negatives flagged in ``near_ignored_face`` (``Tensor[N]`` bool) into :data:`IGNORE`.

    Positives stay positive: an anchor that matches a real face trains on it even when it also
    overlaps an ignored one.
    """
    labels = torch.where(assignment.negative & near_ignored_face, IGNORE, assignment.labels)
    return Assignment(labels, assignment.gt_indices, assignment.max_ious)


def split_ignored(gt_boxes: Tensor, ignore: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """``(indices of the faces that train, boxes of the ignored faces)``, or ``(None, None)`` when
    no face is ignored (the common case, which then takes the plain path)."""
    if ignore is None or not bool(ignore.any()):
        return None, None
    kept = (~ignore).nonzero().squeeze(1)
    return kept, gt_boxes[ignore]


class Assigner(Protocol):
    """Matches the priors of one image to its faces."""

    def __call__(self, priors: Priors, gt_boxes: Tensor, ignore: Tensor | None = None) -> Assignment:
        """``N`` priors, ``Tensor[M, 4]`` faces and ``Tensor[M]`` bool ignore flags -> ``[N]`` assignment."""
        ...
