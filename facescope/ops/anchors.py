"""Dense prior grids (anchors / anchor points) for multi-level face detectors."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Priors:
    """All priors of one input size, levels concatenated (level-major, then row, column, anchor).

    Attributes:
        centers: ``Tensor[N, 2]`` anchor centres (x, y) in input pixels.
        sizes: ``Tensor[N, 2]`` anchor widths and heights in pixels.
        strides: ``Tensor[N]`` stride of the level each prior belongs to.
        num_per_level: number of priors on each level.
    """

    centers: Tensor
    sizes: Tensor
    strides: Tensor
    num_per_level: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    def boxes(self) -> Tensor:
        """``Tensor[N, 4]`` anchor boxes x1, y1, x2, y2."""
        half = self.sizes * 0.5
        return torch.cat([self.centers - half, self.centers + half], dim=1)

    def select(self, index: Tensor) -> Priors:
        """Subset by index or mask (``num_per_level`` is no longer meaningful and becomes empty)."""
        return Priors(self.centers[index], self.sizes[index], self.strides[index], ())


class AnchorGenerator:
    """Square anchors tiled on every level of a feature pyramid.

    On level ``l`` with stride ``s`` the anchors of grid cell ``(i, j)`` are centred at
    ``((j + center_offset) * s, (i + center_offset) * s)`` and have the sizes ``sizes[l]``
    (anchor 0 first). SCRFD uses ``center_offset=0`` (grid corners), RetinaFace ``0.5``.

    Grids are cached per input size in a bounded LRU cache, so a stream of images of many
    sizes does not grow memory.

    Args:
        strides: stride of every level, e.g. ``(8, 16, 32)``.
        sizes: anchor side lengths per level, e.g. ``((16, 32), (64, 128), (256, 512))``.
        center_offset: 0 (corner) or 0.5 (cell centre).
        cache_size: number of input sizes kept.

    Example:
        >>> gen = AnchorGenerator((8, 16, 32), ((16, 32), (64, 128), (256, 512)))
        >>> len(gen.priors((640, 640)))
        16800
    """

    def __init__(
        self,
        strides: Sequence[int],
        sizes: Sequence[Sequence[float]],
        center_offset: float = 0.0,
        cache_size: int = 16,
    ) -> None:
        if len(strides) != len(sizes):
            raise ValueError(f"got {len(strides)} strides but {len(sizes)} size lists")
        self.strides = tuple(int(s) for s in strides)
        self.sizes = tuple(tuple(float(v) for v in level) for level in sizes)
        self.center_offset = float(center_offset)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, Priors] = OrderedDict()

    @property
    def num_anchors_per_level(self) -> tuple[int, ...]:
        return tuple(len(level) for level in self.sizes)

    def feature_sizes(self, input_hw: tuple[int, int]) -> list[tuple[int, int]]:
        """Feature map ``(height, width)`` per level for an input of ``input_hw`` (ceil division)."""
        height, width = input_hw
        return [(math.ceil(height / s), math.ceil(width / s)) for s in self.strides]

    def priors(
        self,
        input_hw: tuple[int, int],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Priors:
        """All priors for an input of ``input_hw = (height, width)`` pixels."""
        key = (tuple(input_hw), str(device), dtype)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        priors = self._build(self.feature_sizes(input_hw), torch.device(device), dtype)
        self._cache[key] = priors
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return priors

    def _build(self, feature_sizes: list[tuple[int, int]], device: torch.device, dtype: torch.dtype) -> Priors:
        centers, sizes, strides, counts = [], [], [], []
        for (height, width), stride, level_sizes in zip(feature_sizes, self.strides, self.sizes):
            num_anchors = len(level_sizes)
            ys = (torch.arange(height, device=device, dtype=dtype) + self.center_offset) * stride
            xs = (torch.arange(width, device=device, dtype=dtype) + self.center_offset) * stride
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            # (H, W) -> (H*W, 2) -> (H*W*A, 2): every location repeated once per anchor.
            level_centers = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 1, 2).expand(-1, num_anchors, 2)
            side = torch.tensor(level_sizes, device=device, dtype=dtype)
            level_sizes_t = side.view(1, num_anchors, 1).expand(height * width, num_anchors, 2)
            centers.append(level_centers.reshape(-1, 2))
            sizes.append(level_sizes_t.reshape(-1, 2))
            count = height * width * num_anchors
            strides.append(torch.full((count,), float(stride), device=device, dtype=dtype))
            counts.append(count)
        return Priors(torch.cat(centers), torch.cat(sizes), torch.cat(strides), tuple(counts))
