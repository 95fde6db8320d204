"""Training dataset and batch collation (the samplers are in :mod:`facescope.engine.samplers`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from facescope.data.records import FaceRecord
from facescope.data.transforms import Compose, Sample
from facescope.inference.image_io import read_image
from facescope.models.spec import InputSpec
from facescope.structures import FaceTargets


@dataclass
class Batch:
    """A collated training batch.

    Attributes:
        images: ``Tensor[B, 3, H, W]`` normalised.
        targets: one :class:`FaceTargets` per image.
        indices: ``Tensor[B]`` int64 dataset index of each image (for the sampler's ``update``).
    """

    images: torch.Tensor
    targets: list[FaceTargets]
    indices: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        """Images and targets on ``device``; ``indices`` stay on the CPU (bookkeeping only)."""
        return Batch(self.images.to(device, non_blocking=True), [t.to(device) for t in self.targets], self.indices)


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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, FaceTargets, int]:
        """``(image Tensor[3, H, W], targets, index)`` of item ``index`` in the current epoch."""
        rng = np.random.default_rng((self.seed, self.epoch, index))
        sample = self.transforms(self.load(index), rng)
        targets = FaceTargets(
            torch.from_numpy(sample.boxes.astype(np.float32)),
            torch.from_numpy(sample.landmarks.astype(np.float32)),
            torch.from_numpy(sample.landmark_valid.astype(bool)),
            image_hw=(int(sample.image.shape[0]), int(sample.image.shape[1])),
        )
        return normalise(sample.image, self.input_spec), targets, index


def collate(items: list[tuple[torch.Tensor, FaceTargets, int]]) -> Batch:
    """Stack the images; targets stay a list (faces per image vary).

    Images of different sizes (SHF's multi-scale pipeline) are padded bottom/right with zeros (the
    normalised mean pixel) to the largest height and width of the batch; each target keeps its
    image's own size in ``image_hw``.
    """
    height = max(int(image.shape[1]) for image, _, _ in items)
    width = max(int(image.shape[2]) for image, _, _ in items)
    images = torch.zeros((len(items), 3, height, width), dtype=items[0][0].dtype)  # (B, 3, H, W)
    for slot, (image, _, _) in zip(images, items):
        slot[:, : image.shape[1], : image.shape[2]] = image
    indices = torch.tensor([index for _, _, index in items], dtype=torch.int64)
    return Batch(images, [targets for _, targets, _ in items], indices)
