"""Dense prior grids (anchors / anchor points) for multi-level face detectors.

The grid is built once per input size in numpy (float32) and cached; torch callers get the same
values as tensors through :meth:`AnchorGenerator.priors`, numpy callers (the torch-free
onnxruntime path) through :meth:`AnchorGenerator.grid`. Importing this module does not import torch.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

# One anchor: a side (square) or a (width, height) pair, in input pixels.
AnchorShape = Union[float, tuple[float, float]]


def anchor_shape(scale: float, aspect_ratio: float = 1.0) -> tuple[float, float]:
    """``(width, height)`` of an anchor of ``scale`` and ``aspect_ratio = height / width``.

    The SSD / S3FD / DSFD convention (Tencent DSFD ``PriorBox``, see
    ``/work/shared/reference/dsfd_asfd_shf_eval.md`` section 1.5): ``w = s / sqrt(r)``,
    ``h = s * sqrt(r)``, so the area stays ``s^2``; DSFD's ratio 1.5 gives 13.06 x 19.60 px for
    ``s = 16``. ``r = 1`` is the square anchor.
    """
    if scale <= 0 or aspect_ratio <= 0:
        raise ValueError(f"anchor scale and aspect ratio must be positive, got {scale}, {aspect_ratio}")
    root = math.sqrt(aspect_ratio)
    return (scale / root, scale * root)


def _as_pair(shape: AnchorShape) -> tuple[float, float]:
    if isinstance(shape, (int, float)):
        return (float(shape), float(shape))
    width, height = shape
    return (float(width), float(height))


def _xp(array: Any) -> Any:
    """The array namespace of ``array``: numpy, or torch for a tensor (torch is then already loaded)."""
    if isinstance(array, np.ndarray):
        return np
    import torch

    return torch


@dataclass(frozen=True)
class Priors:
    """All priors of one input size, levels concatenated (level-major, then row, column, anchor).

    The arrays are all numpy (``AnchorGenerator.grid``) or all torch (``AnchorGenerator.priors``).

    Attributes:
        centers: ``[N, 2]`` anchor centres (x, y) in input pixels.
        sizes: ``[N, 2]`` anchor widths and heights in pixels.
        strides: ``[N]`` stride of the level each prior belongs to.
        num_per_level: number of priors on each level.
    """

    centers: Any
    sizes: Any
    strides: Any
    num_per_level: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    def boxes(self) -> Any:
        """``[N, 4]`` anchor boxes x1, y1, x2, y2."""
        half = self.sizes * 0.5
        return _xp(self.centers).concatenate([self.centers - half, self.centers + half], 1)

    def select(self, index: Any) -> Priors:
        """Subset by index or mask (``num_per_level`` is no longer meaningful and becomes empty)."""
        return Priors(self.centers[index], self.sizes[index], self.strides[index], ())


class AnchorGenerator:
    """Anchors tiled on every level of a feature pyramid.

    On level ``l`` with stride ``s`` the anchors of grid cell ``(i, j)`` are centred at
    ``((j + center_offset) * s, (i + center_offset) * s)`` and have the shapes ``sizes[l]``
    (anchor 0 first). A shape is a side (square anchor) or a ``(width, height)`` pair
    (see :func:`anchor_shape` for aspect ratios). SCRFD uses ``center_offset=0`` (grid corners),
    RetinaFace ``0.5``.

    Grids are cached per input size in a bounded LRU cache (numpy, plus the torch copies per
    device and dtype), so a stream of images of many sizes does not grow memory.

    Args:
        strides: stride of every level, e.g. ``(8, 16, 32)``.
        sizes: anchor shapes per level, e.g. ``((16, 32), (64, 128), (256, 512))`` or
            ``(((13.06, 19.6),), ...)``.
        center_offset: 0 (corner) or 0.5 (cell centre).
        cache_size: number of input sizes kept.

    Example:
        >>> gen = AnchorGenerator((8, 16, 32), ((16, 32), (64, 128), (256, 512)))
        >>> len(gen.grid((640, 640)))
        16800
    """

    def __init__(
        self,
        strides: Sequence[int],
        sizes: Sequence[Sequence[AnchorShape]],
        center_offset: float = 0.0,
        cache_size: int = 16,
    ) -> None:
        if len(strides) != len(sizes):
            raise ValueError(f"got {len(strides)} strides but {len(sizes)} size lists")
        self.strides = tuple(int(s) for s in strides)
        self.shapes = tuple(tuple(_as_pair(shape) for shape in level) for level in sizes)
        self.center_offset = float(center_offset)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, Priors] = OrderedDict()

    @property
    def sizes(self) -> tuple[tuple[float, ...], ...]:
        """Anchor sides per level for square anchors (the widths otherwise); see :attr:`shapes`."""
        return tuple(tuple(w for w, _ in level) for level in self.shapes)

    @property
    def num_anchors_per_level(self) -> tuple[int, ...]:
        return tuple(len(level) for level in self.shapes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AnchorGenerator):
            return NotImplemented
        return (self.strides, self.shapes, self.center_offset) == (other.strides, other.shapes, other.center_offset)

    def __hash__(self) -> int:
        return hash((self.strides, self.shapes, self.center_offset))

    def __repr__(self) -> str:
        return f"AnchorGenerator(strides={self.strides}, shapes={self.shapes}, center_offset={self.center_offset})"

    def feature_sizes(self, input_hw: tuple[int, int]) -> list[tuple[int, int]]:
        """Feature map ``(height, width)`` per level for an input of ``input_hw`` (ceil division)."""
        height, width = input_hw
        return [(math.ceil(height / s), math.ceil(width / s)) for s in self.strides]

    def num_priors_per_level(self, input_hw: tuple[int, int]) -> tuple[int, ...]:
        """Rows each level's outputs have for an input of ``input_hw``."""
        return tuple(h * w * a for (h, w), a in zip(self.feature_sizes(input_hw), self.num_anchors_per_level))

    def grid(self, input_hw: tuple[int, int]) -> Priors:
        """All priors for an input of ``input_hw = (height, width)`` pixels, as float32 numpy arrays."""
        return self._cached((tuple(input_hw), "numpy"), lambda: self._build(self.feature_sizes(input_hw)))

    def priors(self, input_hw: tuple[int, int], device: Any = "cpu", dtype: Any = None) -> Priors:
        """The :meth:`grid` as torch tensors on ``device`` in ``dtype`` (default float32)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype

        def convert() -> Priors:
            grid = self.grid(input_hw)
            as_tensor = lambda a: torch.from_numpy(a).to(device=device, dtype=dtype)  # noqa: E731
            return Priors(as_tensor(grid.centers), as_tensor(grid.sizes), as_tensor(grid.strides), grid.num_per_level)

        return self._cached((tuple(input_hw), str(device), dtype), convert)

    def priors_like(self, input_hw: tuple[int, int], array: Any) -> Priors:
        """Priors in ``array``'s kind: numpy for an ndarray, else torch on its device and dtype."""
        if isinstance(array, np.ndarray):
            return self.grid(input_hw)
        return self.priors(input_hw, array.device, array.dtype)

    def _cached(self, key: tuple, build: Any) -> Priors:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        priors = build()
        self._cache[key] = priors
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return priors

    def _build(self, feature_sizes: list[tuple[int, int]]) -> Priors:
        centers, sizes, strides, counts = [], [], [], []
        for (height, width), stride, level_shapes in zip(feature_sizes, self.strides, self.shapes):
            num_anchors = len(level_shapes)
            ys = (np.arange(height, dtype=np.float32) + np.float32(self.center_offset)) * np.float32(stride)
            xs = (np.arange(width, dtype=np.float32) + np.float32(self.center_offset)) * np.float32(stride)
            grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
            # (H, W) -> (H*W, 1, 2) -> (H*W, A, 2): every location repeated once per anchor.
            level_centers = np.broadcast_to(np.stack([grid_x, grid_y], axis=-1).reshape(-1, 1, 2), (height * width, num_anchors, 2))
            # (A, 2) -> (H*W, A, 2)
            shapes = np.asarray(level_shapes, dtype=np.float32).reshape(1, num_anchors, 2)
            level_sizes = np.broadcast_to(shapes, (height * width, num_anchors, 2))
            centers.append(level_centers.reshape(-1, 2))
            sizes.append(level_sizes.reshape(-1, 2))
            count = height * width * num_anchors
            strides.append(np.full((count,), float(stride), dtype=np.float32))
            counts.append(count)
        return Priors(
            np.ascontiguousarray(np.concatenate(centers)),
            np.ascontiguousarray(np.concatenate(sizes)),
            np.concatenate(strides),
            tuple(counts),
        )
