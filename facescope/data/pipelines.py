"""Registered training data pipelines: augmentation recipes chosen by name (``data.pipeline``).

A pipeline turns the recipe's ``data:`` section into the per-image transforms of the training set,
and checks the settings it depends on (so a bad combination fails when the recipe is loaded, naming
the file and line). A new family registers its own pipeline; the trainer never tests names.

Example:
    >>> from facescope.data.pipelines import list_pipelines, register_pipeline
    >>> from facescope.data.transforms import scrfd_train_transforms
    >>> "scrfd" in list_pipelines()
    True
    >>> @register_pipeline("my_pipeline", summary="square crops without photometric distortion")
    ... def my_pipeline(data):
    ...     return scrfd_train_transforms(data.crop_scales, data.image_size, photometric=False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from facescope.config import require
from facescope.data.transforms import Compose, retinaface_train_transforms, scrfd_train_transforms
from facescope.named_registry import NamedRegistry


class DataConfig(Protocol):
    """The settings of the recipe's ``data:`` section a pipeline reads (structurally
    :class:`facescope.engine.config.DataConfig`; a protocol here, so that the data layer does not
    depend on the engine's recipe, which depends on this registry)."""

    pipeline: str
    image_size: int
    crop_scales: tuple[float, ...]
    clip_border: bool
    pad_value: float
    flip_prob: float
    photometric: bool


PipelineBuilder = Callable[[DataConfig], Compose]
PipelineCheck = Callable[[DataConfig], None]


@dataclass(frozen=True)
class PipelineEntry:
    """A registered pipeline.

    Attributes:
        name: the recipe's ``data.pipeline`` value.
        build: ``data config -> Compose`` of the training transforms.
        check: raises :class:`~facescope.config.FieldError` for a ``data`` field this pipeline
            cannot use (called when the recipe is built and again before the dataset is).
        summary: one line for listings and errors.
    """

    name: str
    build: PipelineBuilder
    check: PipelineCheck
    summary: str


_PIPELINES: NamedRegistry[PipelineEntry] = NamedRegistry("data pipeline")


def _no_check(data: DataConfig) -> None:
    return None


def register_pipeline(name: str, *, summary: str, check: PipelineCheck = _no_check) -> Callable[[PipelineBuilder], PipelineBuilder]:
    """Decorator registering a pipeline builder under ``name``; a duplicate name is an error."""

    return _PIPELINES.decorator(name, wrap=lambda build: PipelineEntry(name, build, check, summary))


def list_pipelines() -> list[str]:
    """Registered pipeline names, sorted."""
    return _PIPELINES.names()


def get_pipeline(name: str) -> PipelineEntry:
    """Look ``name`` up; an unknown name is a :class:`~facescope.errors.ConfigError` with the closest registered one."""
    return _PIPELINES.get(name)


def build_transforms(data: DataConfig) -> Compose:
    """The training transforms of ``data.pipeline`` for this ``data`` section (checked first)."""
    entry = get_pipeline(data.pipeline)
    entry.check(data)
    return entry.build(data)


def _check_inside_crops(data: DataConfig) -> None:
    require(
        max(data.crop_scales) <= 1,
        "crop_scales",
        f"must be <= 1 for data.pipeline '{data.pipeline}' (it crops inside the image), got {list(data.crop_scales)}",
    )


@register_pipeline("scrfd", summary="SCRFD/mmdet: square crops (incl. sample redistribution > 1), resize, flip, photometric")
def scrfd_pipeline(data: DataConfig) -> Compose:
    """insightface SCRFD's training augmentation (:func:`~facescope.data.transforms.scrfd_train_transforms`)."""
    return scrfd_train_transforms(data.crop_scales, data.image_size, data.clip_border, data.pad_value, data.flip_prob, data.photometric)


@register_pipeline(
    "retinaface",
    summary="Pytorch_Retinaface: inside square crops, uint8 colour jitter, pad, mirror, random interpolation",
    check=_check_inside_crops,
)
def retinaface_pipeline(data: DataConfig) -> Compose:
    """Pytorch_Retinaface's training augmentation (:func:`~facescope.data.transforms.retinaface_train_transforms`)."""
    return retinaface_train_transforms(data.image_size, data.crop_scales, data.flip_prob, data.photometric)


# SHF's release trains with short sides {400, 800, 1200} and long sides <= 2000: data.image_size is the
# largest short side and the others keep their ratios to it (image_size 1200 is the release).
SHF_SHORT_SIDE_RATIOS = (1 / 3, 2 / 3, 1.0)
SHF_LONG_SIDE_RATIO = 2000 / 1200


def shf_short_sides(image_size: int) -> tuple[tuple[int, ...], int]:
    """``(short sides, long-side cap)`` of the ``shf`` pipeline for ``data.image_size``."""
    sides = tuple(max(16, round(image_size * r)) for r in SHF_SHORT_SIDE_RATIOS)
    return sides, round(image_size * SHF_LONG_SIDE_RATIO)


@register_pipeline(
    "shf",
    summary="SHF (smallhardface): photometric, random crop (p 0.5, 0.6-1.0 per side), flip, short side from "
    "{1/3, 2/3, 1} x image_size (1200: the release's {400, 800, 1200}), long side <= 5/3 x image_size, cut to /16",
)
def shf_pipeline(data: DataConfig) -> Compose:
    """SHF's training augmentation (:func:`~facescope.data.shf_transforms.shf_train_transforms`)."""
    from facescope.data.shf_transforms import shf_train_transforms

    sides, long_cap = shf_short_sides(data.image_size)
    return shf_train_transforms(sides, long_cap, data.flip_prob, data.photometric)


@register_pipeline(
    "dsfd",
    summary="DSFD IAM: data-anchor-sampling (2/5) or SSD square crops (3/5), resize, flip, photometric",
)
def dsfd_pipeline(data: DataConfig) -> Compose:
    """DSFD's training augmentation (:func:`~facescope.data.dsfd_augment.dsfd_train_transforms`);
    ``crop_scales``, ``clip_border`` and ``pad_value`` do not apply (the crop modes are the release's)."""
    from facescope.data.dsfd_augment import dsfd_train_transforms

    return dsfd_train_transforms(data.image_size, data.flip_prob, data.photometric)
