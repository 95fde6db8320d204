"""candidates -> merge: hand-computed NMS in numpy, and the numpy and torch back-ends giving the same
faces in the same order (on random predictions here, on WIDER images in test_postprocess_parity)."""

import numpy as np
import pytest
import torch

from facescope.inference.postprocess import Candidates, candidates, merge, postprocess
from facescope.ops.nms import nms_numpy
from facescope.models.spec import PostprocessSettings
from facescope.ops.anchors import AnchorGenerator
from facescope.ops.boxes import nms
from facescope.ops.coders import DistanceCoder


def test_numpy_nms_by_hand_with_both_area_conventions():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.9], dtype=np.float32)
    # continuous: IoU(0, 1) = 90 / 110 = 0.818; the tie 0/3 (IoU 1) keeps the lower index
    assert nms_numpy(boxes, scores, 0.5).tolist() == [0, 2]
    assert nms_numpy(boxes, scores, 0.85).tolist() == [0, 1, 2]
    # +1 areas: IoU(0, 1) = 110 / 132 = 0.833 (0.82 < 0.833 suppresses, 0.84 does not)
    assert nms_numpy(boxes, scores, 0.82, pixel_offset=1.0).tolist() == [0, 2]
    assert nms_numpy(boxes, scores, 0.84, pixel_offset=1.0).tolist() == [0, 1, 2]


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_numpy_and_torchvision_nms_agree_on_random_crowds(offset):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, size=(600, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, size=(600, 2)).astype(np.float32)], axis=1)
    scores = np.round(rng.uniform(0, 1, size=600), 2).astype(np.float32)  # many ties
    for thresh in (0.3, 0.4, 0.45):
        expected = nms(torch.from_numpy(boxes), torch.from_numpy(scores), thresh, offset).numpy()
        assert nms_numpy(boxes, scores, thresh, offset).tolist() == expected.tolist()


def test_candidates_threshold_top_k_and_merge_in_both_back_ends():
    gen = AnchorGenerator((8, 16, 32), ((16, 32), (64, 128), (256, 512)))
    rng = np.random.default_rng(1)
    n = len(gen.grid((64, 96)))
    scores = rng.uniform(0, 1, size=(2, n)).astype(np.float32)
    box_regs = rng.uniform(0.5, 3, size=(2, n, 4)).astype(np.float32)
    landmark_regs = rng.normal(size=(2, n, 10)).astype(np.float32)
    settings = PostprocessSettings(score_thresh=0.3, nms_thresh=0.4, pre_nms_top_k=100, max_detections=20)
    found = candidates(scores[0], box_regs[0], landmark_regs[0], gen.grid((64, 96)), DistanceCoder(), settings)
    assert len(found) == 100 and found.scores.min() >= np.sort(scores[0][scores[0] >= 0.3])[-100]

    class Preds:
        def __init__(self, s, b, lm):
            self.scores, self.box_regs, self.landmark_regs = s, b, lm

    as_numpy = postprocess(Preds(scores, box_regs, landmark_regs), (64, 96), gen, DistanceCoder(), settings)
    as_torch = postprocess(Preds(*map(torch.from_numpy, (scores, box_regs, landmark_regs))), (64, 96), gen, DistanceCoder(), settings)
    for a, b in zip(as_numpy, as_torch):
        assert len(a) == 20 and np.all(np.diff(a.scores) <= 0)
        assert np.array_equal(a.scores, b.scores)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-4)


def test_merge_of_several_passes_suppresses_across_passes():
    one = Candidates(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32))
    two = Candidates(np.array([[0, 0, 10, 11], [50, 50, 60, 60]], np.float32), np.array([0.95, 0.5], np.float32))
    merged = merge([one, two], PostprocessSettings(nms_thresh=0.4, nms_pixel_offset=0.0))
    assert merged.boxes.tolist() == [[0, 0, 10, 11], [50, 50, 60, 60]] and merged.landmarks is None


def test_merge_sends_box_voting_to_ops_voting_in_both_back_ends():
    """Hand-computed: boxes 0 and 1 overlap with "+1" IoU 110 / 132 = 0.833 >= 0.4 and vote into their
    score-weighted mean (weights 0.9, 0.6) with the top score; box 2 is a cluster of one."""
    from facescope.inference.tta import MergeSpec

    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.9, 0.6, 0.8], dtype=np.float32)
    landmarks = np.stack([np.full((5, 2), v, dtype=np.float32) for v in (2.0, 4.0, 55.0)])
    settings = PostprocessSettings(max_detections=None)
    voted = [[0.4, 0.0, 10.4, 10.0], [50, 50, 60, 60]]
    for to_array in (np.asarray, torch.from_numpy):
        passes = [Candidates(to_array(boxes[:2]), to_array(scores[:2]), to_array(landmarks[:2])),
                  Candidates(to_array(boxes[2:]), to_array(scores[2:]), to_array(landmarks[2:]))]
        kept = merge(passes, settings, MergeSpec("box_voting", iou=0.4, singleton="keep"))
        np.testing.assert_allclose(kept.boxes, voted, rtol=0, atol=1e-5)
        np.testing.assert_allclose(kept.scores, [0.9, 0.8], rtol=0, atol=1e-7)
        np.testing.assert_allclose(kept.landmarks[:, 0, 0], [(0.9 * 2 + 0.6 * 4) / 1.5, 55.0], rtol=0, atol=1e-5)
        dropped = merge(passes, settings, MergeSpec("box_voting", iou=0.4, singleton="drop"))
        np.testing.assert_allclose(dropped.boxes, voted[:1], rtol=0, atol=1e-5)
        capped = merge(passes, PostprocessSettings(max_detections=1), MergeSpec("box_voting", iou=0.4, singleton="keep"))
        assert len(capped) == 1
        # NMS named by the spec uses the spec's IoU, not the settings': 0.833 > 0.8 suppresses box 1
        nms_kept = merge(passes, PostprocessSettings(nms_thresh=0.9), MergeSpec("nms", iou=0.8))
        np.testing.assert_array_equal(nms_kept.boxes, boxes[[0, 2]])
