"""Box and landmark coders: the only place where regression encodings are turned into pixels.

A coder satisfies the :class:`BoxCoder` protocol; new encodings (DSFD, SHF, ...) add a class, no
caller changes. The coders here are array-agnostic: given numpy arrays and numpy
:class:`~facescope.ops.anchors.Priors` they compute in numpy (the torch-free onnxruntime path),
given torch tensors in torch, with the same float32 operations in the same order. They return
``[N, 4]`` boxes (x1, y1, x2, y2) and ``[N, 5, 2]`` landmarks in input pixels. Importing this
module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from facescope.ops.anchors import Priors, _xp

Array = Any  # numpy.ndarray or torch.Tensor; one call never mixes the two


@runtime_checkable
class BoxCoder(Protocol):
    """Turns regressions into pixels and back, relative to a set of priors."""

    def decode_boxes(self, priors: Priors, regs: Array) -> Array:
        """``[N, 4]`` encoded boxes -> ``[N, 4]`` x1, y1, x2, y2."""
        ...

    def encode_boxes(self, priors: Priors, boxes: Array) -> Array:
        """``[N, 4]`` boxes -> ``[N, 4]`` encodings (inverse of :meth:`decode_boxes`)."""
        ...

    def decode_landmarks(self, priors: Priors, regs: Array) -> Array:
        """``[N, 10]`` encoded points -> ``[N, 5, 2]`` pixels."""
        ...

    def encode_landmarks(self, priors: Priors, points: Array) -> Array:
        """``[N, 5, 2]`` points -> ``[N, 10]`` encodings."""
        ...


@dataclass(frozen=True)
class DistanceCoder:
    """SCRFD / GFL coding: distances from the anchor centre, in units of the level stride.

    A box is ``(l, t, r, b)`` so that ``x1 = cx - l * s``, ``y1 = cy - t * s``, ``x2 = cx + r * s``,
    ``y2 = cy + b * s``; a landmark is ``(dx, dy)`` with ``x = cx + dx * s``.
    """

    def decode_boxes(self, priors: Priors, regs: Array) -> Array:
        distances = regs * priors.strides[:, None]
        return _xp(regs).concatenate([priors.centers - distances[:, :2], priors.centers + distances[:, 2:]], 1)

    def encode_boxes(self, priors: Priors, boxes: Array) -> Array:
        distances = _xp(boxes).concatenate([priors.centers - boxes[:, :2], boxes[:, 2:] - priors.centers], 1)
        return distances / priors.strides[:, None]

    def decode_landmarks(self, priors: Priors, regs: Array) -> Array:
        # (N, 10) -> (N, 5, 2)
        offsets = regs.reshape(-1, 5, 2) * priors.strides[:, None, None]
        return priors.centers[:, None, :] + offsets

    def encode_landmarks(self, priors: Priors, points: Array) -> Array:
        offsets = (points - priors.centers[:, None, :]) / priors.strides[:, None, None]
        return offsets.reshape(-1, 10)


@dataclass(frozen=True)
class DeltaCoder:
    """SSD / RetinaFace / DSFD coding with variances.

    Box deltas ``(dx, dy, dw, dh)``: centre ``c = pc + d_xy * v0 * pwh``, size
    ``wh = pwh * exp(d_wh * v1)``. Landmark deltas: ``p = pc + d * v0 * pwh``. Works for
    rectangular priors (width and height are separate).
    """

    variances: tuple[float, float] = (0.1, 0.2)

    def decode_boxes(self, priors: Priors, regs: Array) -> Array:
        xp = _xp(regs)
        centers = priors.centers + regs[:, :2] * self.variances[0] * priors.sizes
        sizes = priors.sizes * xp.exp(regs[:, 2:] * self.variances[1])
        return xp.concatenate([centers - sizes / 2, centers + sizes / 2], 1)

    def encode_boxes(self, priors: Priors, boxes: Array) -> Array:
        xp = _xp(boxes)
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = (boxes[:, 2:] - boxes[:, :2]).clip(min=1e-6)
        d_xy = (centers - priors.centers) / (self.variances[0] * priors.sizes)
        d_wh = xp.log(sizes / priors.sizes) / self.variances[1]
        return xp.concatenate([d_xy, d_wh], 1)

    def decode_landmarks(self, priors: Priors, regs: Array) -> Array:
        # (N, 10) -> (N, 5, 2)
        deltas = regs.reshape(-1, 5, 2)
        return priors.centers[:, None, :] + deltas * self.variances[0] * priors.sizes[:, None, :]

    def encode_landmarks(self, priors: Priors, points: Array) -> Array:
        deltas = (points - priors.centers[:, None, :]) / (self.variances[0] * priors.sizes[:, None, :])
        return deltas.reshape(-1, 10)
