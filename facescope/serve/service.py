"""One process's detection service: a :class:`~facescope.Detector`, its micro-batcher and the limits.

Free of FastAPI: :mod:`facescope.serve.app` maps HTTP onto it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facescope.inference.image_io import max_image_pixels
from facescope.serve.batching import BatchingConfig, MicroBatcher
from facescope.serve.limits import InFlightGate, ServiceLimits
from facescope.serve.request import Thresholds

if TYPE_CHECKING:  # pragma: no cover
    from facescope.inference.detector import Detector
    from facescope.structures import Detections


@dataclass(frozen=True)
class DetectionJob:
    """One request's decoded image (BGR uint8 ``H x W x 3``) and its thresholds."""

    image: np.ndarray
    thresholds: Thresholds


class DetectionService:
    """Runs ``detector`` over concurrent requests in micro-batches, within ``limits``.

    The detector's ``batch_size`` is raised to the batcher's ``max_batch_size`` so that a
    micro-batch is one :meth:`~facescope.Detector.detect_batch` call per set of thresholds."""

    def __init__(self, detector: Detector, limits: ServiceLimits, batching: BatchingConfig) -> None:
        self.detector = detector
        self.detector.batch_size = max(detector.batch_size, batching.max_batch_size)
        self.limits = limits
        self.batching = batching
        self.gate = InFlightGate(limits)
        self.batcher: MicroBatcher[DetectionJob, Detections] = MicroBatcher(self.run_batch, batching)

    def start(self) -> None:
        """Start the batcher (on the running event loop)."""
        self.batcher.start()

    async def stop(self) -> None:
        """Refuse new requests, finish the queued ones, stop the worker thread."""
        self.begin_drain()
        await self.batcher.stop()

    def begin_drain(self) -> None:
        """From now on new requests get 503; those admitted complete."""
        self.gate.draining = True

    async def detect(self, image: np.ndarray, thresholds: Thresholds) -> tuple[Detections, int]:
        """Faces in ``image`` (BGR) and the size of the micro-batch that found them."""
        return await self.batcher.submit(DetectionJob(image, thresholds))

    def run_batch(self, jobs: Sequence[DetectionJob]) -> list[Detections]:
        """Worker-thread side: one ``detect_batch`` per distinct set of thresholds in the batch."""
        groups: dict[Thresholds, list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(job.thresholds, []).append(index)
        results: list[Detections | None] = [None] * len(jobs)
        for thresholds, members in groups.items():
            detector = self.detector.with_thresholds(thresholds.score_thresh, thresholds.nms_thresh)
            found = detector.detect_batch([jobs[i].image for i in members], color_order="bgr")
            for i, detections in zip(members, found):
                results[i] = detections
        return [r for r in results if r is not None]

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` reports."""
        stats = self.batcher.stats
        return {
            "status": "draining" if self.gate.draining else "ok",
            "model": self.detector.model_name,
            "in_flight": self.gate.count,
            "admitted": self.gate.admitted,
            "queued": self.batcher.queued,
            "running": self.batcher.running,
            "batches": stats.batches,
            "images": stats.items,
            "largest_batch": stats.largest,
            "pid": os.getpid(),
        }

    def model_card(self) -> dict[str, Any]:
        """What ``GET /v1/models`` reports for the served model."""
        detector = self.detector
        post, resize = detector.preset.postprocess, detector.preset.resize
        return {
            "name": detector.model_name,
            "weights": detector.weights_path.name if detector.weights_path is not None else None,
            "backend": detector.backend.name,
            "device": detector.device,
            "preset": detector.preset_name,
            "description": detector.describe(),
            "landmarks": bool(detector.has_landmarks),
            "score_thresh": post.score_thresh,
            "nms_thresh": post.nms_thresh,
            "input_size": "original" if resize.mode == "original" else list(resize.size),
            "tta": detector.tta.name if detector.tta is not None else None,
            "batching": asdict(self.batching),
            "limits": {**asdict(self.limits), "max_pixels": max_image_pixels(self.limits.max_pixels)},
        }
