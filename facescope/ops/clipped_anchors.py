"""Anchors clamped to the input image, as the SSD-lineage ``PriorBox(clip=True)`` does (Tencent DSFD release).

The release builds its priors normalised by the input size, ``(cx / W, cy / H, w / W, h / H)``, and clamps
all four to ``[0, 1]`` (``/work/shared/reference/dsfd_asfd_shf_eval.md`` section 1.5). In input pixels that
is: centres inside ``[0, W] x [0, H]`` and no anchor wider than ``W`` or taller than ``H``. It changes only
anchors larger than the input (e.g. the 512-px anchor, 418 x 627 px, on a 640 x 480 input becomes
418 x 480) and centres past the border of a ceil-divided grid. Torch-free (numpy), like
:mod:`facescope.ops.anchors`.
"""

from __future__ import annotations

import numpy as np

from facescope.ops.anchors import AnchorGenerator, Priors


def clip_priors(priors: Priors, input_hw: tuple[int, int]) -> Priors:
    """``priors`` with centres clamped to ``[0, W] x [0, H]`` and sizes to at most ``(W, H)`` (numpy)."""
    height, width = input_hw
    limits = np.asarray([width, height], dtype=np.float32)
    centers = np.clip(priors.centers, 0.0, limits)
    sizes = np.clip(priors.sizes, 0.0, limits)
    return Priors(np.ascontiguousarray(centers), np.ascontiguousarray(sizes), priors.strides, priors.num_per_level)


class ClippedAnchorGenerator(AnchorGenerator):
    """An :class:`~facescope.ops.anchors.AnchorGenerator` whose grids are clamped to the input (``clip=True``).

    Same arguments and caching as the base class; :meth:`grid` (and so :meth:`priors`) returns
    :func:`clip_priors` of the base grid for that input size.

    Example:
        >>> gen = ClippedAnchorGenerator((128,), (((418.0, 627.0),),), 0.5)
        >>> gen.grid((480, 640)).sizes.tolist()[0]
        [418.0, 480.0]
    """

    def grid(self, input_hw: tuple[int, int]) -> Priors:
        key = (tuple(input_hw), "numpy")
        return self._cached(key, lambda: clip_priors(self._build(self.feature_sizes(input_hw)), input_hw))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(("clipped", super().__hash__()))

    def __repr__(self) -> str:
        return "Clipped" + super().__repr__()
