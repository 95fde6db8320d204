"""The benchmark's peer re-implementations: hand-computed post-processing and real-weight smoke checks."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `benchmarks/` lives at the repo root, outside the package

from benchmarks.peers.blazeface import ssd_anchors, weighted_nms  # noqa: E402
from benchmarks.peers.mtcnn import MTCNN, nms_min  # noqa: E402


def test_mtcnn_min_overlap_nms_by_hand():
    # box 1 lies inside box 0: IoU is small (0.25) but inter / min(area) = 1 -> suppressed
    dets = np.array([[0, 0, 19, 19, 0.9], [5, 5, 14, 14, 0.8], [40, 40, 49, 49, 0.7]], np.float32)
    assert nms_min(dets, 0.7).tolist() == [0, 2]


def test_blazeface_anchors_and_weighted_nms_by_hand():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # stride 8: 16x16 cells with 2 anchors, the first cell centred at (0.5/16, 0.5/16)
    assert np.allclose(anchors[:2], 0.5 / 16) and np.allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    # stride 16: 8x8 cells with 6 anchors
    assert np.allclose(anchors[512:518], 0.5 / 8) and np.allclose(anchors[-1], 7.5 / 8)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.3, 0.5], np.float32)
    kept, kept_scores = weighted_nms(boxes, scores, 0.3)
    # the first cluster blends boxes 0 and 1 with weights 0.9 and 0.3: x1 = 0.3 / 1.2 = 0.25
    assert np.allclose(kept[0], [0.25, 0, 10.25, 10]) and np.allclose(kept_scores, [0.9, 0.5])
    assert np.allclose(kept[1], boxes[2])


@pytest.mark.shared
def test_mtcnn_with_facenet_weights_finds_the_portrait_face(shared_data):
    mtcnn = MTCNN(shared_data / "weights/peers/mtcnn")
    image = cv2.imread(str(shared_data / "images/misc/Tom_Hanks_54745.png"))
    boxes, landmarks = mtcnn.detect(image)
    assert len(boxes) == 1 and boxes[0, 4] > 0.99
    x1, y1, x2, y2 = boxes[0, :4]
    assert 0.4 < (x2 - x1) / image.shape[1] < 1.0  # a face filling most of the crop
    # eyes above the mouth corners, left eye left of the right eye, all inside the box
    assert landmarks[0, 0, 0] < landmarks[0, 1, 0] and landmarks[0, :2, 1].max() < landmarks[0, 3:, 1].min()
    assert (landmarks[0, :, 0] > x1).all() and (landmarks[0, :, 0] < x2).all()
