"""The Pytorch_Retinaface (biubug6) inference pipeline, re-implemented from its documented behaviour.

A test oracle for facescope's ``retinaface_mnet025`` / ``retinaface_r50`` with the ``official``
presets. It deliberately follows the official structure rather than facescope's:

* the network is built like ``models/retinaface.py``: torchvision's ``IntermediateLayerGetter``
  over a MobileNetV1 (with its ImageNet ``avg``/``fc`` classifier, which the getter drops) or
  torchvision's ResNet-50, then ``FPN``, ``SSH`` x3 and per-level ``ClassHead`` / ``BboxHead`` /
  ``LandmarkHead``; in test phase the class output is softmaxed;
* ``PriorBox``: Python loops over every feature-map cell and min size producing priors normalised
  by the image size (``cx = (j + 0.5) * step / W``);
* ``decode`` / ``decode_landm`` in normalised coordinates, then multiplied by the image size;
* ``py_cpu_nms``: greedy numpy NMS with "+1" areas, keeping boxes with overlap ``<= thresh``;
* the ``test_widerface.py`` flow (original size, float32 BGR minus (104, 117, 123), score > 0.02,
  sort, NMS 0.4; no top-k) or the ``detect.py`` flow (top 5000 before NMS, 750 after).

No code was copied; facescope itself never imports this module.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter

MEAN_BGR = (104, 117, 123)
CONFIGS = {
    "mobilenet0.25": {
        "min_sizes": [[16, 32], [64, 128], [256, 512]],
        "steps": [8, 16, 32],
        "variance": [0.1, 0.2],
        "return_layers": {"stage1": 1, "stage2": 2, "stage3": 3},
        "in_channel": 32,
        "out_channel": 64,
    },
    "Resnet50": {
        "min_sizes": [[16, 32], [64, 128], [256, 512]],
        "steps": [8, 16, 32],
        "variance": [0.1, 0.2],
        "return_layers": {"layer2": 1, "layer3": 2, "layer4": 3},
        "in_channel": 256,
        "out_channel": 256,
    },
}


# --- network (models/net.py, models/retinaface.py) -------------------------------------------


def _conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.LeakyReLU(leaky, inplace=True))


def _conv_bn_no_relu(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup))


def _conv_bn1x1(inp: int, oup: int, stride: int, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 1, stride, 0, bias=False), nn.BatchNorm2d(oup), nn.LeakyReLU(leaky, inplace=True))


def _conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.LeakyReLU(leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(leaky, inplace=True),
    )


class _MobileNetV1(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1), _conv_dw(8, 16, 1), _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1), _conv_dw(32, 64, 2), _conv_dw(64, 64, 1),
        )  # fmt: skip
        self.stage2 = nn.Sequential(
            _conv_dw(64, 128, 2), _conv_dw(128, 128, 1), _conv_dw(128, 128, 1),
            _conv_dw(128, 128, 1), _conv_dw(128, 128, 1), _conv_dw(128, 128, 1),
        )  # fmt: skip
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(256, 1000)


class _FPN(nn.Module):
    def __init__(self, in_channels_list: list[int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = _conv_bn1x1(in_channels_list[0], out_channels, 1, leaky)
        self.output2 = _conv_bn1x1(in_channels_list[1], out_channels, 1, leaky)
        self.output3 = _conv_bn1x1(in_channels_list[2], out_channels, 1, leaky)
        self.merge1 = _conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = _conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, inputs: dict[str, Tensor]) -> list[Tensor]:
        levels = list(inputs.values())
        output1, output2, output3 = self.output1(levels[0]), self.output2(levels[1]), self.output3(levels[2])
        up3 = F.interpolate(output3, size=[output2.size(2), output2.size(3)], mode="nearest")
        output2 = self.merge2(output2 + up3)
        up2 = F.interpolate(output2, size=[output1.size(2), output1.size(3)], mode="nearest")
        output1 = self.merge1(output1 + up2)
        return [output1, output2, output3]


class _SSH(nn.Module):
    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channel <= 64 else 0.0
        self.conv3X3 = _conv_bn_no_relu(in_channel, out_channel // 2, 1)
        self.conv5X5_1 = _conv_bn(in_channel, out_channel // 4, 1, leaky)
        self.conv5X5_2 = _conv_bn_no_relu(out_channel // 4, out_channel // 4, 1)
        self.conv7X7_2 = _conv_bn(out_channel // 4, out_channel // 4, 1, leaky)
        self.conv7x7_3 = _conv_bn_no_relu(out_channel // 4, out_channel // 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        conv3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        conv5 = self.conv5X5_2(c5_1)
        conv7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([conv3, conv5, conv7], dim=1))


class _Head(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(in_channels, num_anchors * per_anchor, kernel_size=1, stride=1, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.per_anchor)


class OfficialRetinaFace(nn.Module):
    """``RetinaFace(cfg, phase='test')``: returns ``(loc [1,N,4], softmaxed conf [1,N,2], landms [1,N,10])``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        cfg = CONFIGS[name]
        backbone = _MobileNetV1() if name == "mobilenet0.25" else torchvision.models.resnet50(weights=None)
        self.body = IntermediateLayerGetter(backbone, cfg["return_layers"])
        in_channel, out_channel = cfg["in_channel"], cfg["out_channel"]
        self.fpn = _FPN([in_channel * 2, in_channel * 4, in_channel * 8], out_channel)
        self.ssh1, self.ssh2, self.ssh3 = (_SSH(out_channel, out_channel) for _ in range(3))
        self.ClassHead = nn.ModuleList(_Head(out_channel, 2, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(out_channel, 2, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(out_channel, 2, 10) for _ in range(3))

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        fpn = self.fpn(self.body(inputs))
        features = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([self.BboxHead[i](f) for i, f in enumerate(features)], dim=1)
        conf = torch.cat([self.ClassHead[i](f) for i, f in enumerate(features)], dim=1)
        landms = torch.cat([self.LandmarkHead[i](f) for i, f in enumerate(features)], dim=1)
        return loc, F.softmax(conf, dim=-1), landms


# --- priors, decoding, NMS (layers/functions/prior_box.py, utils/box_utils.py, py_cpu_nms.py) --


def prior_box(cfg: dict, image_size: tuple[int, int]) -> Tensor:
    """``[N, 4]`` (cx, cy, w, h) normalised by the image size, built cell by cell."""
    feature_maps = [[int(np.ceil(image_size[0] / step)), int(np.ceil(image_size[1] / step))] for step in cfg["steps"]]
    anchors: list[float] = []
    for k, f in enumerate(feature_maps):
        for i, j in product(range(f[0]), range(f[1])):
            for min_size in cfg["min_sizes"][k]:
                s_kx = min_size / image_size[1]
                s_ky = min_size / image_size[0]
                cx = (j + 0.5) * cfg["steps"][k] / image_size[1]
                cy = (i + 0.5) * cfg["steps"][k] / image_size[0]
                anchors += [cx, cy, s_kx, s_ky]
    return torch.Tensor(anchors).view(-1, 4)


def decode(loc: Tensor, priors: Tensor, variances: list[float]) -> Tensor:
    boxes = torch.cat(
        (priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:], priors[:, 2:] * torch.exp(loc[:, 2:] * variances[1])), 1
    )
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def decode_landm(pre: Tensor, priors: Tensor, variances: list[float]) -> Tensor:
    return torch.cat([priors[:, :2] + pre[:, 2 * k : 2 * k + 2] * variances[0] * priors[:, 2:] for k in range(5)], dim=1)


def _descending(scores: np.ndarray, stable_ties: bool) -> np.ndarray:
    """The official ``scores.argsort()[::-1]``; ``stable_ties`` orders exactly equal scores by index."""
    return np.argsort(-scores, kind="stable") if stable_ties else scores.argsort()[::-1]


def py_cpu_nms(dets: np.ndarray, thresh: float, stable_ties: bool = False) -> list[int]:
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = _descending(scores, stable_ties)
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


# --- the inference flow --------------------------------------------------------------------


class PytorchRetinaFaceReference:
    """Official-behaviour detector on an official checkpoint.

    Args:
        name: ``"mobilenet0.25"`` or ``"Resnet50"``.
        weights: the ``.pth`` file (a ``module.`` prefix is removed, as ``remove_prefix`` does).
        flow: ``"test_widerface"`` (no top-k) or ``"detect"`` (top 5000 / keep 750).
        stable_ties: the official code sorts scores with numpy's unstable ``argsort``, so boxes with
            exactly equal scores (common near 1.0 in float32) are visited in an order that depends
            on the numpy build, and NMS may keep a different one of two tied, overlapping boxes.
            True visits ties in prior-index order instead, as facescope does; nothing else changes.
    """

    def __init__(self, name: str, weights: str | Path, flow: str = "test_widerface", stable_ties: bool = False) -> None:
        self.stable_ties = stable_ties
        self.cfg = CONFIGS[name]
        self.net = OfficialRetinaFace(name)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        state = {k.split("module.", 1)[-1] if k.startswith("module.") else k: v for k, v in state.items()}
        self.net.load_state_dict(state, strict=True)
        self.net.eval()
        self.flow = flow

    @torch.no_grad()
    def detect(self, img_raw: np.ndarray, confidence_threshold: float = 0.02, nms_threshold: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
        """BGR uint8 image -> (``[N, 5]`` x1, y1, x2, y2, score; ``[N, 10]`` landmarks) in image pixels."""
        img = np.float32(img_raw)
        im_height, im_width, _ = img.shape
        scale = torch.Tensor([img.shape[1], img.shape[0], img.shape[1], img.shape[0]])
        img -= MEAN_BGR
        tensor = torch.from_numpy(img.transpose(2, 0, 1)).unsqueeze(0)
        loc, conf, landms = self.net(tensor)
        priors = prior_box(self.cfg, (im_height, im_width))
        boxes = (decode(loc.data.squeeze(0), priors, self.cfg["variance"]) * scale).numpy()
        scores = conf.squeeze(0).data.numpy()[:, 1]
        scale_landm = torch.Tensor([img.shape[1], img.shape[0]] * 5)
        landmarks = (decode_landm(landms.data.squeeze(0), priors, self.cfg["variance"]) * scale_landm).numpy()
        inds = np.where(scores > confidence_threshold)[0]
        boxes, landmarks, scores = boxes[inds], landmarks[inds], scores[inds]
        order = _descending(scores, self.stable_ties)
        if self.flow == "detect":
            order = order[:5000]
        boxes, landmarks, scores = boxes[order], landmarks[order], scores[order]
        dets = np.hstack((boxes, scores[:, np.newaxis])).astype(np.float32, copy=False)
        keep = py_cpu_nms(dets, nms_threshold, self.stable_ties)
        dets, landmarks = dets[keep, :], landmarks[keep]
        if self.flow == "detect":
            dets, landmarks = dets[:750, :], landmarks[:750, :]
        return dets, landmarks


# --- training loss (utils/box_utils.py match/encode, layers/modules/multibox_loss.py) -----------


def _point_form(priors: Tensor) -> Tensor:
    return torch.cat((priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2), 1)


def _jaccard(box_a: Tensor, box_b: Tensor) -> Tensor:
    max_xy = torch.min(box_a[:, None, 2:], box_b[None, :, 2:])
    min_xy = torch.max(box_a[:, None, :2], box_b[None, :, :2])
    inter = torch.clamp(max_xy - min_xy, min=0).prod(2)
    area_a = ((box_a[:, 2] - box_a[:, 0]) * (box_a[:, 3] - box_a[:, 1]))[:, None]
    area_b = ((box_b[:, 2] - box_b[:, 0]) * (box_b[:, 3] - box_b[:, 1]))[None, :]
    return inter / (area_a + area_b - inter)


def _match(threshold: float, truths: Tensor, priors: Tensor, variances: list[float], labels: Tensor, landms: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One image: ``(loc_t [N,4], conf_t [N], landm_t [N,10])`` as the port's ``match``."""
    num_priors = priors.shape[0]
    overlaps = _jaccard(truths, _point_form(priors))
    best_prior_overlap, best_prior_idx = overlaps.max(1)
    valid_gt = best_prior_overlap >= 0.2
    if best_prior_idx[valid_gt].shape[0] <= 0:
        return torch.zeros(num_priors, 4), torch.zeros(num_priors, dtype=torch.long), torch.zeros(num_priors, 10)
    best_truth_overlap, best_truth_idx = overlaps.max(0)
    best_truth_overlap.index_fill_(0, best_prior_idx[valid_gt], 2)
    for j in range(best_prior_idx.shape[0]):  # the unfiltered list, as the port
        best_truth_idx[best_prior_idx[j]] = j
    matches = truths[best_truth_idx]
    conf = labels[best_truth_idx].long()
    conf[best_truth_overlap < threshold] = 0
    g_cxcy = ((matches[:, :2] + matches[:, 2:]) / 2 - priors[:, :2]) / (variances[0] * priors[:, 2:])
    g_wh = torch.log((matches[:, 2:] - matches[:, :2]) / priors[:, 2:]) / variances[1]
    points = landms[best_truth_idx].view(num_priors, 5, 2)
    landm = (points - priors[:, None, :2]) / (variances[0] * priors[:, None, 2:])
    return torch.cat([g_cxcy, g_wh], 1), conf, landm.reshape(num_priors, 10)


def multibox_loss(
    predictions: tuple[Tensor, Tensor, Tensor], priors: Tensor, targets: list[Tensor], negpos_ratio: int = 7
) -> tuple[Tensor, Tensor, Tensor]:
    """``MultiBoxLoss(2, 0.35, True, 0, True, 7, 0.35, False)``: returns ``(loss_l, loss_c, loss_landm)``.

    Args:
        predictions: ``(loc [B,N,4], conf logits [B,N,2], landm [B,N,10])``.
        priors: ``[N, 4]`` normalised (cx, cy, w, h).
        targets: per image ``[M, 15]``: normalised x1, y1, x2, y2, 10 landmark values, label (1 or -1).
    """
    loc_data, conf_data, landm_data = predictions
    matched = [_match(0.35, t[:, :4], priors, [0.1, 0.2], t[:, 14], t[:, 4:14]) for t in targets]
    loc_t, conf_t, landm_t = (torch.stack(parts) for parts in zip(*matched))
    pos1 = conf_t > 0
    n1 = max(pos1.long().sum().item(), 1)
    loss_landm = F.smooth_l1_loss(landm_data[pos1], landm_t[pos1], reduction="sum")
    pos = conf_t != 0
    conf_t[pos] = 1
    loss_l = F.smooth_l1_loss(loc_data[pos], loc_t[pos], reduction="sum")
    batch_conf = conf_data.reshape(-1, 2)
    x_max = batch_conf.detach().max()
    lse = torch.log(torch.sum(torch.exp(batch_conf - x_max), 1, keepdim=True)) + x_max
    loss_c = (lse - batch_conf.gather(1, conf_t.view(-1, 1))).detach()
    loss_c[pos.view(-1, 1)] = 0
    loss_c = loss_c.view(conf_t.shape[0], -1)
    _, loss_idx = loss_c.sort(1, descending=True)
    _, idx_rank = loss_idx.sort(1)
    num_pos = pos.long().sum(1, keepdim=True)
    num_neg = torch.clamp(negpos_ratio * num_pos, max=pos.shape[1] - 1)
    neg = idx_rank < num_neg.expand_as(idx_rank)
    selected = (pos | neg)
    loss_c = F.cross_entropy(conf_data[selected].view(-1, 2), conf_t[selected], reduction="sum")
    n = max(num_pos.sum().item(), 1)
    return loss_l / n, loss_c / n, loss_landm / n1
