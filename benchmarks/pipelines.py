"""Every detection pipeline the benchmark times: facescope (torch / onnxruntime), the insightface
reference pipeline on the official SCRFD ONNX files, and the peers (YuNet, MTCNN, BlazeFace, Haar).

A pipeline is built from a JSON-serialisable :class:`PipelineSpec` inside a fresh worker process
and is a callable ``BGR uint8 H x W x 3 -> float32 [N, 5]`` (x1, y1, x2, y2, score in the frame's
pixels). Imports are lazy so that peers needing only numpy + OpenCV (+ a TFLite interpreter) run in
an interpreter without torch or facescope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

DetectFn = Callable[[np.ndarray], np.ndarray]

# Thresholds: "speed" = each detector's own default operating point; "accuracy" = low score
# threshold for the AP mini-benchmark (WIDER protocol: score 0.02).
ACCURACY_SCORE = 0.02
# ``backend`` of a reference row that runs with facescope.allocator's glibc settings (a like-for-like
# baseline: facescope's Detector applies them to its own process)
REFERENCE_MALLOC_TUNED = "malloc-tuned"


@dataclass(frozen=True)
class PipelineSpec:
    """One row of the benchmark.

    Attributes:
        name: unique row name, e.g. ``"facescope/scrfd_500m_kps/onnxruntime"``.
        kind: ``facescope``, ``reference``, ``yunet``, ``mtcnn``, ``blazeface`` or ``haar``.
        weights: model file (absolute path).
        model: facescope registry name (facescope and reference rows).
        backend: facescope backend (``torch`` / ``onnxruntime``); for a reference row,
            :data:`REFERENCE_MALLOC_TUNED` or empty.
        reference: name of the row this one's latency is divided by.
        note: one line shown in the table (what exactly runs).
        preset: facescope preset timed (default ``default``; AP always uses ``widerface``).
    """

    name: str
    kind: str
    weights: str
    model: str = ""
    backend: str = ""
    reference: str = ""
    note: str = ""
    preset: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def build(spec: PipelineSpec, threads: int, accuracy: bool = False) -> DetectFn:
    """Construct the pipeline of ``spec`` with ``threads`` CPU threads."""
    builders = {
        "facescope": _facescope,
        "reference": _reference,
        "yunet": _yunet,
        "mtcnn": _mtcnn,
        "blazeface": _blazeface,
        "haar": _haar,
    }
    return builders[spec.kind](spec, threads, accuracy)


def requirements(kind: str) -> list[str]:
    """Python modules a pipeline kind imports (probed before running it)."""
    return {
        "facescope": ["torch", "onnxruntime", "facescope"],
        "reference": ["onnxruntime", "cv2"],
        "yunet": ["cv2:FaceDetectorYN"],
        "mtcnn": ["torch", "torchvision"],
        "blazeface": ["cv2", "ai_edge_litert|tflite_runtime|tensorflow"],
        "haar": ["cv2:CascadeClassifier"],
    }[kind]


def _facescope(spec: PipelineSpec, threads: int, accuracy: bool) -> DetectFn:
    from facescope import Detector

    preset = "widerface" if accuracy else (spec.preset or "default")
    detector = Detector(spec.model, spec.weights, preset=preset, backend=spec.backend, threads=threads, progress=False, tune_process=True)

    def detect(bgr: np.ndarray) -> np.ndarray:
        faces = detector.detect(bgr, color_order="bgr")
        return np.concatenate([faces.boxes, faces.scores[:, None]], axis=1)

    return detect


def _load_module_file(relative: str, name: str):
    """Import one file of the repository (path relative to its root) on its own: importing the facescope
    package would pull in torch, which the reference pipeline (numpy + OpenCV + onnxruntime) does not need
    (it would inflate its RSS)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / relative
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _reference(spec: PipelineSpec, threads: int, accuracy: bool) -> DetectFn:
    if spec.backend == REFERENCE_MALLOC_TUNED:  # the glibc settings facescope applies with tune_process=True (the CLI)
        if not _load_module_file("facescope/allocator.py", "facescope_allocator").tune_cpu_allocator():
            raise RuntimeError("glibc malloc tuning not available in this process")
    module = _load_module_file("tests/oracles/insightface_scrfd.py", "insightface_scrfd_reference")
    reference = module.InsightfaceSCRFD(spec.weights, input_size=(640, 640), threads=threads)
    thresh = ACCURACY_SCORE if accuracy else 0.5

    def detect(bgr: np.ndarray) -> np.ndarray:
        return reference.detect(bgr, thresh=thresh, nms_thresh=0.4)[0]

    return detect


def _yunet(spec: PipelineSpec, threads: int, accuracy: bool) -> DetectFn:
    import cv2

    cv2.setNumThreads(threads)
    score = ACCURACY_SCORE if accuracy else 0.9  # 0.9: OpenCV's sample default
    yunet = cv2.FaceDetectorYN.create(spec.weights, "", (320, 320), score, 0.3, 5000)

    def detect(bgr: np.ndarray) -> np.ndarray:
        yunet.setInputSize((bgr.shape[1], bgr.shape[0]))  # YuNet runs at the frame's own size
        _, faces = yunet.detect(bgr)
        if faces is None:
            return np.zeros((0, 5), np.float32)
        # (N, 15): x, y, w, h, 5 landmarks, score
        return np.stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3], faces[:, 14]], axis=1)

    return detect


def _mtcnn(spec: PipelineSpec, threads: int, accuracy: bool) -> DetectFn:
    import torch

    from benchmarks.peers.mtcnn import MTCNN

    torch.set_num_threads(threads)
    # facenet-pytorch defaults; for AP the stage thresholds are lowered so the score ranks more faces
    thresholds = (0.6, 0.7, ACCURACY_SCORE) if accuracy else (0.6, 0.7, 0.7)
    mtcnn = MTCNN(spec.weights, thresholds=thresholds)
    return lambda bgr: mtcnn.detect(bgr)[0]


def _blazeface(spec: PipelineSpec, threads: int, accuracy: bool) -> DetectFn:
    import cv2

    from benchmarks.peers.blazeface import BlazeFace

    cv2.setNumThreads(threads)
    return BlazeFace(spec.weights, threads=threads, score_thresh=ACCURACY_SCORE if accuracy else 0.5).detect


def _haar(spec: PipelineSpec, threads: int, accuracy: bool) -> DetectFn:
    import cv2

    cv2.setNumThreads(threads)
    cascade = cv2.CascadeClassifier(spec.weights)
    if cascade.empty():
        raise RuntimeError(f"cannot load Haar cascade {spec.weights}")

    def detect(bgr: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        # level weights of the last stage serve as scores (Haar has no probability)
        rects, _, weights = cascade.detectMultiScale3(gray, 1.1, 3, minSize=(20, 20), outputRejectLevels=True)
        if len(rects) == 0:
            return np.zeros((0, 5), np.float32)
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        scores = np.asarray(weights, np.float32).reshape(-1)
        return np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:], scores[:, None]], axis=1)

    return detect


def default_specs(shared: Path, exports: dict[str, Path], facescope_models: dict[str, Path]) -> list[PipelineSpec]:
    """The benchmark's rows, given the shared-data folder and this run's facescope exports.

    ``facescope_models`` maps a registry name to the official weights it is benchmarked with; the
    reference pipeline row exists for models whose weights are an official SCRFD ONNX file.
    """
    specs: list[PipelineSpec] = []
    reference_500m = "reference/scrfd_500m_kps"
    for model, weights in facescope_models.items():
        is_scrfd_onnx = weights.suffix == ".onnx"
        reference = f"reference/{model}" if is_scrfd_onnx else reference_500m
        if is_scrfd_onnx:
            specs.append(PipelineSpec(reference, "reference", str(weights), model, note="insightface model_zoo pipeline (numpy + onnxruntime), official ONNX"))
            specs.append(PipelineSpec(f"reference-malloc/{model}", "reference", str(weights), model, REFERENCE_MALLOC_TUNED, reference,
                                      "the reference pipeline with facescope.allocator's glibc malloc settings"))
        specs.append(PipelineSpec(f"facescope/{model}/torch", "facescope", str(weights), model, "torch", reference, "Detector, eager PyTorch (BN folded, channels-last)"))
        if model in exports:
            specs.append(PipelineSpec(f"facescope/{model}/onnxruntime", "facescope", str(exports[model]), model, "onnxruntime", reference, "Detector, onnxruntime on this run's `facescope export`"))
        if is_scrfd_onnx:
            specs.append(PipelineSpec(f"facescope/{model}/onnxruntime-official", "facescope", str(weights), model, "onnxruntime", reference, "Detector, onnxruntime on the official ONNX file"))
            # the reference's own work: the 640x640 letterbox canvas (preset 'official'), not the default long:640
            if model in exports:
                specs.append(PipelineSpec(f"facescope/{model}/onnxruntime-letterbox", "facescope", str(exports[model]), model, "onnxruntime", reference,
                                          "as onnxruntime, preset 'official' (640x640 letterbox, like the reference)", "official"))
            specs.append(PipelineSpec(f"facescope/{model}/onnxruntime-official-letterbox", "facescope", str(weights), model, "onnxruntime", reference,
                                      "as onnxruntime-official, preset 'official' (640x640 letterbox, like the reference)", "official"))
    peers = shared / "weights" / "peers"
    specs += [
        PipelineSpec("peer/yunet", "yunet", str(peers / "face_detection_yunet.onnx"), reference=reference_500m, note="cv2.FaceDetectorYN at the frame's size, score 0.9"),
        PipelineSpec("peer/mtcnn", "mtcnn", str(peers / "mtcnn"), reference=reference_500m, note="facenet-pytorch MTCNN re-implemented (benchmarks/peers/mtcnn.py), min face 20"),
        PipelineSpec("peer/blazeface", "blazeface", str(peers / "blazeface" / "face_detection_short_range.tflite"), reference=reference_500m, note="MediaPipe short-range .tflite via a TFLite interpreter (benchmarks/peers/blazeface.py)"),
        PipelineSpec("peer/haar", "haar", str(peers / "haarcascades" / "haarcascade_frontalface_default.xml"), reference=reference_500m, note="OpenCV Haar frontalface_default, scale 1.1, 3 neighbours, min 20 px"),
    ]
    return specs
