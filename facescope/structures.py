"""The data contract shared by every detector, the evaluator, the visualiser and the CLI.

* boxes: ``Tensor[N, 4]`` float32, ``x1, y1, x2, y2`` in pixels of the image the user passed in;
* scores: ``Tensor[N]`` float32 in ``[0, 1]``, sorted in descending order by the detectors;
* landmarks: ``Tensor[N, 5, 2]`` float32 ``(x, y)`` in the same pixels, ordered left eye, right eye,
  nose, left mouth corner, right mouth corner, or ``None`` when the model predicts none.

Encoded regressions (distances, deltas, normalised centres) never leave a model head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
# Index pairs swapped by a horizontal flip.
LANDMARK_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (3, 4))


def _check_shape(name: str, tensor: Tensor, shape: tuple[int | None, ...]) -> None:
    ok = tensor.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, tensor.shape))
    if not ok:
        want = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(tensor.shape)}")


@dataclass
class Detections:
    """Faces found in one image.

    Args:
        boxes: ``Tensor[N, 4]`` x1, y1, x2, y2 in input-image pixels.
        scores: ``Tensor[N]`` confidences.
        landmarks: ``Tensor[N, 5, 2]`` or None.

    Example:
        >>> dets = Detections(torch.tensor([[10., 20., 50., 70.]]), torch.tensor([0.9]))
        >>> len(dets), dets.to_dict()["faces"][0]["box"]
        (1, [10.0, 20.0, 50.0, 70.0])
    """

    boxes: Tensor
    scores: Tensor
    landmarks: Tensor | None = None

    def __post_init__(self) -> None:
        _check_shape("boxes", self.boxes, (None, 4))
        _check_shape("scores", self.scores, (self.boxes.shape[0],))
        if self.landmarks is not None:
            _check_shape("landmarks", self.landmarks, (self.boxes.shape[0], 5, 2))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls, with_landmarks: bool = False, device: torch.device | str = "cpu") -> Detections:
        """No faces."""
        landmarks = torch.zeros((0, 5, 2), device=device) if with_landmarks else None
        return cls(torch.zeros((0, 4), device=device), torch.zeros((0,), device=device), landmarks)

    def __getitem__(self, index: Tensor | slice | list[int]) -> Detections:
        """Select faces by boolean mask, index tensor or slice."""
        landmarks = self.landmarks[index] if self.landmarks is not None else None
        return Detections(self.boxes[index], self.scores[index], landmarks)

    def to(self, device: torch.device | str) -> Detections:
        landmarks = self.landmarks.to(device) if self.landmarks is not None else None
        return Detections(self.boxes.to(device), self.scores.to(device), landmarks)

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return ``(boxes [N,4], scores [N], landmarks [N,5,2] or None)`` as float32 numpy arrays."""
        landmarks = self.landmarks.detach().cpu().numpy() if self.landmarks is not None else None
        return self.boxes.detach().cpu().numpy(), self.scores.detach().cpu().numpy(), landmarks

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        """JSON-ready form: ``{"faces": [{"box": [x1,y1,x2,y2], "score": s, "landmarks": [[x,y]*5]}]}``."""
        boxes, scores, landmarks = self.numpy()
        faces = []
        for i in range(len(self)):
            face: dict[str, Any] = {
                "box": [round(float(v), decimals) for v in boxes[i]],
                "score": round(float(scores[i]), 5),
            }
            if landmarks is not None:
                face["landmarks"] = [[round(float(x), decimals), round(float(y), decimals)] for x, y in landmarks[i]]
            faces.append(face)
        return {"faces": faces}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Detections:
        """Inverse of :meth:`to_dict`."""
        faces = data.get("faces", [])
        boxes = torch.tensor([f["box"] for f in faces], dtype=torch.float32).reshape(-1, 4)
        scores = torch.tensor([f["score"] for f in faces], dtype=torch.float32).reshape(-1)
        with_landmarks = len(faces) > 0 and all("landmarks" in f for f in faces)
        landmarks = (
            torch.tensor([f["landmarks"] for f in faces], dtype=torch.float32).reshape(-1, 5, 2)
            if with_landmarks
            else None
        )
        return cls(boxes, scores, landmarks)


@dataclass
class FaceTargets:
    """Ground-truth faces of one (augmented) training image.

    Args:
        boxes: ``Tensor[M, 4]`` x1, y1, x2, y2 in pixels of the network input.
        landmarks: ``Tensor[M, 5, 2]``; values of unannotated points are arbitrary (zero).
        landmark_valid: ``Tensor[M, 5]`` bool, True where the point is annotated.
        ignore: ``Tensor[M]`` bool, True for faces that must be neither learnt nor counted as
            background (e.g. outside a detector's anchor range); default all False.
    """

    boxes: Tensor
    landmarks: Tensor
    landmark_valid: Tensor
    ignore: Tensor | None = None

    def __post_init__(self) -> None:
        _check_shape("boxes", self.boxes, (None, 4))
        _check_shape("landmarks", self.landmarks, (self.boxes.shape[0], 5, 2))
        _check_shape("landmark_valid", self.landmark_valid, (self.boxes.shape[0], 5))
        if self.ignore is None:
            self.ignore = torch.zeros(self.boxes.shape[0], dtype=torch.bool, device=self.boxes.device)
        _check_shape("ignore", self.ignore, (self.boxes.shape[0],))
        if self.ignore.dtype != torch.bool:
            raise ValueError(f"ignore must be a bool tensor, got {self.ignore.dtype}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def from_boxes(cls, boxes: Tensor, ignore: Tensor | None = None) -> FaceTargets:
        """Targets without any landmark annotation."""
        num = boxes.shape[0]
        no_points = torch.zeros((num, 5), dtype=torch.bool, device=boxes.device)
        return cls(boxes, boxes.new_zeros((num, 5, 2)), no_points, ignore)

    def to(self, device: torch.device | str) -> FaceTargets:
        ignore = self.ignore.to(device) if self.ignore is not None else None
        return FaceTargets(self.boxes.to(device), self.landmarks.to(device), self.landmark_valid.to(device), ignore)
