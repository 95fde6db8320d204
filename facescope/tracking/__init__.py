"""Face tracking over video frames (numpy and ``lap`` only, no torch): a ByteTrack-style tracker."""

from facescope.tracking.tracker import FaceTracker, TrackedFaces, TrackerConfig, TrackState

__all__ = ["FaceTracker", "TrackState", "TrackedFaces", "TrackerConfig"]
