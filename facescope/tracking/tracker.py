"""A ByteTrack-style multi-face tracker (Zhang et al., ECCV 2022), numpy only.

Per frame (:meth:`FaceTracker.update`):

1. detections are split by score: *high* (``>= high_thresh``) and *low* (``low_thresh`` <= score
   < ``high_thresh``); every track's box is predicted by its constant-velocity Kalman filter
   (:mod:`facescope.tracking.kalman`);
2. high detections are matched to the confirmed and lost tracks by IoU (minimum-cost assignment,
   pairs under ``first_min_iou`` refused); a matched lost track comes back with its old ID;
3. low detections are matched to the confirmed tracks still unmatched (``second_min_iou``): this
   keeps a partly occluded, low-scored face on its track. Confirmed tracks left unmatched become
   *lost*;
4. tentative tracks are matched to the high detections left (``tentative_min_iou``); a tentative
   track that misses a frame is dropped, one matched ``confirm_hits`` frames in a row is confirmed;
5. high detections still unmatched with ``score >= new_track_thresh`` start tentative tracks
   (confirmed at once on the tracker's first frame);
6. lost tracks unseen for more than ``track_buffer`` processed frames are removed for good.

The result of a frame holds the confirmed tracks matched in that frame, with the matched
detection's box, score and landmarks (landmarks travel with their track), optionally smoothed
over time (``smoothing``: an exponential moving average of box and landmarks).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facescope.errors import FacescopeError
from facescope.structures import Detections
from facescope.tracking import kalman
from facescope.tracking.association import assign, iou_matrix


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`FaceTracker` (defaults: ByteTrack's public code; thresholds are detector scores).

    Attributes:
        high_thresh: detections at or above it take part in the first association.
        low_thresh: detections below it are ignored; those between it and ``high_thresh`` only
            keep existing confirmed tracks alive (second association). The detector's own score
            threshold must be at most this for the second association to see any.
        new_track_thresh: an unmatched high detection starts a track only from this score on.
        first_min_iou: least IoU of a high detection with a confirmed or lost track's prediction.
        second_min_iou: least IoU of a low detection with a confirmed track's prediction.
        tentative_min_iou: least IoU of a high detection with a tentative track.
        track_buffer: processed frames a lost track is kept before its ID is retired.
        confirm_hits: consecutive matched frames that confirm a new track (1: at once).
        smoothing: weight of the previous value in the moving average of reported boxes and
            landmarks; 0 reports each frame's detection as it is.
    """

    high_thresh: float = 0.5
    low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    first_min_iou: float = 0.2
    second_min_iou: float = 0.5
    tentative_min_iou: float = 0.3
    track_buffer: int = 30
    confirm_hits: int = 2
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        for name in ("high_thresh", "low_thresh", "new_track_thresh", "first_min_iou", "second_min_iou", "tentative_min_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise FacescopeError(f"tracker {name} must be in [0, 1], got {value}")
        if self.low_thresh > self.high_thresh:
            raise FacescopeError(f"tracker low_thresh {self.low_thresh} is above high_thresh {self.high_thresh}")
        if self.track_buffer < 0:
            raise FacescopeError(f"tracker track_buffer must be >= 0 frames, got {self.track_buffer}")
        if self.confirm_hits < 1:
            raise FacescopeError(f"tracker confirm_hits must be >= 1, got {self.confirm_hits}")
        if not 0.0 <= self.smoothing < 1.0:
            raise FacescopeError(f"tracker smoothing must be in [0, 1), got {self.smoothing}")


class TrackState(enum.Enum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


@dataclass
class Track:
    """One face over time: Kalman state, the last matched detection and its (smoothed) output."""

    track_id: int
    state: TrackState
    mean: np.ndarray  # [8]
    covariance: np.ndarray  # [8, 8]
    last_frame: int
    hits: int
    score: float
    box: np.ndarray  # [4], reported (smoothed) box
    landmarks: np.ndarray | None  # [5, 2], reported (smoothed) landmarks
    matched: bool = field(default=False)


@dataclass(frozen=True)
class TrackedFaces:
    """The faces of one frame with their track IDs.

    Attributes:
        detections: boxes ``[N, 4]``, scores ``[N]``, landmarks ``[N, 5, 2]`` or None (sorted by score).
        track_ids: ``[N]`` int64, stable over frames for one face.
    """

    detections: Detections
    track_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.detections)

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        """``{"faces": [{"track_id": i, "box": ..., "score": ..., "landmarks": ...}]}``."""
        faces = self.detections.to_dict(decimals)["faces"]
        return {"faces": [{"track_id": int(i), **face} for i, face in zip(self.track_ids, faces)]}


class FaceTracker:
    """ByteTrack-style association of per-frame detections into tracks with stable IDs.

    Example:
        >>> tracker = FaceTracker(TrackerConfig(confirm_hits=1))
        >>> tracker.update(Detections([[10, 10, 50, 50]], [0.9])).track_ids
        array([1])
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self.frame = 0
        self._next_id = 1

    def update(self, detections: Detections) -> TrackedFaces:
        """Associate one frame's detections; returns the confirmed tracks matched in this frame."""
        cfg = self.config
        self.frame += 1
        boxes, scores = detections.boxes.astype(np.float64), detections.scores
        landmarks = detections.landmarks
        self._predict()
        for track in self.tracks:
            track.matched = False
        high = np.flatnonzero(scores >= cfg.high_thresh)
        low = np.flatnonzero((scores >= cfg.low_thresh) & (scores < cfg.high_thresh))

        active = [t for t in self.tracks if t.state in (TrackState.CONFIRMED, TrackState.LOST)]
        high_left = self._match(active, high, boxes, scores, landmarks, cfg.first_min_iou)
        still_confirmed = [t for t in active if not t.matched and t.state is TrackState.CONFIRMED]
        self._match(still_confirmed, low, boxes, scores, landmarks, cfg.second_min_iou)
        tentative = [t for t in self.tracks if t.state is TrackState.TENTATIVE]
        high_left = self._match(tentative, high_left, boxes, scores, landmarks, cfg.tentative_min_iou)

        self._age_unmatched()
        for index in high_left:
            if scores[index] >= cfg.new_track_thresh:
                self._start_track(boxes[index], float(scores[index]), None if landmarks is None else landmarks[index])
        return self._report(with_landmarks=landmarks is not None)

    # ------------------------------------------------------------------ steps

    def _predict(self) -> None:
        if not self.tracks:
            return
        mean = np.stack([t.mean for t in self.tracks])
        covariance = np.stack([t.covariance for t in self.tracks])
        lost = np.array([t.state is TrackState.LOST for t in self.tracks])
        mean[lost, 7] = 0.0  # a lost face's height stops changing (ByteTrack does the same)
        mean, covariance = kalman.predict(mean, covariance)
        for track, m, c in zip(self.tracks, mean, covariance):
            track.mean, track.covariance = m, c

    def _match(
        self,
        tracks: list[Track],
        candidates: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        landmarks: np.ndarray | None,
        min_iou: float,
    ) -> np.ndarray:
        """Match ``tracks`` to the detections ``candidates`` (indices); update the matched
        tracks; return the candidates left unmatched."""
        if not tracks or len(candidates) == 0:
            return candidates
        predicted = kalman.measurements_to_boxes(np.stack([t.mean for t in tracks]))
        cost = 1.0 - iou_matrix(predicted, boxes[candidates])
        pairs, _, free = assign(cost, 1.0 - min_iou)
        if len(pairs):
            matched = [tracks[i] for i in pairs[:, 0]]
            chosen = candidates[pairs[:, 1]]
            mean, covariance = kalman.update(
                np.stack([t.mean for t in matched]), np.stack([t.covariance for t in matched]),
                kalman.boxes_to_measurements(boxes[chosen]),
            )  # fmt: skip
            for track, m, c, index in zip(matched, mean, covariance, chosen):
                track.mean, track.covariance = m, c
                self._observe(track, boxes[index], float(scores[index]), None if landmarks is None else landmarks[index])
        return candidates[free]

    def _observe(self, track: Track, box: np.ndarray, score: float, landmarks: np.ndarray | None) -> None:
        """Record a matched detection: state, hit count, the reported (smoothed) box and landmarks."""
        fresh = track.state is TrackState.LOST or track.last_frame != self.frame - 1  # after a gap, no stale average
        alpha = 0.0 if fresh else self.config.smoothing
        track.box = alpha * track.box + (1 - alpha) * box
        if landmarks is not None:
            track.landmarks = landmarks.astype(np.float64) if track.landmarks is None or fresh else alpha * track.landmarks + (1 - alpha) * landmarks
        track.score, track.last_frame, track.matched = score, self.frame, True
        track.hits = track.hits + 1 if track.state is TrackState.TENTATIVE else track.hits
        if track.state is TrackState.LOST or (track.state is TrackState.TENTATIVE and track.hits >= self.config.confirm_hits):
            track.state = TrackState.CONFIRMED

    def _age_unmatched(self) -> None:
        """Unmatched confirmed tracks become lost; unmatched tentative tracks and lost tracks
        past the buffer are removed."""
        kept = []
        for track in self.tracks:
            if not track.matched:
                if track.state is TrackState.TENTATIVE:
                    continue
                track.state = TrackState.LOST
                if self.frame - track.last_frame > self.config.track_buffer:
                    continue
            kept.append(track)
        self.tracks = kept

    def _start_track(self, box: np.ndarray, score: float, landmarks: np.ndarray | None) -> None:
        mean, covariance = kalman.initiate(kalman.boxes_to_measurements(box[None]))
        confirmed = self.frame == 1 or self.config.confirm_hits <= 1
        self.tracks.append(
            Track(
                track_id=self._next_id, state=TrackState.CONFIRMED if confirmed else TrackState.TENTATIVE,
                mean=mean[0], covariance=covariance[0], last_frame=self.frame, hits=1, score=score,
                box=box.astype(np.float64), landmarks=None if landmarks is None else landmarks.astype(np.float64),
                matched=True,
            )
        )  # fmt: skip
        self._next_id += 1

    def _report(self, with_landmarks: bool) -> TrackedFaces:
        shown = [t for t in self.tracks if t.matched and t.state is TrackState.CONFIRMED]
        shown.sort(key=lambda t: -t.score)
        if not shown:
            return TrackedFaces(Detections.empty(with_landmarks), np.zeros((0,), dtype=np.int64))
        landmarks = np.stack([t.landmarks for t in shown]) if with_landmarks and all(t.landmarks is not None for t in shown) else None
        detections = Detections(np.stack([t.box for t in shown]), [t.score for t in shown], landmarks)
        return TrackedFaces(detections, np.array([t.track_id for t in shown], dtype=np.int64))
