"""RetinaFace's dense regression loss (paper Eq. 3) and the criterion term that applies it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from facescope.losses.targets import FaceBatch, Positives
    from facescope.models.base import DenseOutputs


def pixel_l1_loss(rendered: Tensor, target: Tensor) -> Tensor:
    """``1 / (W H) * sum_ij || R_ij - I*_ij ||_1``, averaged over the ``K`` anchor crops.

    Args:
        rendered: ``Tensor[K, C, H, W]`` renderings of the predicted faces.
        target: ``Tensor[K, C, H, W]`` the anchor crops of the input image.

    Returns:
        Scalar; 0 (attached to ``rendered``'s graph) when ``K == 0``.
    """
    if rendered.shape != target.shape:
        raise ValueError(f"rendered {list(rendered.shape)} and target {list(target.shape)} differ")
    if rendered.shape[0] == 0:
        return rendered.sum() * 0.0
    num_crops, _, height, width = rendered.shape
    # L1 norm over channels, summed over pixels, normalised by W*H, averaged over crops.
    return (rendered - target).abs().sum() / (num_crops * height * width)


class DenseRenderer(Protocol):
    """What the pixel loss needs of a model's dense-regression branch."""

    def render_and_crop(self, images: Tensor, batch_index: Tensor, boxes: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(Tensor[K, C, S, S] renderings of params, Tensor[K, C, S, S] the boxes' crops of images)``."""
        ...


class PixelLoss:
    """RetinaFace's dense pixel loss as a criterion term: renders the mesh predicted at (a random
    subset of) the positive anchors and compares it with the crops of their matched faces.

    Reads ``outputs.extras["dense_params"]`` (per level ``[B, N_l, P]``) and
    ``outputs.extras["images"]`` (the ``[B, 3, H, W]`` input) from the model's forward.

    Args:
        branch: the model's dense-regression branch (renderer).
        weight: the term's weight (0.01 in the paper).
        max_anchors: positives rendered per batch.
    """

    def __init__(self, branch: DenseRenderer, weight: float, max_anchors: int) -> None:
        self.branch = branch
        self.weight = weight
        self.max_anchors = max_anchors

    def __call__(self, outputs: DenseOutputs, positives: Positives, faces: FaceBatch) -> dict[str, Tensor]:
        if "dense_params" not in outputs.extras or "images" not in outputs.extras:
            raise ValueError("the pixel loss needs 'dense_params' and 'images' in the outputs' extras")
        params = torch.cat(outputs.extras["dense_params"], dim=1)  # [B, N, P]
        images = outputs.extras["images"]
        picked = torch.arange(len(positives), device=positives.image_idxs.device)
        if len(positives) > self.max_anchors:  # render a random subset of the positives
            picked = torch.randperm(len(positives), device=picked.device)[: self.max_anchors]
        image_idxs, prior_idxs = positives.image_idxs[picked], positives.prior_idxs[picked]
        boxes = faces.boxes[positives.face_rows[picked]].to(images.dtype)  # the matched faces: the crops to reproduce
        pixel = pixel_l1_loss(*self.branch.render_and_crop(images, image_idxs, boxes, params[image_idxs, prior_idxs]))
        return {"pixel": self.weight * pixel}
