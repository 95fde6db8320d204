"""Training recipes as typed dataclasses (YAML files in ``configs/`` are their file form)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from facescope.config import FieldError, require
from facescope.errors import ConfigError, suggest
from facescope.data.transforms import SR_CROP_SCALES
from facescope.engine.param_groups import OptimizerName, ParamRule

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass
class DataConfig:
    """Training data and augmentation.

    Attributes:
        train_annotations: annotation file (see :mod:`facescope.data.records` for the formats).
        train_images: folder the image paths in the annotation file are relative to.
        format: ``scrfd`` (labelv2.txt), ``retinaface`` (label.txt), ``wider`` (official txt), ``jsonl``.
        pipeline: augmentation recipe, a name registered in :mod:`facescope.data.pipelines`: ``scrfd``
            (square crops incl. SR, mmdet photometric), ``retinaface`` (Pytorch_Retinaface: inside
            crops, uint8 jitter, pad, mirror, random interpolation), ``dsfd`` (IAM data-anchor-sampling)
            or ``shf`` (smallhardface multi-scale: photometric, crop, short side from 3 scales).
        skip_missing_images: train on the images that exist (e.g. a subset), instead of failing.
        min_face_size: drop faces smaller than this (pixels) before augmentation.
        crop_scales: RandomSquareCrop scale set; SR ``[0.3 ... 2.0]`` or baseline ``[0.3 ... 1.0]``.
        clip_border: clip boxes/landmarks to the crop.
        batch_size: images per process (per GPU).
        workers: data-loading worker processes per training process.
        sampler: which images each step sees, a name registered in :mod:`facescope.engine.samplers`
            (``sharded``: a seeded shuffle per epoch; ``hard_image_mining``: SHF's, skipping easy images).
        sampler_options: settings of that sampler (fields of its options dataclass).
    """

    train_annotations: str = "data/widerface/train/labelv2.txt"
    train_images: str = "data/widerface/train/images"
    format: Literal["scrfd", "retinaface", "wider", "jsonl"] = "scrfd"
    pipeline: str = "scrfd"
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
    sampler: str = "sharded"
    sampler_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from facescope.data.pipelines import get_pipeline, list_pipelines
        from facescope.engine.samplers import list_samplers, sampler_options

        require(self.image_size >= 1, "image_size", f"must be a positive number of pixels, got {self.image_size}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.workers >= 0, "workers", f"must be >= 0, got {self.workers}")
        require(self.min_face_size >= 0, "min_face_size", f"must be >= 0, got {self.min_face_size}")
        require(0.0 <= self.flip_prob <= 1.0, "flip_prob", f"must be in [0, 1], got {self.flip_prob}")
        require(len(self.crop_scales) > 0, "crop_scales", "must not be empty")
        require(min(self.crop_scales) > 0, "crop_scales", f"must all be > 0, got {list(self.crop_scales)}")
        _require_registered(self.pipeline, list_pipelines(), "pipeline")
        get_pipeline(self.pipeline).check(self)
        _require_registered(self.sampler, list_samplers(), "sampler")
        _options_fit(lambda: sampler_options(self.sampler, self.sampler_options), "sampler_options", f"sampler '{self.sampler}'")


def _require_registered(name: str, registered: list[str], field_name: str) -> None:
    require(name in registered, field_name, f"must be one of {registered} (registered names), got '{name}'{suggest(name, registered)}")


def _options_fit(check: Callable[[], Any], field_name: str, owner: str) -> None:
    """Run ``check`` (typed options of a registered thing); its error becomes one about ``field_name``."""
    try:
        check()
    except FieldError:
        raise
    except ConfigError as exc:
        raise FieldError(field_name, f"do not fit {owner}: {exc}") from None


@dataclass
class OptimConfig:
    """Optimizers with linear warm-up (iterations) then step decay (epochs), as mmcv's ``step`` policy,
    and the step strategy that decides what one iteration does.

    Attributes:
        optimizer: the optimizer of parameters no rule gives another: ``sgd`` (``momentum``), ``adam``
            or ``adamw`` (``betas``, ``eps``); ``weight_decay`` is L2 for sgd/adam, decoupled for adamw.
        param_groups: :class:`~facescope.engine.param_groups.ParamRule` list: parameters matched by a
            rule's pattern are frozen or get their own learning-rate / weight-decay multipliers, optimizer,
            fixed learning rate, betas and parameter set (the first matching rule wins; unmatched
            parameters use ``optimizer``, ``lr`` and ``weight_decay`` as they are, in the ``network`` set).
        step_strategy: what one iteration does, a name registered in :mod:`facescope.engine.steps`:
            ``standard`` (one batch, every optimizer steps) or ``bilevel`` (the ``architecture`` set on a
            batch of one half of the data, then the ``network`` set on a batch of the other half).
        step_options: settings of that strategy (fields of its options dataclass), e.g.
            ``{architecture_fraction: 0.5}`` for ``bilevel``.
    """

    optimizer: OptimizerName = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iters: int = 1500
    warmup_ratio: float = 0.001
    milestones: tuple[int, ...] = (440, 544)
    gamma: float = 0.1
    epochs: int = 640
    grad_clip: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    param_groups: list[ParamRule] = field(default_factory=list)
    step_strategy: str = "standard"
    step_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(self.warmup_iters >= 0, "warmup_iters", f"must be >= 0, got {self.warmup_iters}")
        require(0 <= self.warmup_ratio <= 1, "warmup_ratio", f"must be in [0, 1], got {self.warmup_ratio}")
        require(all(m >= 0 for m in self.milestones), "milestones", f"must be epochs >= 0, got {list(self.milestones)}")
        require(self.gamma > 0, "gamma", f"must be > 0, got {self.gamma}")
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(self.grad_clip is None or self.grad_clip > 0, "grad_clip", f"must be > 0 (or null: no clipping), got {self.grad_clip}")
        require(all(0 <= b < 1 for b in self.betas), "betas", f"must be in [0, 1), got {list(self.betas)}")
        require(self.eps > 0, "eps", f"must be > 0, got {self.eps}")
        from facescope.engine.steps import list_step_strategies, step_options

        _require_registered(self.step_strategy, list_step_strategies(), "step_strategy")
        _options_fit(lambda: step_options(self.step_strategy, self.step_options), "step_options", f"step strategy '{self.step_strategy}'")


@dataclass
class EvalConfig:
    """Periodic WIDER FACE validation (off when ``interval`` is 0 or paths are missing)."""

    images: str | None = None
    ground_truth: str | None = None
    interval: int = 0
    preset: str = "widerface"

    def __post_init__(self) -> None:
        require(self.interval >= 0, "interval", f"must be >= 0 epochs (0 = off), got {self.interval}")


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

    def __post_init__(self) -> None:
        require(bool(_DEVICE.fullmatch(self.device)), "device", f"must be auto, cpu, cuda or cuda:N, got '{self.device}'")
        require(self.max_iters is None or self.max_iters >= 1, "max_iters", f"must be >= 1 (or null: no limit), got {self.max_iters}")
        require(self.log_interval >= 1, "log_interval", f"must be >= 1, got {self.log_interval}")
        require(self.checkpoint_interval >= 0, "checkpoint_interval", f"must be >= 0 (0 = off), got {self.checkpoint_interval}")
        require(self.checkpoint_every_iters >= 0, "checkpoint_every_iters", f"must be >= 0 (0 = off), got {self.checkpoint_every_iters}")


@dataclass
class TrainConfig:
    """A complete training recipe.

    Attributes:
        model: registry name.
        model_args: options of the model's builder (``create_model(model, **model_args)``, e.g.
            ``{deformable: false}``; ``model_args.KEY=VALUE`` on the command line). Unknown keys are
            refused; a file-valued option takes a path and the checkpoints carry the file's content.
            Every checkpoint records them, so ``facescope detect/eval/export/info`` rebuild the model
            without their being repeated.
        init_weights: whole-model weights to start from (path, release tag or ``pretrained``).
        backbone_weights: ImageNet classification checkpoint for the backbone (e.g. Pytorch_Retinaface's
            ``mobilenetV1X0.25_pretrain.tar`` or a torchvision ResNet file); the classifier is dropped.
        loss: overrides of the model's loss settings (fields of its ``loss_config`` dataclass, e.g.
            ``{box_weight: 2.0}``).
    """

    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
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
            setattr(self, name, _under_root_if_there(getattr(self, name), root))
        self.model_args = {key: _under_root_if_there(value, root) for key, value in self.model_args.items()}
        return self


def _under_root_if_there(value: Any, root: Path) -> Any:
    """``root / value`` for a relative path string that exists under ``root``; anything else unchanged."""
    if isinstance(value, str) and value and not Path(value).is_absolute() and (root / value).exists():
        return str(root / value)
    return value
