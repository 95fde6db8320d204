"""The steps every dense criterion shares, written once and vectorised over the batch.

* :func:`flatten_levels`: per-level head outputs -> ``[B, N, ...]`` tensors;
* :class:`FaceBatch`: the faces of the ``B`` images concatenated, so a face is one row;
* :func:`assign_batch`: run an assigner on every image -> ``[B, N]`` labels and face indices;
* :class:`Positives`: the ``P`` positive (image, prior) pairs with their face rows and priors, from
  which every regression target is gathered in one indexing operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from facescope.assign.labels import Assigner, Assignment
from facescope.ops.anchors import Priors
from facescope.structures import FaceTargets

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseOutputs


class PriorGenerator(Protocol):
    """What a criterion needs of an anchor generator."""

    def priors(self, input_hw: tuple[int, int], device: torch.device | str = ..., dtype: torch.dtype = ...) -> Priors:
        """All priors of an ``input_hw`` input, levels concatenated."""
        ...


class TargetEncoder(Protocol):
    """What a criterion needs of a box coder: pixels -> the head's encoding (and back, for box losses on
    decoded boxes)."""

    def decode_boxes(self, priors: Priors, regs: Tensor) -> Tensor:
        """``Tensor[P, 4]`` encodings -> ``Tensor[P, 4]`` boxes."""
        ...

    def encode_boxes(self, priors: Priors, boxes: Tensor) -> Tensor:
        """``Tensor[P, 4]`` boxes -> ``Tensor[P, 4]`` encodings."""
        ...

    def encode_landmarks(self, priors: Priors, points: Tensor) -> Tensor:
        """``Tensor[P, 5, 2]`` points -> ``Tensor[P, 10]`` encodings."""
        ...


@dataclass(frozen=True)
class FlatOutputs:
    """One shot's head outputs with the levels concatenated.

    Attributes:
        cls_logits: ``Tensor[B, N, C]``.
        box_regs: ``Tensor[B, N, 4]``.
        landmark_regs: ``Tensor[B, N, 10]`` or None.
    """

    cls_logits: Tensor
    box_regs: Tensor
    landmark_regs: Tensor | None


def flatten_levels(outputs: DenseOutputs) -> FlatOutputs:
    """Concatenate the per-level ``[B, N_l, K]`` tensors of one shot along the prior axis."""
    landmarks = torch.cat(outputs.landmark_regs, dim=1) if outputs.landmark_regs else None
    return FlatOutputs(torch.cat(outputs.cls_logits, dim=1), torch.cat(outputs.box_regs, dim=1), landmarks)


def check_batch(flat: FlatOutputs, priors: Priors, targets: Sequence[FaceTargets], input_hw: tuple[int, int]) -> None:
    """Fail loudly when outputs, priors and targets do not describe the same batch."""
    batch, num = flat.box_regs.shape[:2]
    if len(priors) != num:
        raise ValueError(f"{num} predictions but {len(priors)} priors for input {input_hw}")
    if len(targets) != batch:
        raise ValueError(f"{len(targets)} targets for a batch of {batch} images")


@dataclass(frozen=True)
class FaceBatch:
    """The faces of ``B`` images, concatenated (``F`` faces in all).

    Attributes:
        boxes: ``Tensor[F, 4]``.
        landmarks: ``Tensor[F, 5, 2]``.
        landmark_valid: ``Tensor[F, 5]`` bool.
        first_row: ``Tensor[B]`` row of each image's first face.
    """

    boxes: Tensor
    landmarks: Tensor
    landmark_valid: Tensor
    first_row: Tensor

    @classmethod
    def from_targets(cls, targets: Sequence[FaceTargets], device: torch.device, dtype: torch.dtype) -> FaceBatch:
        counts = torch.tensor([0] + [len(t) for t in targets[:-1]], device=device)
        return cls(
            torch.cat([t.boxes for t in targets]).to(device, dtype),
            torch.cat([t.landmarks for t in targets]).to(device, dtype),
            torch.cat([t.landmark_valid for t in targets]).to(device),
            counts.cumsum(0),
        )


def assign_batch(assigner: Assigner, priors: Priors, targets: Sequence[FaceTargets]) -> Assignment:
    """``[B, N]`` assignment: the assigner runs per image (each call is vectorised over priors and faces)."""
    device = priors.centers.device
    return Assignment.stack([assigner(priors, t.boxes.to(device), _ignore_flags(t, device)) for t in targets])


def _ignore_flags(target: FaceTargets, device: torch.device) -> Tensor | None:
    return target.ignore.to(device) if target.ignore is not None else None


@dataclass(frozen=True)
class Positives:
    """The positive anchors of a batch, in (image, prior) row-major order.

    Attributes:
        image_idxs: ``Tensor[P]`` image of each positive.
        prior_idxs: ``Tensor[P]`` its prior.
        face_rows: ``Tensor[P]`` its face's row in the :class:`FaceBatch`.
        priors: the ``P`` priors themselves.
    """

    image_idxs: Tensor
    prior_idxs: Tensor
    face_rows: Tensor
    priors: Priors

    @classmethod
    def from_assignment(cls, assignment: Assignment, priors: Priors, faces: FaceBatch) -> Positives:
        image_idxs, prior_idxs = assignment.positive.nonzero(as_tuple=True)
        face_rows = faces.first_row[image_idxs] + assignment.gt_indices[image_idxs, prior_idxs]
        return cls(image_idxs, prior_idxs, face_rows, priors.select(prior_idxs))

    def __len__(self) -> int:
        return int(self.image_idxs.shape[0])

    def take(self, batched: Tensor) -> Tensor:
        """Rows of a ``Tensor[B, N, ...]`` at the positives -> ``Tensor[P, ...]``."""
        return batched[self.image_idxs, self.prior_idxs]


def encode_landmark_targets(coder: TargetEncoder, positives: Positives, faces: FaceBatch) -> tuple[Tensor, Tensor]:
    """Encoded landmarks of the positives' faces and their per-coordinate weights.

    Unannotated points are replaced by the prior centre (encoding 0) and get weight 0.

    Returns:
        ``(Tensor[P, 10] targets, Tensor[P, 10] weights)``; weights are 1 for annotated points.
    """
    valid = faces.landmark_valid[positives.face_rows]  # [P, 5]
    centers = positives.priors.centers[:, None, :]
    points = torch.where(valid[..., None], faces.landmarks[positives.face_rows], centers)
    # (P, 5) -> (P, 10): one weight per coordinate
    return coder.encode_landmarks(positives.priors, points), valid.repeat_interleave(2, dim=1).to(points.dtype)


def min_positive_score(scores: Tensor, assignment: Assignment) -> Tensor:
    """``Tensor[B]``: the lowest face score among each image's positives; 1.0 for an image without any.

    Args:
        scores: ``Tensor[B, N]`` face probabilities.
        assignment: the ``[B, N]`` assignment.
    """
    return torch.where(assignment.positive, scores.detach(), torch.ones_like(scores)).amin(dim=1)
