"""Training dataset, batch collation and a deterministic, resumable, rank-sharded sampler."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from facescope.data.records import FaceRecord
from facescope.data.transforms import Compose, Sample
from facescope.inference.image_io import read_image
from facescope.models.spec import InputSpec
from facescope.structures import FaceTargets


@dataclass
class Batch:
    """A collated training batch: ``images`` ``Tensor[B, 3, H, W]`` normalised, one target per image."""

    images: torch.Tensor
    targets: list[FaceTargets]

    def to(self, device: torch.device) -> Batch:
        return Batch(self.images.to(device, non_blocking=True), [t.to(device) for t in self.targets])


def normalise(image: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Float BGR ``H x W x 3`` -> normalised ``Tensor[3, H, W]`` in the model's colour order."""
    if spec.color == "rgb":
        image = image[..., ::-1]
    mean = np.asarray(spec.mean, np.float32)
    inv_std = (1.0 / np.asarray(spec.std, np.float64)).astype(np.float32)
    # (H, W, 3) -> (3, H, W)
    return torch.from_numpy(np.ascontiguousarray(((image - mean) * inv_std).transpose(2, 0, 1)))


class FaceDataset(Dataset):
    """Augmented training samples from :class:`FaceRecord` annotations.

    The augmentation of item ``i`` in epoch ``e`` draws from ``numpy.random.default_rng((seed, e, i))``,
    so results do not depend on worker count, process rank or interruptions.
    """

    def __init__(self, records: Sequence[FaceRecord], transforms: Compose, input_spec: InputSpec, seed: int = 0) -> None:
        self.records = list(records)
        self.transforms = transforms
        self.input_spec = input_spec
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load(self, index: int) -> Sample:
        record = self.records[index]
        image = read_image(record.image_path).astype(np.float32)
        return Sample(image, record.boxes.copy(), record.landmarks.copy(), record.landmark_valid.copy())

    def __getitem__(self, index: int) -> tuple[torch.Tensor, FaceTargets]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        sample = self.transforms(self.load(index), rng)
        targets = FaceTargets(
            torch.from_numpy(sample.boxes.astype(np.float32)),
            torch.from_numpy(sample.landmarks.astype(np.float32)),
            torch.from_numpy(sample.landmark_valid.astype(bool)),
        )
        return normalise(sample.image, self.input_spec), targets


def collate(items: list[tuple[torch.Tensor, FaceTargets]]) -> Batch:
    """Stack same-size images; targets stay a list (faces per image vary)."""
    return Batch(torch.stack([image for image, _ in items]), [targets for _, targets in items])


class ShardedSampler(Sampler[int]):
    """Epoch-seeded permutation, split across ranks, that can start mid-epoch.

    Each epoch the indices are shuffled with ``seed + epoch``, padded (by repetition) to a multiple of
    ``world_size * batch_size`` when ``drop_last`` is False, and rank ``r`` takes every
    ``world_size``-th batch-slot: a global batch of ``world_size * batch_size`` consecutive indices is
    split into per-rank batches, so N processes see exactly the global batches 1 process would.
    ``start_batch`` skips batches already trained (exact resume).
    """

    def __init__(
        self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def global_order(self) -> list[int]:
        """This epoch's indices for all ranks, padded to whole global batches."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        global_batch = self.batch_size * self.world_size
        padding = (-len(order)) % global_batch
        return order + (order * (padding // max(len(order), 1) + 1))[:padding]

    def batches_per_epoch(self) -> int:
        return len(self.global_order()) // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, len(order) // global_batch):
            start = b * global_batch + self.rank * self.batch_size
            yield from order[start : start + self.batch_size]

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start_batch) * self.batch_size
