"""Helpers shared by the engine tests (importable from spawned worker processes)."""


def tiny_config(root, out_dir, **runtime):
    from facescope.engine.config import DataConfig, OptimConfig, RuntimeConfig, TrainConfig

    data = DataConfig(train_annotations=str(root / "train.jsonl"), train_images=str(root), format="jsonl",
                      image_size=96, batch_size=4, workers=0)
    optim = OptimConfig(lr=0.01, warmup_iters=2, epochs=4, milestones=(3,))
    return TrainConfig("scrfd_500m_kps", data=data, optim=optim,
                       runtime=RuntimeConfig(out_dir=str(out_dir), device="cpu", log_interval=1, **runtime))


def train_run(config, resume=None):
    """Build a one-process CPU trainer for ``config``, optionally restore ``resume``, run it; returns the trainer."""
    import torch

    from facescope.distributed import DistInfo
    from facescope.engine.trainer import build_trainer, restore, run

    trainer = build_trainer(config, DistInfo(), torch.device("cpu"), False)
    if resume is not None:
        restore(trainer, resume)
    run(trainer, progress=False)
    return trainer
