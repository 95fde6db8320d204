"""Training recipes as typed dataclasses (YAML files in ``configs/`` are their file form)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from facescope.data.transforms import SR_CROP_SCALES


@dataclass
class DataConfig:
    """Training data and augmentation.

    Attributes:
        train_annotations: annotation file (see :mod:`facescope.data.records` for the formats).
        train_images: folder the image paths in the annotation file are relative to.
        format: ``scrfd`` (labelv2.txt), ``retinaface`` (label.txt), ``wider`` (official txt), ``jsonl``.
        pipeline: augmentation recipe: ``scrfd`` (square crops incl. SR, mmdet photometric) or
            ``retinaface`` (Pytorch_Retinaface: inside crops, uint8 jitter, pad, mirror, random interpolation).
        skip_missing_images: train on the images that exist (e.g. a subset), instead of failing.
        min_face_size: drop faces smaller than this (pixels) before augmentation.
        crop_scales: RandomSquareCrop scale set; SR ``[0.3 ... 2.0]`` or baseline ``[0.3 ... 1.0]``.
        clip_border: clip boxes/landmarks to the crop.
        batch_size: images per process (per GPU).
        workers: data-loading worker processes per training process.
    """

    train_annotations: str = "data/widerface/train/labelv2.txt"
    train_images: str = "data/widerface/train/images"
    format: Literal["scrfd", "retinaface", "wider", "jsonl"] = "scrfd"
    pipeline: Literal["scrfd", "retinaface"] = "scrfd"
    skip_missing_images: bool = False
    min_face_size: float = 0.0
    image_size: int = 640
    crop_scales: tuple[float, ...] = SR_CROP_SCALES
    clip_border: bool = True
    pad_value: float = 128.0
    flip_prob: float = 0.5
    photometric: bool = True
    batch_size: int = 8
    workers: int = 2


@dataclass
class OptimConfig:
    """SGD with linear warm-up (iterations) then step decay (epochs), as mmcv's ``step`` policy."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iters: int = 1500
    warmup_ratio: float = 0.001
    milestones: tuple[int, ...] = (440, 544)
    gamma: float = 0.1
    epochs: int = 640
    grad_clip: float | None = None


@dataclass
class EvalConfig:
    """Periodic WIDER FACE validation (off when ``interval`` is 0 or paths are missing)."""

    images: str | None = None
    ground_truth: str | None = None
    interval: int = 0
    preset: str = "widerface"


@dataclass
class RuntimeConfig:
    """Where and how to run.

    Attributes:
        out_dir: run folder (checkpoints, metrics.jsonl, config.yaml).
        device: ``auto`` (cuda:LOCAL_RANK when available, else cpu), ``cpu`` or ``cuda``.
        amp: mixed precision on GPU (ignored on CPU).
        max_iters: stop after this many iterations in total (budgeted runs, tests).
        freeze_bn_stats: keep BatchNorm statistics fixed (fine-tuning; exact multi-process parity).
        sync_bn: SyncBatchNorm across GPUs (CUDA only).
        checkpoint_interval: epochs between numbered checkpoints (``last.pth`` is written every epoch).
        checkpoint_every_iters: also refresh ``last.pth`` every this many iterations (0 = off).
    """

    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    log_interval: int = 20
    checkpoint_interval: int = 10
    checkpoint_every_iters: int = 0
    max_iters: int | None = None
    freeze_bn_stats: bool = False
    sync_bn: bool = False
    deterministic: bool = False


@dataclass
class TrainConfig:
    """A complete training recipe.

    Attributes:
        model: registry name.
        init_weights: whole-model weights to start from (path, release tag or ``pretrained``).
        backbone_weights: ImageNet classification checkpoint for the backbone (e.g. Pytorch_Retinaface's
            ``mobilenetV1X0.25_pretrain.tar`` or a torchvision ResNet file); the classifier is dropped.
        loss: overrides of the model's loss settings (fields of its ``loss_config`` dataclass, e.g.
            ``{box_weight: 2.0}``).
    """

    model: str
    init_weights: str | None = None
    backbone_weights: str | None = None
    loss: dict[str, float | int | bool | None] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def resolve_paths(self, data_root: str | Path | None) -> TrainConfig:
        """Prefix relative data paths with ``data_root`` (the ``--data-root`` option)."""
        if data_root is None:
            return self
        root = Path(data_root)

        def under(value: str | None) -> str | None:
            return None if value is None or Path(value).is_absolute() else str(root / value)

        self.data.train_annotations = under(self.data.train_annotations) or self.data.train_annotations
        self.data.train_images = under(self.data.train_images) or self.data.train_images
        self.eval.images = under(self.eval.images) if self.eval.images else self.eval.images
        self.eval.ground_truth = under(self.eval.ground_truth) if self.eval.ground_truth else self.eval.ground_truth
        for name in ("init_weights", "backbone_weights"):
            value = getattr(self, name)
            if value and not Path(value).is_absolute() and (root / value).exists():
                setattr(self, name, str(root / value))
        return self
