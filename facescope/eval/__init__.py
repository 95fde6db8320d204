"""Evaluation with the benchmarks' official protocols.

* WIDER FACE: :func:`evaluate_widerface` (the MATLAB ``eval_tools`` protocol, vectorised),
  :func:`evaluate_detector_on_widerface` (run a detector, write official files, evaluate;
  resumable, mini-benchmark aware, torchrun-sharded), readers/writers in :mod:`.widerface_io`,
  tables and PR plots in :mod:`.reports`.
* FDDB: :mod:`.fddb`; AFW / PASCAL faces: :mod:`.face_eval`; landmarks (NME, CED): :mod:`.landmarks`.

Importing this package loads numpy only (no torch, matplotlib or OpenCV until used).
"""

from facescope.eval.widerface import PRCurve, WiderFaceResult, evaluate_widerface, voc_ap
from facescope.eval.widerface_io import (
    WiderGroundTruth,
    WiderImage,
    read_prediction_folder,
    read_retinaface_labels,
    read_wider_mat,
    read_wider_txt,
    write_prediction_folder,
)
from facescope.eval.widerface_runner import (
    evaluate_detector_on_widerface,
    evaluate_predictions_on_widerface,
    predict_widerface,
)

__all__ = [
    "PRCurve",
    "WiderFaceResult",
    "WiderGroundTruth",
    "WiderImage",
    "evaluate_detector_on_widerface",
    "evaluate_predictions_on_widerface",
    "evaluate_widerface",
    "predict_widerface",
    "read_prediction_folder",
    "read_retinaface_labels",
    "read_wider_mat",
    "read_wider_txt",
    "voc_ap",
    "write_prediction_folder",
]
