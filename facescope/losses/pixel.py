"""RetinaFace's dense regression loss (paper Eq. 3)."""

from __future__ import annotations

from torch import Tensor


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
