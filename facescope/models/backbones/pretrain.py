"""ImageNet initialisation of a detector's backbone from a classification checkpoint (the engine's
``backbone_weights``): Pytorch_Retinaface's MobileNetV1-0.25 file and torchvision's ResNet / VGG files."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from facescope.errors import WeightsError
from facescope.models.weights import read_state_dict

# Top-level modules of ImageNet classifiers that a detector body does not have.
CLASSIFIER_MODULES = frozenset({"fc", "avg", "avgpool", "classifier"})


def load_backbone_pretrain(body: nn.Module, path: str | Path) -> list[str]:
    """Initialise a detector body from an ImageNet classification checkpoint.

    Accepts Pytorch_Retinaface's ``mobilenetV1X0.25_pretrain.tar`` (``{"state_dict": ...}`` with a
    ``module.`` prefix and the classifier ``fc``) and torchvision ResNet files (bare state dicts
    with ``fc``). The prefix is stripped, classifier keys absent from ``body`` are dropped, and
    every remaining key must fit ``body`` exactly.

    Args:
        body: the backbone module (e.g. ``model.body``).
        path: checkpoint file.

    Returns:
        The keys of the file that were dropped (the classifier).

    Raises:
        WeightsError: unreadable file, a missing key or a shape mismatch.
    """
    state = _read_classification_checkpoint(Path(path))
    expected = body.state_dict()
    dropped = sorted(k for k in state if k not in expected)
    stray = [k for k in dropped if k.split(".")[0] not in CLASSIFIER_MODULES]
    if stray:
        raise WeightsError(f"{path}: key '{stray[0]}' does not belong to the {type(body).__name__} body")
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightsError(f"{path}: {len(missing)} body tensors missing from the file (e.g. '{missing[0]}')")
    for key in expected:
        if key in state and state[key].shape != expected[key].shape:
            raise WeightsError(
                f"{path}: '{key}' has shape {list(state[key].shape)} in the file, {list(expected[key].shape)} in the body"
            )
    body.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return dropped


def _read_classification_checkpoint(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise WeightsError(f"backbone weights file not found: {path}")
    # The .tar also pickles the optimizer state and python scalars; the one reader of weights files unwraps
    # its "state_dict" and the DataParallel "module." prefix.
    return read_state_dict(path)