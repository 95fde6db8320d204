"""The training loop: one process on a CPU up to many GPUs and nodes through ``torchrun``.

``fit(config)`` builds the model, data and optimizer from a :class:`TrainConfig`, optionally resumes
from a checkpoint, and runs :func:`train_one_epoch` until the recipe's last epoch (or
``runtime.max_iters``). Checkpoints are atomic and carry everything an exact resume needs.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from facescope import __version__
from facescope.allocator import tune_cpu_allocator
from facescope.config import dump_yaml, to_dict
from facescope.config import FieldError
from facescope.data.dataset import Batch, FaceDataset, collate
from facescope.data.pipelines import build_transforms
from facescope.data.records import drop_empty, read_annotations
from facescope.distributed import DistInfo, all_gather_cat, all_ranks_agree, barrier, cleanup, init_distributed
from facescope.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from facescope.engine.config import TrainConfig
from facescope.engine.logger import MetricsLogger
from facescope.engine.optimizers import Optimizers, build_optimizers
from facescope.engine.samplers import TrainSampler
from facescope.engine.steps import StepData, StepStrategy, build_step_strategy
from facescope.engine.schedule import learning_rate
from facescope.errors import ConfigError, DataError, FacescopeError
from facescope.losses.criteria import Criterion, build_criterion
from facescope.models.base import DenseFaceDetector
from facescope.models.options import check_agreement
from facescope.models.registry import create_model


class TrainingDiverged(FacescopeError):
    """The loss or the gradients became NaN/Inf."""


@dataclass
class TrainState:
    """Position in the schedule: the next batch to train is ``batch_in_epoch`` of ``epoch``."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0


@dataclass
class Trainer:
    """Everything the loop needs, built once by :func:`build_trainer`."""

    config: TrainConfig
    dist: DistInfo
    device: torch.device
    model: DenseFaceDetector
    wrapped: nn.Module
    criterion: Criterion
    dataset: FaceDataset
    strategy: StepStrategy  # what an iteration does; owns the samplers and loaders
    optimizers: Optimizers  # one torch optimizer per (parameter set, optimizer name)
    scaler: torch.amp.GradScaler
    logger: MetricsLogger
    state: TrainState

    @property
    def out_dir(self) -> Path:
        return Path(self.config.runtime.out_dir)

    @property
    def sampler(self) -> TrainSampler:
        """The sampler of the strategy's main stream (``standard``: the only one; ``bilevel``: the network half's)."""
        return self.strategy.samplers[self.strategy.primary]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The first optimizer of the network parameter set (the only one of a single-optimizer recipe)."""
        return self.optimizers.parts[0].optimizer


def fit(config: TrainConfig, resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train according to ``config``; returns the path of the last checkpoint written.

    Args:
        config: the recipe.
        resume: a checkpoint to continue from, or ``"auto"`` for ``<out_dir>/last.pth``.
        progress: show progress bars (rank 0 only).
    """
    info, device = init_distributed(config.runtime.device)
    try:
        trainer = build_trainer(config, info, device, progress)
        if resume is not None:
            restore(trainer, Path(config.runtime.out_dir) / "last.pth" if str(resume) == "auto" else Path(resume))
        return run(trainer, progress)
    finally:
        cleanup()


def build_trainer(config: TrainConfig, info: DistInfo, device: torch.device, progress: bool = True) -> Trainer:
    """Model, data, optimizer and logger for ``config`` on this rank."""
    torch.manual_seed(config.runtime.seed)
    if device.type == "cpu":
        tune_cpu_allocator()  # reuse freed activation buffers across steps (see facescope.allocator)
    if config.runtime.deterministic:
        torch.use_deterministic_algorithms(True)
    model = create_model(config.model, config.init_weights, device=device, progress=progress, **config.model_args)
    model.weights_loaded = True  # what training makes of them (a Detector on this model must not warn)
    check_image_size(config, model)
    configure_model(model, config)
    criterion = build_criterion(model, config.loss)  # an unknown loss key fails here, before any work
    if config.init_weights and str(config.init_weights).endswith(".onnx") and not config.runtime.freeze_bn_stats:
        raise FacescopeError(
            "ONNX weights have their BatchNorm folded into the convolutions (statistics are gone); "
            "fine-tune them with runtime.freeze_bn_stats=true"
        )
    if config.runtime.sync_bn and info.distributed and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # Frozen parameters must have requires_grad=False before DDP registers its gradient hooks.
    optimizers = build_optimizers(model, config.optim, config.model)
    wrapped: nn.Module = model
    if info.distributed:
        wrapped = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # a search network runs one candidate op per edge: the others get no gradient in that step
            find_unused_parameters=bool(getattr(model, "dynamic_graph", False)),
        )
    dataset = build_dataset(config, model)

    def make_loader(sampler: TrainSampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=config.data.batch_size,
            sampler=sampler,
            num_workers=config.data.workers,
            collate_fn=collate,
            pin_memory=device.type == "cuda",
            drop_last=False,
        )

    data = StepData(
        len(dataset), config.data.batch_size, config.runtime.seed, info.rank, info.world_size,
        config.data.sampler, config.data.sampler_options, make_loader,
    )  # fmt: skip
    strategy = build_step_strategy(config.optim.step_strategy, config.optim.step_options, data, optimizers)
    scaler = torch.amp.GradScaler("cuda", enabled=config.runtime.amp and device.type == "cuda")
    logger = MetricsLogger(Path(config.runtime.out_dir), enabled=info.is_main)
    return Trainer(config, info, device, model, wrapped, criterion, dataset, strategy, optimizers, scaler, logger, TrainState())


def check_image_size(config: TrainConfig, model: DenseFaceDetector) -> None:
    """The training crops must fit the network's stride: ``data.image_size`` a multiple of its size divisor."""
    divisor = model.input_spec.size_divisor
    if config.data.image_size % divisor:
        raise ConfigError(
            f"data.image_size must be a multiple of {divisor} for {config.model} (its input sides are padded to "
            f"multiples of {divisor}), got {config.data.image_size}"
        )


def configure_model(model: DenseFaceDetector, config: TrainConfig) -> None:
    """Apply the recipe's ImageNet backbone initialisation to a fresh model."""
    if config.backbone_weights:
        from facescope.models.backbones.pretrain import load_backbone_pretrain

        load_backbone_pretrain(model.backbone, config.backbone_weights)  # every family declares its backbone


def build_dataset(config: TrainConfig, model: DenseFaceDetector) -> FaceDataset:
    """Read the annotations, drop images without faces, attach the registered augmentation pipeline."""
    data = config.data
    try:
        transforms = build_transforms(data)  # checked again: the Python API may have changed fields since
    except FieldError as exc:
        raise ConfigError(f"'data.{exc.field}' {exc.problem}") from None
    records = read_annotations(data.train_annotations, data.train_images, data.format)
    missing = [r for r in records if not r.image_path.is_file()]
    if missing and not data.skip_missing_images:
        raise DataError(
            f"{len(missing)} of {len(records)} training images are missing (first: {missing[0].image_path}); "
            f"fix data.train_images or set data.skip_missing_images=true to train on the {len(records) - len(missing)} present"
        )
    present = [r for r in records if r.image_path.is_file()]
    records = drop_empty(present, data.min_face_size)
    if not records:
        raise DataError(f"no training images with faces in {data.train_annotations}")
    return FaceDataset(records, transforms, model.input_spec, seed=config.runtime.seed)


def restore(trainer: Trainer, path: Path) -> None:
    """Load model, optimizer, scaler, sampler, position and RNG states from a checkpoint."""
    payload = load_checkpoint(path)
    if payload.get("model_name") not in (None, trainer.config.model):
        raise FacescopeError(f"{path} was trained as '{payload['model_name']}', not '{trainer.config.model}'")
    check_agreement(payload.get("model_args") or {}, getattr(trainer.model, "model_args", {}), str(path))
    for key, default, configured in (
        ("sampler_name", "sharded", trainer.config.data.sampler),
        ("step_strategy", "standard", trainer.config.optim.step_strategy),
    ):
        saved = payload.get(key, default)
        if saved != configured:
            what = "data.sampler" if key == "sampler_name" else "optim.step_strategy"
            raise FacescopeError(f"{path} was trained with {what} '{saved}', not '{configured}'")
    trainer.optimizers.load_state_dict(payload["optimizer"], str(path))
    trainer.model.load_state_dict(payload["model"])
    if "scaler" in payload:
        trainer.scaler.load_state_dict(payload["scaler"])
    if "sampler" in payload:
        trainer.strategy.load_state_dict(payload["sampler"])
    trainer.state = TrainState(payload["epoch"], payload["batch_in_epoch"], payload["global_step"])
    set_rng_state(payload["rng"])
    trainer.logger.info(f"resumed from {path} at epoch {payload['epoch']}, batch {payload['batch_in_epoch']}, step {payload['global_step']}")


def run(trainer: Trainer, progress: bool = True, on_epoch_end: Callable[[Trainer], None] | None = None) -> Path:
    """Train from ``trainer.state`` to the end of the schedule (or ``runtime.max_iters``).

    ``on_epoch_end(trainer)`` runs on every rank after each completed epoch's checkpoint (a search records its
    architecture weights there; ``trainer.state.epoch`` is then the number of epochs done)."""
    config, state = trainer.config, trainer.state
    if trainer.dist.is_main:
        trainer.out_dir.mkdir(parents=True, exist_ok=True)
        dump_yaml(config, trainer.out_dir / "config.yaml")
    last = trainer.out_dir / "last.pth"
    while state.epoch < config.optim.epochs and not _budget_spent(trainer):
        train_one_epoch(trainer, progress)
        if state.batch_in_epoch >= trainer.strategy.batches_per_epoch():
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            write_checkpoint(trainer, last)
            if config.runtime.checkpoint_interval and state.epoch % config.runtime.checkpoint_interval == 0:
                write_checkpoint(trainer, trainer.out_dir / f"epoch_{state.epoch}.pth")
            maybe_evaluate(trainer)
            if on_epoch_end is not None:
                on_epoch_end(trainer)
        else:
            write_checkpoint(trainer, last)
    trainer.logger.close()
    return last


def _budget_spent(trainer: Trainer) -> bool:
    max_iters = trainer.config.runtime.max_iters
    return max_iters is not None and trainer.state.global_step >= max_iters


def set_train_mode(model: nn.Module, freeze_bn_stats: bool) -> None:
    """``model.train()``, keeping BatchNorm layers in eval mode when their statistics are frozen."""
    model.train()
    if freeze_bn_stats:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def train_one_epoch(trainer: Trainer, progress: bool = True) -> dict[str, float]:
    """Train the rest of the current epoch (or until the iteration budget is spent)."""
    from tqdm import tqdm

    config, state = trainer.config, trainer.state
    trainer.strategy.set_epoch(state.epoch, state.batch_in_epoch)
    trainer.dataset.set_epoch(state.epoch)
    set_train_mode(trainer.wrapped, config.runtime.freeze_bn_stats)
    remaining = trainer.strategy.batches_per_epoch() - state.batch_in_epoch
    bar = tqdm(total=remaining, desc=f"epoch {state.epoch + 1}/{config.optim.epochs}", disable=not (progress and trainer.dist.is_main))
    summary: dict[str, float] = {}
    tick = time.perf_counter()
    for batches in trainer.strategy.batches():
        data_time = time.perf_counter() - tick
        metrics = train_step(trainer, batches)
        metrics.update(data_time=data_time, step_time=time.perf_counter() - tick - data_time)
        summary = metrics
        trainer.logger.log_step(state, metrics, config.runtime.log_interval)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
        bar.update(1)
        if config.runtime.checkpoint_every_iters and state.global_step % config.runtime.checkpoint_every_iters == 0:
            write_checkpoint(trainer, trainer.out_dir / "last.pth")
        if _budget_spent(trainer):
            break
        tick = time.perf_counter()
    bar.close()
    return summary


def train_step(trainer: Trainer, batches: dict[str, Batch]) -> dict[str, float]:
    """One iteration of the step strategy on its batches (one per data stream); advances ``trainer.state``."""
    config, state = trainer.config, trainer.state
    lr = learning_rate(
        config.optim.lr, state.global_step, state.epoch, config.optim.warmup_iters,
        config.optim.warmup_ratio, config.optim.milestones, config.optim.gamma,
    )  # fmt: skip
    trainer.optimizers.set_learning_rates(lr)
    metrics = trainer.strategy.step(batches, functools.partial(half_step, trainer, lr))
    trainer.scaler.update()  # once per iteration, after every optimizer of the iteration stepped
    state.global_step += 1
    state.batch_in_epoch += 1
    return {**metrics, "lr": lr}


def half_step(trainer: Trainer, lr: float, batch: Batch, parameter_set: str | None, sampler: TrainSampler) -> dict[str, float]:
    """Forward ``batch``, back-propagate, step the optimizers of ``parameter_set`` (None: all), update ``sampler``.

    Every gradient is cleared first, so the parameters of another set are not moved by this batch
    (their gradients from it are dropped before the other set's half step)."""
    device = trainer.device
    batch = batch.to(device)
    input_hw = (int(batch.images.shape[2]), int(batch.images.shape[3]))
    with torch.autocast(device.type, dtype=torch.float16, enabled=trainer.scaler.is_enabled()):
        outputs = trainer.wrapped(batch.images)
    result = trainer.criterion(outputs.map(lambda t: t.float()), batch.targets, input_hw)
    losses, total = result.losses, result.total
    _guard_finite(trainer, total, losses, lr)
    parts = trainer.optimizers.of(parameter_set)
    trainer.optimizers.zero_grad()
    trainer.scaler.scale(total).backward()
    for part in parts:
        trainer.scaler.unscale_(part.optimizer)
    max_norm = trainer.config.optim.grad_clip if trainer.config.optim.grad_clip is not None else math.inf
    params = [p for part in parts for p in part.parameters()]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    for part in parts:
        trainer.scaler.step(part.optimizer)
    update_sampler(trainer, sampler, batch.indices, result.per_image)
    metrics = {"loss": float(total.detach()), "grad_norm": grad_norm, "images": float(len(batch.targets))}
    metrics.update({f"loss_{name}": float(value.detach()) for name, value in losses.items()})
    return metrics


def update_sampler(trainer: Trainer, sampler: TrainSampler, indices: torch.Tensor, per_image: dict[str, torch.Tensor]) -> None:
    """Give ``sampler`` the step's dataset indices and per-image statistics of the GLOBAL batch.

    Under DDP each rank holds its own slice; gathering them in rank order rebuilds the global batch
    (the sampler gives rank ``r`` the ``r``-th slice), so every rank applies the same update and the
    samplers' states stay identical (rank 0's is the one checkpointed).
    """
    stats = {name: value.detach().reshape(-1) for name, value in sorted(per_image.items())}
    for name, value in stats.items():
        if value.numel() != indices.numel():
            raise FacescopeError(f"criterion statistic '{name}' has {value.numel()} values for a batch of {indices.numel()} images")
    if trainer.dist.distributed:
        indices = all_gather_cat(indices.to(trainer.device))
        stats = {name: all_gather_cat(value.to(trainer.device)) for name, value in stats.items()}
    sampler.update(indices.cpu(), {name: value.cpu() for name, value in stats.items()})


def _guard_finite(trainer: Trainer, total: torch.Tensor, losses: dict[str, torch.Tensor], lr: float) -> None:
    if all_ranks_agree(bool(torch.isfinite(total)), trainer.device):
        return
    parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
    raise TrainingDiverged(
        f"loss is not finite at epoch {trainer.state.epoch + 1}, step {trainer.state.global_step} ({parts}, lr={lr:.3g}); "
        f"the last good checkpoint is {trainer.out_dir / 'last.pth'} - lower optim.lr or check the annotations"
    )


def write_checkpoint(trainer: Trainer, path: Path) -> None:
    """Rank 0 writes the checkpoint atomically; every rank waits for it."""
    if trainer.dist.is_main:
        state = trainer.state
        save_checkpoint(
            path,
            {
                "model": trainer.model.state_dict(),
                "optimizer": trainer.optimizers.state_dict(),
                "scaler": trainer.scaler.state_dict(),
                "sampler": trainer.strategy.state_dict(),
                "sampler_name": trainer.config.data.sampler,
                "step_strategy": trainer.config.optim.step_strategy,
                "epoch": state.epoch,
                "batch_in_epoch": state.batch_in_epoch,
                "global_step": state.global_step,
                "rng": rng_state(),
                "config": to_dict(trainer.config),
                "model_name": trainer.config.model,
                "model_args": dict(getattr(trainer.model, "model_args", {})),
                "facescope_version": __version__,
            },
        )
    barrier()


def maybe_evaluate(trainer: Trainer) -> None:
    """Periodic WIDER FACE validation through the evaluation's entry point (every rank gets the APs).

    Images are sharded over the ranks when a process group exists; predictions are kept in
    ``<out_dir>/val_epoch_<epoch>``. The model is left in eval mode; the training loop switches it
    back at the start of the next epoch.
    """
    cfg, epoch = trainer.config.eval, trainer.state.epoch
    if not cfg.interval or not cfg.images or not cfg.ground_truth or epoch % cfg.interval:
        return
    from facescope.eval import evaluate_detector_on_widerface
    from facescope.inference.detector import Detector

    detector = Detector(trainer.model, preset=cfg.preset, device=trainer.device)
    # the recipe names its validation preset explicitly (e.g. a fast 'default' check during training), so a
    # preset other than the protocol's is allowed here; the result carries a note saying so
    result = evaluate_detector_on_widerface(
        detector, cfg.images, cfg.ground_truth, trainer.out_dir / f"val_epoch_{epoch}", progress=False,
        name=f"epoch {epoch}", require_protocol_preset=False,
    )  # fmt: skip
    metrics = {f"ap_{subset}": float(value) for subset, value in result.ap.items()}
    metrics["full_val"] = float(result.is_full)
    trainer.logger.log_eval(trainer.state, metrics)
