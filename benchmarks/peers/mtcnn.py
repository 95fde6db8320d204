"""MTCNN (Zhang et al. 2016) as shipped by facenet-pytorch 2.6.0, re-implemented for the benchmark.

facenet-pytorch pins an old torch, so its pipeline is re-implemented here from its documented
behaviour and loads the wheel's own ``pnet.pt`` / ``rnet.pt`` / ``onet.pt`` state dicts unchanged
(same module names). Defaults are facenet-pytorch's: ``min_face_size=20``, thresholds
``(0.6, 0.7, 0.7)``, pyramid factor ``0.709``. Pipeline:

1. image pyramid, scales ``12 / min_face_size * factor**k`` while the short side stays >= 12 px;
   each level resized with area interpolation to ``int(side * scale + 1)``, normalised
   ``(x - 127.5) / 128``; P-Net proposals (stride 2, 12 px cells) above threshold 1, NMS 0.5 per
   scale, then NMS 0.7 over all scales, box regression, squared boxes;
2. R-Net on 24x24 area-resized crops (threshold 2, NMS 0.7, regression, squared);
3. O-Net on 48x48 crops (threshold 3, landmarks from the pre-regression boxes, regression, then a
   numpy NMS 0.7 with the "Min" overlap ``inter / min(area_i, area_j)`` and "+1" areas), giving
   boxes, probabilities and 5 landmarks. Stages 1 and 2 use torchvision's (IoU) NMS.

Coordinates follow the MATLAB 1-based conventions of the original code (crops ``[y - 1, ey)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, 3, H, W]`` -> regressions ``[B, 4, h, w]``, face probability ``[B, h, w]``."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, 3, 24, 24]`` -> regressions ``[B, 4]``, probability ``[B]``."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # (B, C, H, W) -> (B, W, H, C) -> (B, W*H*C): the flattening order of the converted Caffe weights
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, 3, 48, 48]`` -> regressions ``[B, 4]``, landmarks ``[B, 10]``, probability ``[B]``."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        # (B, C, H, W) -> (B, W, H, C) -> (B, W*H*C)
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)[:, 1]


def _normalise(x: Tensor) -> Tensor:
    return (x - 127.5) * 0.0078125


def _square(boxes: Tensor) -> Tensor:
    """Grow ``[N, 4+]`` boxes to squares around their centres (``rerec``)."""
    boxes = boxes.clone()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _regress(boxes: Tensor, reg: Tensor) -> Tensor:
    """Apply ``[N, 4]`` regressions in units of the (+1) box size (``bbreg``)."""
    boxes = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0:4] = boxes[:, 0:4] + reg[:, 0:4] * torch.stack([w, h, w, h], dim=1)
    return boxes


def _crops(image: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Area-resized ``[N, 3, size, size]`` crops of ``image [3, H, W]`` at integer 1-based boxes,
    clipped to the image (``pad`` + the crop of the original code)."""
    height, width = image.shape[1:]
    x1 = boxes[:, 0].int().clamp(min=1)
    y1 = boxes[:, 1].int().clamp(min=1)
    x2 = boxes[:, 2].int().clamp(max=width)
    y2 = boxes[:, 3].int().clamp(max=height)
    crops = []
    for a, b, c, d in zip(x1.tolist(), y1.tolist(), x2.tolist(), y2.tolist()):
        if d > b - 1 and c > a - 1:
            crops.append(F.interpolate(image[None, :, b - 1 : d, a - 1 : c], size=(size, size), mode="area"))
    return torch.cat(crops) if crops else image.new_zeros((0, 3, size, size))


class MTCNN:
    """Three-stage MTCNN cascade on BGR images.

    Args:
        weights_dir: folder with facenet-pytorch's ``pnet.pt``, ``rnet.pt``, ``onet.pt``.
        min_face_size: smallest face searched, in pixels.
        thresholds: P-, R- and O-Net probability thresholds.
        factor: pyramid scale step.
    """

    def __init__(
        self,
        weights_dir: str | Path,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        weights_dir = Path(weights_dir)
        self.pnet, self.rnet, self.onet = PNet().eval(), RNet().eval(), ONet().eval()
        for net, name in ((self.pnet, "pnet"), (self.rnet, "rnet"), (self.onet, "onet")):
            net.load_state_dict(torch.load(weights_dir / f"{name}.pt", map_location="cpu", weights_only=True))
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor

    @torch.inference_mode()
    def detect(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BGR uint8 ``H x W x 3`` -> (``[N, 5]`` x1, y1, x2, y2, probability; ``[N, 5, 2]`` landmarks)."""
        # (H, W, 3) BGR -> (3, H, W) RGB float, as facenet-pytorch feeds PIL/RGB images
        image = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float()
        boxes = self._propose(image)
        if len(boxes):
            boxes = self._refine(image, boxes)
        if len(boxes):
            return self._output(image, boxes)
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)

    def _scales(self, height: int, width: int) -> list[float]:
        scale = 12.0 / self.min_face_size
        short = min(height, width) * scale
        scales = []
        while short >= 12:
            scales.append(scale)
            scale *= self.factor
            short *= self.factor
        return scales

    def _propose(self, image: Tensor) -> Tensor:
        """Stage 1: ``[N, 9]`` (x1, y1, x2, y2, score, 4 regressions) squared proposals."""
        height, width = image.shape[1:]
        per_scale = []
        for scale in self._scales(height, width):
            level = F.interpolate(image[None], size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
            reg, prob = self.pnet(_normalise(level))
            mask = prob[0] >= self.thresholds[0]
            # (row, col) -> (x, y) cell positions
            cells = mask.nonzero().float().flip(1)
            top_left = ((2 * cells + 1) / scale).floor()
            bottom_right = ((2 * cells + 12) / scale).floor()
            # (4, h, w)[:, mask] -> (K, 4)
            candidates = torch.cat([top_left, bottom_right, prob[0][mask][:, None], reg[0][:, mask].t()], dim=1)
            keep = torchvision.ops.nms(candidates[:, :4], candidates[:, 4], 0.5)
            per_scale.append(candidates[keep])
        if not per_scale:
            return image.new_zeros((0, 9))
        boxes = torch.cat(per_scale)
        boxes = boxes[torchvision.ops.nms(boxes[:, :4], boxes[:, 4], 0.7)]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        regressed = boxes[:, :4] + boxes[:, 5:9] * torch.stack([w, h, w, h], dim=1)
        return _square(torch.cat([regressed, boxes[:, 4:5]], dim=1))

    def _refine(self, image: Tensor, boxes: Tensor) -> Tensor:
        """Stage 2: R-Net on 24x24 crops -> ``[M, 5]`` squared boxes."""
        reg, prob = self.rnet(_normalise(_crops(image, boxes, 24)))
        passed = prob > self.thresholds[1]
        boxes = torch.cat([boxes[passed, :4], prob[passed, None]], dim=1)
        reg = reg[passed]
        if not len(boxes):
            return boxes
        keep = torchvision.ops.nms(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(_regress(boxes[keep], reg[keep]))

    def _output(self, image: Tensor, boxes: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: O-Net on 48x48 crops -> final boxes and landmarks."""
        reg, points, prob = self.onet(_normalise(_crops(image, boxes, 48)))
        passed = prob > self.thresholds[2]
        boxes = torch.cat([boxes[passed, :4], prob[passed, None]], dim=1)
        reg, points = reg[passed], points[passed]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        # (N, 10) = 5 x then 5 y -> (N, 5, 2)
        landmarks = torch.stack([w * points[:, :5] + boxes[:, 0:1] - 1, h * points[:, 5:] + boxes[:, 1:2] - 1], dim=2)
        boxes = _regress(boxes, reg).numpy()
        keep = nms_min(boxes, 0.7)
        return boxes[keep].astype(np.float32), landmarks.numpy()[keep].astype(np.float32)


def nms_min(dets: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS on ``[N, 5]`` (x1, y1, x2, y2, score) with overlap ``inter / min(area)``, "+1" areas."""
    x1, y1, x2, y2 = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = dets[:, 4].argsort()[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = w * h / np.minimum(areas[i], areas[rest])
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)
