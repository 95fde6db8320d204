"""Box and landmark coders: the only place where regression encodings are turned into pixels.

Both coders work on :class:`~facescope.ops.anchors.Priors` and return ``Tensor[N, 4]`` boxes
(x1, y1, x2, y2) and ``Tensor[N, 5, 2]`` landmarks in input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facescope.ops.anchors import Priors


@dataclass(frozen=True)
class DistanceCoder:
    """SCRFD / GFL coding: distances from the anchor centre, in units of the level stride.

    A box is ``(l, t, r, b)`` so that ``x1 = cx - l * s``, ``y1 = cy - t * s``, ``x2 = cx + r * s``,
    ``y2 = cy + b * s``; a landmark is ``(dx, dy)`` with ``x = cx + dx * s``.
    """

    def decode_boxes(self, priors: Priors, regs: Tensor) -> Tensor:
        """``Tensor[N, 4]`` distances -> ``Tensor[N, 4]`` boxes."""
        distances = regs * priors.strides[:, None]
        return torch.cat([priors.centers - distances[:, :2], priors.centers + distances[:, 2:]], dim=1)

    def encode_boxes(self, priors: Priors, boxes: Tensor) -> Tensor:
        """``Tensor[N, 4]`` boxes -> ``Tensor[N, 4]`` distances (inverse of :meth:`decode_boxes`)."""
        distances = torch.cat([priors.centers - boxes[:, :2], boxes[:, 2:] - priors.centers], dim=1)
        return distances / priors.strides[:, None]

    def decode_landmarks(self, priors: Priors, regs: Tensor) -> Tensor:
        """``Tensor[N, 10]`` offsets -> ``Tensor[N, 5, 2]`` points."""
        # (N, 10) -> (N, 5, 2)
        offsets = regs.reshape(-1, 5, 2) * priors.strides[:, None, None]
        return priors.centers[:, None, :] + offsets

    def encode_landmarks(self, priors: Priors, points: Tensor) -> Tensor:
        """``Tensor[N, 5, 2]`` points -> ``Tensor[N, 10]`` offsets."""
        offsets = (points - priors.centers[:, None, :]) / priors.strides[:, None, None]
        return offsets.reshape(-1, 10)


@dataclass(frozen=True)
class DeltaCoder:
    """SSD / RetinaFace coding with variances.

    Box deltas ``(dx, dy, dw, dh)``: centre ``c = pc + d_xy * v0 * pwh``, size
    ``wh = pwh * exp(d_wh * v1)``. Landmark deltas: ``p = pc + d * v0 * pwh``.
    """

    variances: tuple[float, float] = (0.1, 0.2)

    def decode_boxes(self, priors: Priors, regs: Tensor) -> Tensor:
        """``Tensor[N, 4]`` deltas -> ``Tensor[N, 4]`` boxes."""
        centers = priors.centers + regs[:, :2] * self.variances[0] * priors.sizes
        sizes = priors.sizes * torch.exp(regs[:, 2:] * self.variances[1])
        return torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)

    def encode_boxes(self, priors: Priors, boxes: Tensor) -> Tensor:
        """``Tensor[N, 4]`` boxes -> ``Tensor[N, 4]`` deltas."""
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
        d_xy = (centers - priors.centers) / (self.variances[0] * priors.sizes)
        d_wh = torch.log(sizes / priors.sizes) / self.variances[1]
        return torch.cat([d_xy, d_wh], dim=1)

    def decode_landmarks(self, priors: Priors, regs: Tensor) -> Tensor:
        """``Tensor[N, 10]`` deltas -> ``Tensor[N, 5, 2]`` points."""
        # (N, 10) -> (N, 5, 2)
        deltas = regs.reshape(-1, 5, 2)
        return priors.centers[:, None, :] + deltas * self.variances[0] * priors.sizes[:, None, :]

    def encode_landmarks(self, priors: Priors, points: Tensor) -> Tensor:
        """``Tensor[N, 5, 2]`` points -> ``Tensor[N, 10]`` deltas."""
        deltas = (points - priors.centers[:, None, :]) / (self.variances[0] * priors.sizes[:, None, :])
        return deltas.reshape(-1, 10)
