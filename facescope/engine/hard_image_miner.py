"""SHF's hard image mining: images the detector already handles are skipped more often.

Two rules, both fed by a criterion's per-image statistics
(:data:`~facescope.losses.criteria.MIN_POSITIVE_SCORE`, :data:`~facescope.losses.criteria.NUM_POSITIVE`):

* ``"released"`` (default; ``bairdzhang/smallhardface`` @76fa1d8 with ``DISABLE_EASY_IMAGE``
  ``THRESHOLD = 0.85, PROB = 0.7, SMOOTH = true``): whenever an image is trained on, it is marked
  easy if **every** positive anchor has face probability ``>= threshold``, which holds vacuously for
  an image without positive anchors. Marks are sticky (never cleared).
* ``"wpas"`` (the paper, Sec. 3.2): the Worst Positive Anchor Score, the minimum face probability
  over the positive anchors, is the image's difficulty; the image is easy while its latest WPAS is
  ``> threshold`` and hard again when a later pass scores it ``<= threshold``. An image without
  positive anchors has no WPAS and keeps its status (every image starts hard).

When an epoch's order is built, each easy image is skipped with probability ``skip_prob`` (one
uniform draw per easy image, none for the others, as the release's ``npr.rand() < prob``). All
images are hard before the first update, so the first epoch uses every image.

The release keeps one copy of the marks per GPU process (each sees its own images). Under
data-parallel training, feed every rank the gathered statistics of the whole batch so that all
ranks hold the same marks and a resume is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from torch import Tensor

from facescope.losses.criteria import MIN_POSITIVE_SCORE
from facescope.losses.criteria import NUM_POSITIVE

STATE_VERSION = 1


class UniformSource(Protocol):
    """Anything with ``random() -> float`` in [0, 1): ``numpy.random.Generator``, ``random.Random``."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class HardImageMiningConfig:
    """Attributes:
    rule: ``"released"`` (min-over-positives >= threshold, sticky) or ``"wpas"`` (paper).
    threshold: easiness threshold on face probability (0.85).
    skip_prob: probability that an easy image is left out of an epoch (0.7).
    """

    rule: Literal["released", "wpas"] = "released"
    threshold: float = 0.85
    skip_prob: float = 0.7

    def __post_init__(self) -> None:
        if self.rule not in ("released", "wpas"):
            raise ValueError(f"hard image mining rule must be 'released' or 'wpas', got {self.rule!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"hard image mining threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.skip_prob <= 1.0:
            raise ValueError(f"hard image mining skip_prob must be in [0, 1], got {self.skip_prob}")


class HardImageMiner:
    """Easy/hard marks of ``num_images`` training images and the skip decision.

    Example:
        >>> import numpy as np, torch
        >>> miner = HardImageMiner(4)
        >>> miner.update([0, 1], {"min_positive_score": torch.tensor([0.9, 0.2])})
        >>> miner.easy_indices()
        [0]
        >>> miner.should_skip(1, np.random.default_rng(0))   # hard images are never skipped
        False
    """

    def __init__(self, num_images: int, config: HardImageMiningConfig = HardImageMiningConfig()) -> None:
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        self.num_images = int(num_images)
        self.config = config
        self._easy: set[int] = set()

    @property
    def num_easy(self) -> int:
        """How many images are marked easy now."""
        return len(self._easy)

    def is_easy(self, index: int) -> bool:
        return self._check_index(index) in self._easy

    def easy_indices(self) -> list[int]:
        """Sorted indices of the images marked easy."""
        return sorted(self._easy)

    def update(self, indices: Sequence[int] | Tensor, per_image_stats: Mapping[str, Tensor | Sequence[float]]) -> None:
        """Record the statistics of the images of one batch.

        Args:
            indices: ``B`` dataset indices of the batch's images.
            per_image_stats: ``Tensor[B]`` values; needs :data:`MIN_POSITIVE_SCORE`, and for the
                ``"wpas"`` rule also :data:`NUM_POSITIVE`. Other keys are ignored.
        """
        index_list = [self._check_index(int(i)) for i in _as_list(indices)]
        scores = _stat(per_image_stats, MIN_POSITIVE_SCORE, len(index_list))
        if self.config.rule == "released":
            for index, score in zip(index_list, scores):
                if score >= self.config.threshold:
                    self._easy.add(index)
            return
        counts = _stat(per_image_stats, NUM_POSITIVE, len(index_list))
        for index, score, count in zip(index_list, scores, counts):
            if count <= 0:
                continue  # no positive anchor: no WPAS, the mark stays
            if score > self.config.threshold:
                self._easy.add(index)
            else:
                self._easy.discard(index)

    def should_skip(self, index: int, rng: UniformSource) -> bool:
        """Whether to leave image ``index`` out of the epoch being built: easy and ``rng.random() <
        skip_prob``. Draws from ``rng`` only for easy images."""
        if self._check_index(index) not in self._easy:
            return False
        return bool(rng.random() < self.config.skip_prob)

    def filter_epoch(self, order: Iterable[int], rng: UniformSource) -> list[int]:
        """``order`` (an epoch's shuffled indices) without the skipped images, draws in ``order``."""
        return [int(i) for i in order if not self.should_skip(int(i), rng)]

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (checkpoint-safe, exact): the settings and the easy indices."""
        return {
            "version": STATE_VERSION,
            "num_images": self.num_images,
            "config": asdict(self.config),
            "easy": sorted(self._easy),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; the settings and dataset size must be the ones of this miner."""
        missing = {"version", "num_images", "config", "easy"} - set(state)
        if missing:
            raise ValueError(f"hard image miner state lacks {sorted(missing)}")
        if state["version"] != STATE_VERSION:
            raise ValueError(f"hard image miner state version {state['version']}, expected {STATE_VERSION}")
        if state["num_images"] != self.num_images:
            raise ValueError(
                f"hard image miner state is for {state['num_images']} images, this dataset has {self.num_images}"
            )
        if dict(state["config"]) != asdict(self.config):
            raise ValueError(
                f"hard image miner state has settings {dict(state['config'])}, this run {asdict(self.config)}"
            )
        self._easy = {self._check_index(int(i)) for i in state["easy"]}

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.num_images:
            raise IndexError(f"image index {index} outside the {self.num_images} training images")
        return index


def _as_list(values: Sequence[int] | Sequence[float] | Tensor) -> list:
    if isinstance(values, Tensor):
        return values.detach().cpu().reshape(-1).tolist()
    return list(values)


def _stat(stats: Mapping[str, Tensor | Sequence[float]], key: str, size: int) -> list[float]:
    if key not in stats:
        raise KeyError(f"hard image mining needs the per-image statistic '{key}'; got {sorted(stats)}")
    values = [float(v) for v in _as_list(stats[key])]
    if len(values) != size:
        raise ValueError(f"per-image statistic '{key}' has {len(values)} values for {size} images")
    if any(v != v for v in values):  # NaN: a broken forward pass must not mark images easy or hard
        raise ValueError(f"per-image statistic '{key}' contains NaN")
    return values


__all__ = ["HardImageMiner", "HardImageMiningConfig", "UniformSource"]
