"""The data contract shared by every detector, the evaluator, the visualiser and the CLI.

* boxes: ``ndarray[N, 4]`` float32, ``x1, y1, x2, y2`` in pixels of the image the user passed in;
* scores: ``ndarray[N]`` float32 in ``[0, 1]``, sorted in descending order by the detectors;
* landmarks: ``ndarray[N, 5, 2]`` float32 ``(x, y)`` in the same pixels, ordered left eye, right eye,
  nose, left mouth corner, right mouth corner, or ``None`` when the model predicts none.

:class:`Detections` holds numpy arrays whatever the backend, so detection with ONNX weights needs
no torch; the torch side converts at its edge with :meth:`Detections.from_torch` /
:meth:`Detections.to_torch`. Encoded regressions (distances, deltas, normalised centres) never
leave a model head. Importing this module does not import torch (:class:`FaceTargets`, a
training structure, imports it when used).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor

LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
# Index pairs swapped by a horizontal flip.
LANDMARK_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (3, 4))


def swap_landmark_sides(per_landmark: np.ndarray) -> np.ndarray:
    """A copy of ``per_landmark [K, 5, ...]`` (points, validity flags) with the left and right
    landmarks exchanged (:data:`LANDMARK_FLIP_PAIRS`), as a horizontal flip requires."""
    swapped = per_landmark.copy()
    for left, right in LANDMARK_FLIP_PAIRS:
        swapped[:, [left, right]] = per_landmark[:, [right, left]]
    return swapped


def mirror_faces(boxes: np.ndarray, landmarks: np.ndarray | None, axis: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Faces mirrored about ``x = axis / 2``: ``x' = axis - x``, ``x1``/``x2`` exchanged so that
    ``x1 <= x2`` holds, left/right landmarks exchanged. An involution; the inputs are not modified.

    Args:
        boxes: ``[K, 4]`` x1, y1, x2, y2.
        landmarks: ``[K, 5, 2]`` or None.
        axis: ``W`` for the ``x' = W - x`` convention, ``W - 1`` for ``x' = W - 1 - x``.

    Returns:
        ``(boxes [K, 4], landmarks [K, 5, 2] or None)`` in the dtype of the inputs.
    """
    mirrored = boxes.copy()
    mirrored[:, 0] = axis - boxes[:, 2]
    mirrored[:, 2] = axis - boxes[:, 0]
    if landmarks is None:
        return mirrored, None
    points = landmarks.copy()
    points[..., 0] = axis - landmarks[..., 0]
    return mirrored, swap_landmark_sides(points)


def _check_shape(name: str, array: Any, shape: tuple[int | None, ...]) -> None:
    actual = tuple(array.shape)
    ok = len(actual) == len(shape) and all(s is None or s == d for s, d in zip(shape, actual))
    if not ok:
        want = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(actual)}")


def to_numpy(values: Any) -> Any:
    """None as it is; a torch tensor (possibly on a GPU; recognised by duck type, so torch is never
    imported here) copied to a CPU numpy array; anything else through ``np.asarray``."""
    if values is None:
        return None
    if hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _float32(values: Any) -> np.ndarray:
    """A contiguous float32 numpy array (``values`` may be a list, an array or a tensor)."""
    return np.ascontiguousarray(to_numpy(values), dtype=np.float32)


@dataclass(eq=False)
class Face:
    """One detected face (an item of :class:`Detections`).

    Attributes:
        box: ``[4]`` float32 x1, y1, x2, y2 in input-image pixels.
        score: the confidence.
        landmarks: ``[5, 2]`` float32 (x, y) in :data:`LANDMARK_NAMES` order, or None.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        """``{"box": [x1, y1, x2, y2], "score": s, "landmarks": [[x, y] * 5]}`` (no ``landmarks`` key without them)."""
        face: dict[str, Any] = {"box": [round(float(v), decimals) for v in self.box], "score": round(float(self.score), 5)}
        if self.landmarks is not None:
            face["landmarks"] = [[round(float(x), decimals), round(float(y), decimals)] for x, y in self.landmarks]
        return face

    def __repr__(self) -> str:
        box = ", ".join(f"{float(v):.1f}" for v in self.box)
        points = "" if self.landmarks is None else ", 5 landmarks"
        return f"Face(box=[{box}], score={self.score:.3f}{points})"


def count_noun(number: int, noun: str) -> str:
    """``1 face``, ``0 faces``, ``6 faces``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


@dataclass(eq=False, repr=False)
class Detections:
    """Faces found in one image, as float32 numpy arrays.

    Args:
        boxes: ``[N, 4]`` x1, y1, x2, y2 in input-image pixels.
        scores: ``[N]`` confidences.
        landmarks: ``[N, 5, 2]`` or None.

    Any array-like is accepted and stored as a float32 ndarray. It behaves like a sequence of
    :class:`Face`: ``len(dets)``, ``dets[0]`` and ``for face in dets`` give faces; a slice, a
    boolean mask or an index array gives :class:`Detections`.

    Example:
        >>> dets = Detections(np.array([[10., 20., 50., 70.]]), np.array([0.9]))
        >>> len(dets), dets.to_dict()["faces"][0]["box"]
        (1, [10.0, 20.0, 50.0, 70.0])
        >>> dets[0]
        Face(box=[10.0, 20.0, 50.0, 70.0], score=0.900)
        >>> dets[dets.scores > 0.95]
        Detections(0 faces without landmarks)
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = _float32(self.boxes)
        self.scores = _float32(self.scores)
        if self.landmarks is not None:
            self.landmarks = _float32(self.landmarks)
        _check_shape("boxes", self.boxes, (None, 4))
        _check_shape("scores", self.scores, (self.boxes.shape[0],))
        if self.landmarks is not None:
            _check_shape("landmarks", self.landmarks, (self.boxes.shape[0], 5, 2))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls, with_landmarks: bool = False) -> Detections:
        """No faces."""
        landmarks = np.zeros((0, 5, 2), np.float32) if with_landmarks else None
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), landmarks)

    @overload
    def __getitem__(self, index: int | np.integer) -> Face: ...

    @overload
    def __getitem__(self, index: slice | np.ndarray | Sequence[int] | Sequence[bool]) -> Detections: ...

    def __getitem__(self, index: Any) -> Face | Detections:
        """``dets[i]`` (an integer): one :class:`Face`; a slice, boolean mask or index array:
        the selected faces as :class:`Detections`."""
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = operator.index(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"face index {i} out of range for {len(self)} faces")
            landmark = self.landmarks[i].copy() if self.landmarks is not None else None
            return Face(self.boxes[i].copy(), float(self.scores[i]), landmark)
        if isinstance(index, (list, tuple)):
            index = np.asarray(index)
            if index.size == 0:
                index = index.astype(np.int64)
        landmarks = self.landmarks[index] if self.landmarks is not None else None
        return Detections(self.boxes[index], self.scores[index], landmarks)

    def __iter__(self) -> Iterator[Face]:
        """The faces one by one, in the detector's (descending score) order."""
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        points = "with" if self.landmarks is not None else "without"
        best = f", best score {float(self.scores.max()):.3f}" if len(self) else ""
        return f"Detections({count_noun(len(self), 'face')} {points} landmarks{best})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        same_points = (self.landmarks is None) == (other.landmarks is None) and (
            self.landmarks is None or np.array_equal(self.landmarks, other.landmarks)
        )
        return np.array_equal(self.boxes, other.boxes) and np.array_equal(self.scores, other.scores) and same_points

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return ``(boxes [N,4], scores [N], landmarks [N,5,2] or None)``."""
        return self.boxes, self.scores, self.landmarks

    @classmethod
    def from_torch(cls, boxes: Tensor, scores: Tensor, landmarks: Tensor | None = None) -> Detections:
        """Detections from tensors on any device (copied to host memory as float32)."""
        return cls(_float32(boxes), _float32(scores), _float32(landmarks) if landmarks is not None else None)

    def to_torch(
        self, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(boxes, scores, landmarks or None)`` as float32 tensors on ``device``."""
        import torch

        landmarks = torch.from_numpy(self.landmarks).to(device) if self.landmarks is not None else None
        return torch.from_numpy(self.boxes).to(device), torch.from_numpy(self.scores).to(device), landmarks

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        """JSON-ready form: ``{"faces": [{"box": [x1,y1,x2,y2], "score": s, "landmarks": [[x,y]*5]}]}``
        (pixel values rounded to ``decimals``, scores to 5 decimals; ``landmarks`` only for models
        that predict them)."""
        return {"faces": [face.to_dict(decimals) for face in self]}

    def to_json(self, decimals: int = 2, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(decimals), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Detections:
        """Inverse of :meth:`to_dict`."""
        faces = data.get("faces", [])
        boxes = np.asarray([f["box"] for f in faces], dtype=np.float32).reshape(-1, 4)
        scores = np.asarray([f["score"] for f in faces], dtype=np.float32).reshape(-1)
        with_landmarks = len(faces) > 0 and all("landmarks" in f for f in faces)
        landmarks = np.asarray([f["landmarks"] for f in faces], dtype=np.float32).reshape(-1, 5, 2) if with_landmarks else None
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
        image_hw: ``(height, width)`` of the image itself, when a batch pads it bottom/right to a
            larger input (criteria with a border rule, SHF's, need it); None = the whole input.
    """

    boxes: Tensor
    landmarks: Tensor
    landmark_valid: Tensor
    ignore: Tensor | None = None
    image_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _check_shape("boxes", self.boxes, (None, 4))
        _check_shape("landmarks", self.landmarks, (self.boxes.shape[0], 5, 2))
        _check_shape("landmark_valid", self.landmark_valid, (self.boxes.shape[0], 5))
        import torch  # lazily: structures.py is imported by the torch-free detection path

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
        import torch

        num = boxes.shape[0]
        no_points = torch.zeros((num, 5), dtype=torch.bool, device=boxes.device)
        return cls(boxes, boxes.new_zeros((num, 5, 2)), no_points, ignore)

    def to(self, device: torch.device | str) -> FaceTargets:
        ignore = self.ignore.to(device) if self.ignore is not None else None
        return FaceTargets(
            self.boxes.to(device), self.landmarks.to(device), self.landmark_valid.to(device), ignore, self.image_hw
        )
