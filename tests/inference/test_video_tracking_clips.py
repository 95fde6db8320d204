"""Tracking accuracy on clips with exact tracks (made from a shared photo at test time), scored
with py-motmetrics; the tracker works with every backend, landmarks or not, and with TTA."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facescope.inference.detector import Detector
from oracles.video_clips import drift, render, score, t1_clips

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def scene(shared_data):
    """The photo and its reference faces (found once on the still photo, at its own size)."""
    photo = cv2.imread(str(shared_data / "images/crowd/t1.jpg"))
    weights = shared_data / "weights/scrfd/scrfd_500m_kps.onnx"
    faces = Detector("scrfd_500m_kps", weights, threads=1, input_size="original").detect(photo, color_order="bgr").boxes
    assert len(faces) == 6
    return photo, faces, Detector("scrfd_500m_kps", weights, threads=1, score_thresh=0.1)


def run(detector, spec, photo, faces):
    return [(f.faces.detections.boxes, f.faces.track_ids) for f in detector.track(render(spec, photo, faces), fps=25.0)]


@pytest.mark.parametrize("name", ["pan", "zoom", "hidden_30"])
def test_no_identity_switch_on_pans_zooms_and_a_face_hidden_30_frames(scene, name):
    photo, faces, detector = scene
    spec = next(s for s in t1_clips(photo.shape[:2], hidden_frames=30) if s.name == name)
    metrics = score(spec, faces, run(detector, spec, photo, faces))
    assert metrics["num_switches"] == 0
    assert metrics["mota"] >= 0.97 and metrics["idf1"] >= 0.97, metrics


def test_a_hidden_face_returns_with_its_old_id_and_a_retired_one_gets_a_new_id(scene):
    photo, faces, detector = scene
    from facescope.tracking.association import iou_matrix

    def id_of_face0(hidden: int) -> tuple[int, int]:
        spec = drift("h", 20 + hidden + 5, 0.5, 1.0, photo.shape[:2], {0: (20, 19 + hidden)})
        results = run(detector, spec, photo, faces)
        ids = []
        for t in (19, 20 + hidden + 4):
            scale, tx, ty = spec.transforms[t]
            boxes, track_ids = results[t]
            ids.append(int(track_ids[iou_matrix(faces[:1] * scale + [tx, ty, tx, ty], boxes)[0].argmax()]))
        return ids[0], ids[1]

    before, after = id_of_face0(30)
    assert before == after
    before, after = id_of_face0(31)  # one frame past the 30-frame buffer: the ID is retired
    assert after != before


def test_tracking_runs_on_the_torch_backend_and_with_tta(scene, retinaface_mnet_weights):
    photo, faces, _ = scene
    spec = drift("d", 4, 0.5, 2.0, photo.shape[:2], {})
    torch_detector = Detector("retinaface_mnet025", retinaface_mnet_weights, score_thresh=0.1, backend="torch")
    frames = list(torch_detector.track(render(spec, photo, faces), fps=25.0))
    assert [len(f.faces) for f in frames] == [6] * 4 and frames[0].faces.detections.landmarks.shape == (6, 5, 2)
    assert all(sorted(f.faces.track_ids.tolist()) == [1, 2, 3, 4, 5, 6] for f in frames)
    tta = Detector("scrfd_500m_kps", scene[2].weights_path, threads=1, score_thresh=0.1, tta="flip")
    frames = list(tta.track(render(spec, photo, faces), fps=25.0))
    assert all(sorted(f.faces.track_ids.tolist()) == [1, 2, 3, 4, 5, 6] for f in frames)
