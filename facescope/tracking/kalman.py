"""A constant-velocity Kalman filter over face boxes, batched over tracks (numpy only).

The state of a track is ``[cx, cy, a, h, vcx, vcy, va, vh]``: box centre, aspect ratio ``w / h``,
height and their velocities per processed frame. The noise model is ByteTrack's (Zhang et al.
2022, inherited from DeepSORT): position noise proportional to the box height (weight 1/20),
velocity noise 1/160 of the height, the aspect ratio nearly fixed.
"""

from __future__ import annotations

import numpy as np

STATE_DIM = 8
MEASURE_DIM = 4
POSITION_WEIGHT = 1.0 / 20.0
VELOCITY_WEIGHT = 1.0 / 160.0

# x_{t+1} = F x_t: each position component moves by its velocity once per processed frame
TRANSITION = np.eye(STATE_DIM)
TRANSITION[:MEASURE_DIM, MEASURE_DIM:] = np.eye(MEASURE_DIM)
# z = H x: the filter observes the position part only
OBSERVATION = np.eye(MEASURE_DIM, STATE_DIM)


def boxes_to_measurements(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` x1, y1, x2, y2 -> ``[N, 4]`` cx, cy, w / h, h (float64)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width = boxes[:, 2] - boxes[:, 0]
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, width / height, height], axis=1)


def measurements_to_boxes(measurements: np.ndarray) -> np.ndarray:
    """``[N, >=4]`` cx, cy, a, h, ... -> ``[N, 4]`` x1, y1, x2, y2."""
    cx, cy, aspect, height = (measurements[:, i] for i in range(4))
    half_w, half_h = aspect * height / 2, height / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


def _position_std(heights: np.ndarray, aspect_std: float) -> np.ndarray:
    """``[N, 4]`` standard deviations of cx, cy, a, h for boxes of the given heights."""
    h = POSITION_WEIGHT * heights
    return np.stack([h, h, np.full_like(heights, aspect_std), h], axis=1)


def _velocity_std(heights: np.ndarray, aspect_std: float) -> np.ndarray:
    v = VELOCITY_WEIGHT * heights
    return np.stack([v, v, np.full_like(heights, aspect_std), v], axis=1)


def _diagonal(std: np.ndarray) -> np.ndarray:
    """``[N, D]`` standard deviations -> ``[N, D, D]`` diagonal covariances."""
    eye = np.eye(std.shape[1])
    return eye[None] * (std**2)[:, :, None]


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from ``[N, 4]`` measurements: means ``[N, 8]`` (zero velocity) and covariances
    ``[N, 8, 8]`` (twice the position noise, ten times the velocity noise: the first box says
    nothing about motion)."""
    heights = measurements[:, 3]
    mean = np.concatenate([measurements, np.zeros_like(measurements)], axis=1)
    std = np.concatenate([2 * _position_std(heights, 1e-2), 10 * _velocity_std(heights, 1e-5)], axis=1)
    return mean, _diagonal(std)


def predict(mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step ahead for ``[N, 8]`` means and ``[N, 8, 8]`` covariances."""
    if len(mean) == 0:
        return mean, covariance
    heights = mean[:, 3]
    noise = _diagonal(np.concatenate([_position_std(heights, 1e-2), _velocity_std(heights, 1e-5)], axis=1))
    new_mean = mean @ TRANSITION.T
    new_covariance = TRANSITION @ covariance @ TRANSITION.T + noise
    return new_mean, new_covariance


def update(mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``[N, 8]`` means / ``[N, 8, 8]`` covariances with ``[N, 4]`` measurements."""
    if len(mean) == 0:
        return mean, covariance
    measurement_noise = _diagonal(_position_std(mean[:, 3], 1e-1))
    projected_mean = mean @ OBSERVATION.T
    projected_cov = OBSERVATION @ covariance @ OBSERVATION.T + measurement_noise  # S, [N, 4, 4]
    cross = covariance @ OBSERVATION.T  # P H^T, [N, 8, 4]
    # K = P H^T S^-1, solved rather than inverted (S is symmetric): K^T = S^-1 (P H^T)^T
    gain = np.linalg.solve(projected_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = measurements - projected_mean
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_covariance = covariance - gain @ projected_cov @ gain.transpose(0, 2, 1)
    return new_mean, new_covariance
