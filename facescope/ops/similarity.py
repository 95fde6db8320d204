"""Least-squares similarity transforms between point sets (Umeyama 1991)."""

from __future__ import annotations

import numpy as np


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity ``x -> s R x + t`` (rotation, uniform scale, translation; no reflection)
    minimising ``sum ||s R src_i + t - dst_i||^2``.

    Args:
        src: ``[N, 2]`` points (N >= 2, not all equal).
        dst: ``[N, 2]`` corresponding points.

    Returns:
        ``[2, 3]`` float64 affine matrix ``[s R | t]`` (the layout of ``cv2.warpAffine``).

    Example:
        >>> umeyama_similarity(np.array([[0, 0], [1, 0]]), np.array([[1, 1], [1, 3]])).round(6).tolist()
        [[0.0, -2.0, 1.0], [2.0, 0.0, 1.0]]
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two [N, 2] point sets with N >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var <= 0:
        raise ValueError("source points are all equal; no similarity transform is defined")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    reflect = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflect[1, 1] = -1.0
    rotation = u @ reflect @ vt
    scale = np.trace(np.diag(singular) @ reflect) / src_var
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])
