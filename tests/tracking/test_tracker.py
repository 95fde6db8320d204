"""The ByteTrack-style tracker, its Kalman filter and its assignment against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from facescope.errors import FacescopeError
from facescope.structures import Detections
from facescope.tracking import FaceTracker, TrackerConfig, TrackState
from facescope.tracking import kalman
from facescope.tracking.association import assign, iou_matrix


def dets(boxes, scores, landmarks=None) -> Detections:
    return Detections(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(scores, dtype=np.float32), landmarks)


def test_iou_matrix_by_hand():
    iou = iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[50 / 150, 1.0, 0.0]])


def test_assign_refuses_pairs_above_the_limit_and_matches_scipy():
    cost = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])
    pairs, rows, cols = assign(cost, 0.6)
    assert pairs.tolist() == [[0, 0], [1, 1]] and rows.tolist() == [2] and cols.tolist() == []
    pairs, rows, cols = assign(np.array([[0.7, 0.9]]), 0.6)  # the only pair is too costly: nothing forced
    assert pairs.shape == (0, 2) and rows.tolist() == [0] and cols.tolist() == [0, 1]
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    for _ in range(50):
        cost = rng.random((rng.integers(1, 7), rng.integers(1, 7)))
        pairs, _, _ = assign(cost, 1.0)  # no limit: the optimum of the rectangular problem
        r, c = linear_sum_assignment(cost)
        assert cost[pairs[:, 0], pairs[:, 1]].sum() == pytest.approx(cost[r, c].sum())


def test_kalman_initiate_predict_update_by_hand():
    measurement = kalman.boxes_to_measurements(np.array([[50.0, 0.0, 150.0, 100.0]]))
    np.testing.assert_allclose(measurement, [[100, 50, 1, 100]])
    mean, cov = kalman.initiate(measurement)
    # position std 2 * 100 / 20 = 10, velocity std 10 * 100 / 160 = 6.25
    np.testing.assert_allclose(np.diag(cov[0])[[0, 3, 4, 7]], [100, 100, 39.0625, 39.0625])
    mean[0, 4] = 3.0  # moving right 3 px per frame
    mean, cov = kalman.predict(mean, cov)
    assert mean[0, 0] == pytest.approx(103.0)
    # P00 = 100 + 39.0625 (velocity) + (100 / 20)^2 (process noise)
    assert cov[0, 0, 0] == pytest.approx(164.0625)
    assert cov[0, 0, 4] == pytest.approx(39.0625)
    updated, new_cov = kalman.update(mean, cov, np.array([[113.0, 50.0, 1.0, 100.0]]))
    gain = 164.0625 / (164.0625 + 25.0)  # measurement noise (100 / 20)^2
    assert updated[0, 0] == pytest.approx(103.0 + gain * 10.0)
    assert new_cov[0, 0, 0] == pytest.approx((1 - gain) * 164.0625)
    np.testing.assert_allclose(kalman.measurements_to_boxes(updated)[0, [1, 3]], [0, 100])


def test_a_static_face_keeps_its_id_and_the_first_frame_confirms_at_once():
    tracker = FaceTracker()
    ids = [tracker.update(dets([[10, 10, 60, 70]], [0.9])).track_ids.tolist() for _ in range(5)]
    assert ids == [[1]] * 5


def test_new_tracks_are_tentative_until_confirm_hits_and_dropped_after_one_miss():
    tracker = FaceTracker(TrackerConfig(confirm_hits=2))
    tracker.update(dets([[0, 0, 10, 10]], [0.9]))  # first frame: confirmed at once (track 1)
    face = [100, 100, 150, 160]
    out = tracker.update(dets([[0, 0, 10, 10], face], [0.9, 0.9]))
    assert out.track_ids.tolist() == [1]  # the newcomer (track 2) is tentative, not reported
    assert [t.state for t in tracker.tracks] == [TrackState.CONFIRMED, TrackState.TENTATIVE]
    out = tracker.update(dets([[0, 0, 10, 10], face], [0.9, 0.9]))
    assert sorted(out.track_ids.tolist()) == [1, 2]
    tracker.update(dets([[0, 0, 10, 10], [300, 300, 340, 350]], [0.9, 0.9]))  # a one-frame blip (track 3)
    tracker.update(dets([[0, 0, 10, 10]], [0.9]))
    assert 3 not in [t.track_id for t in tracker.tracks]  # tentative, missed once: gone


def test_low_scores_keep_a_track_alive_but_never_start_one():
    tracker = FaceTracker()
    tracker.update(dets([[10, 10, 60, 70]], [0.9]))
    out = tracker.update(dets([[12, 10, 62, 70], [200, 200, 250, 260]], [0.3, 0.3]))  # occluded: a low score
    assert out.track_ids.tolist() == [1] and out.detections.scores.tolist() == pytest.approx([0.3])
    assert len(tracker.tracks) == 1  # the lone low-scored box started nothing
    out = tracker.update(dets([[12, 10, 62, 70]], [0.05]))  # below low_thresh: ignored, the track is lost
    assert len(out) == 0 and tracker.tracks[0].state is TrackState.LOST


@pytest.mark.parametrize("hidden,same_id", [(30, True), (31, False)])
def test_a_lost_face_keeps_its_id_for_track_buffer_frames(hidden, same_id):
    tracker = FaceTracker(TrackerConfig(track_buffer=30))
    box = np.array([100.0, 100.0, 160.0, 170.0])
    for t in range(10):  # moving 2 px per frame
        assert tracker.update(dets([box + [2 * t, 0, 2 * t, 0]], [0.9])).track_ids.tolist() == [1]
    for _ in range(hidden):
        tracker.update(Detections.empty())
    t = 10 + hidden  # comes back where the constant velocity put it
    out = tracker.update(dets([box + [2 * t, 0, 2 * t, 0]], [0.9]))
    if same_id:
        assert out.track_ids.tolist() == [1]
    else:  # retired: a new, tentative track that is not reported yet
        assert len(out) == 0 and [t.track_id for t in tracker.tracks] == [2]


def test_two_faces_crossing_keep_their_ids_by_motion():
    tracker = FaceTracker()
    for t in range(12):  # A moves right, B moves left at the same height; they pass through each other
        a, b = [10 + 10 * t, 0, 60 + 10 * t, 60], [120 - 10 * t, 0, 170 - 10 * t, 60]
        out = tracker.update(dets([a, b], [0.9, 0.8]))
        by_x = dict(zip(out.track_ids.tolist(), out.detections.boxes[:, 0].tolist()))
        if t != 5 and t != 6:  # (at 5/6 they overlap almost fully)
            assert by_x[1] == pytest.approx(a[0]) and by_x[2] == pytest.approx(b[0])


def test_smoothing_averages_boxes_and_landmarks_and_landmarks_travel_with_the_track():
    tracker = FaceTracker(TrackerConfig(smoothing=0.5))
    marks = np.zeros((1, 5, 2), np.float32)
    tracker.update(dets([[0, 0, 100, 100]], [0.9], marks))
    out = tracker.update(dets([[10, 0, 110, 100]], [0.9], marks + 10))
    np.testing.assert_allclose(out.detections.boxes[0], [5, 0, 105, 100])  # 0.5 * 0 + 0.5 * 10
    np.testing.assert_allclose(out.detections.landmarks[0], np.full((5, 2), 5.0))
    record = out.to_dict()["faces"][0]
    assert record["track_id"] == 1 and record["box"] == [5.0, 0.0, 105.0, 100.0] and len(record["landmarks"]) == 5


def test_models_without_landmarks_track_too():
    out = FaceTracker().update(dets([[0, 0, 10, 10]], [0.9]))
    assert out.detections.landmarks is None and "landmarks" not in out.to_dict()["faces"][0]


@pytest.mark.parametrize(
    "kwargs,message",
    [({"high_thresh": 1.5}, "high_thresh must be in"), ({"low_thresh": 0.6}, "above high_thresh"),
     ({"track_buffer": -1}, "track_buffer"), ({"confirm_hits": 0}, "confirm_hits"), ({"smoothing": 1.0}, "smoothing")],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(FacescopeError, match=message):
        TrackerConfig(**kwargs)
