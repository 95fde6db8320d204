"""MobileNetV1-0.25 body of Pytorch_Retinaface (biubug6), with its ImageNet initialisation.

Three stages (``stage1``..``stage3``) of 3x3 conv / depthwise-separable blocks, every activation a
``LeakyReLU(0.1)``; the classifier (``avg``, ``fc``) of the ImageNet network is not part of the
detector, as torchvision's ``IntermediateLayerGetter`` drops it in the official code. State-dict
keys: ``stage1.0.0.weight``, ``stage1.0.1.running_mean``, ``stage1.1.3.weight``, ...
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from facescope.errors import WeightsError
from facescope.models.layers import conv_bn_act, conv_dw

LEAKY_SLOPE = 0.1
# Top-level modules of ImageNet classifiers that a detector body does not have.
CLASSIFIER_MODULES = frozenset({"fc", "avg", "avgpool", "classifier"})


class RetinaFaceMobileNetV1(nn.Module):
    """MobileNetV1 with width 0.25 as in Pytorch_Retinaface ``models/net.py``.

    Returns (forward):
        ``[C3, C4, C5]``: ``Tensor[B, 64, ceil(H/8), ceil(W/8)]``, ``[B, 128, H/16, W/16]``,
        ``[B, 256, H/32, W/32]`` (sides rounded up).

    Example:
        >>> [f.shape[1:] for f in RetinaFaceMobileNetV1()(torch.zeros(1, 3, 64, 64))]
        [torch.Size([64, 8, 8]), torch.Size([128, 4, 4]), torch.Size([256, 2, 2])]
    """

    out_channels = (64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        slope = LEAKY_SLOPE
        self.stage1 = nn.Sequential(
            conv_bn_act(3, 8, stride=2, negative_slope=slope),
            conv_dw(8, 16, 1, slope),
            conv_dw(16, 32, 2, slope),
            conv_dw(32, 32, 1, slope),
            conv_dw(32, 64, 2, slope),
            conv_dw(64, 64, 1, slope),
        )
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2, slope), *(conv_dw(128, 128, 1, slope) for _ in range(5)))
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2, slope), conv_dw(256, 256, 1, slope))

    def forward(self, x: Tensor) -> list[Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return [c3, c4, c5]


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
    try:
        # The .tar also pickles the optimizer state and python scalars; weights_only still reads it.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise WeightsError(f"cannot read backbone weights {path}: {type(exc).__name__}: {exc}")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"cannot read backbone weights {path}: no state dict of tensors inside")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}
