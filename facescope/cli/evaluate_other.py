"""``facescope eval fddb`` and ``facescope eval landmarks`` (registered by :mod:`facescope.cli.evaluate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facescope.cli.common import add_model_arguments, make_detector
from facescope.cli.preflight import check_output_folder
from facescope.errors import FacescopeError

FDDB_EXAMPLES = """examples:
  facescope eval fddb --ellipses FDDB-folds/ --images originalPics/ --out fddb/ --model scrfd_2.5g_kps
  facescope eval fddb --ellipses FDDB-folds/ --images originalPics/ --detections dets.txt
"""

LANDMARK_EXAMPLES = """examples:
  facescope eval landmarks --labels val/label.txt --images WIDER_val/images --out lmk/ --model scrfd_2.5g_kps
"""


def register(benchmarks: argparse._SubParsersAction) -> None:
    fddb = benchmarks.add_parser(
        "fddb",
        help="FDDB discrete/continuous ROC (official evaluate protocol), TPR at 1000 FP",
        description="FDDB ROC: pixel IoU of filled ellipses and boxes, Hungarian matching, all score thresholds.",
        epilog=FDDB_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fddb.add_argument("--ellipses", required=True, help="FDDB-fold-XX-ellipseList.txt, or the folder holding all ten")
    fddb.add_argument("--images", required=True, help="originalPics folder (<name>.jpg); sizes and, without --detections, input")
    fddb.add_argument("--detections", help="existing detection file (name, count, 'left top width height score' lines)")
    fddb.add_argument("--ellipse-detections", action="store_true", help="--detections holds ellipses (-f 1)")
    fddb.add_argument("--out", help="output folder: detections.txt, DiscROC.txt, ContROC.txt, roc_*.png, results.json")
    fddb.add_argument("--name", help="method label")
    fddb.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_arguments(fddb)
    fddb.set_defaults(func=run_fddb, score_thresh=0.02)

    landmarks = benchmarks.add_parser(
        "landmarks",
        help="five-point landmark NME (normalised by sqrt(w*h)) and CED curve",
        description="Detect faces, pair them with annotated faces (IoU >= 0.5) and score the 5 landmarks.",
        epilog=LANDMARK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    landmarks.add_argument("--labels", required=True, help="RetinaFace-style label.txt with landmarks")
    landmarks.add_argument("--images", required=True, help="folder the label paths are relative to")
    landmarks.add_argument("--out", help="output folder: ced.png, results.json")
    landmarks.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_arguments(landmarks)
    landmarks.set_defaults(func=run_landmarks)


def run_fddb(args: argparse.Namespace) -> int:
    from facescope.cli.extras import require_extra

    # Hungarian matching (scipy), image sizes (pillow), ROC plots written to --out (matplotlib)
    require_extra("facescope eval fddb", "eval", ("scipy", "PIL", "matplotlib") if args.out else ("scipy", "PIL"))
    from facescope.eval.fddb import evaluate_fddb, image_sizes_from_folder, plot_fddb_roc, read_fddb_detections, read_fddb_ellipses

    if args.out:
        check_output_folder("--out", args.out)
    annotations = read_fddb_ellipses(args.ellipses)
    sizes = image_sizes_from_folder(args.images, annotations)
    out = Path(args.out) if args.out else None
    kind = "ellipse" if args.ellipse_detections else "rect"
    if args.detections:
        detections = read_fddb_detections(args.detections, kind)
        name = args.name or Path(args.detections).stem
    else:
        detections, name = _detect_fddb(args, annotations, out), args.name or args.model
    result = evaluate_fddb(annotations, detections, sizes, detection_kind=kind, progress=not args.quiet, name=name)
    print(f"FDDB ({result.num_images} images, {result.num_faces} faces), {name}:")
    print(f"  TPR at 1000 FP: discrete {result.tpr_at_fp(1000):.6f}, continuous {result.tpr_at_fp(1000, 'continuous'):.6f}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result.write_roc_files(out)
        plot_fddb_roc([result], out / "roc_discrete.png")
        plot_fddb_roc([result], out / "roc_continuous.png", kind="continuous")
        summary = {
            "name": name,
            "tpr_at_1000fp": {"discrete": result.tpr_at_fp(1000), "continuous": result.tpr_at_fp(1000, "continuous")},
            "num_images": result.num_images,
            "num_faces": result.num_faces,
        }
        (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {out}/DiscROC.txt, ContROC.txt, roc_discrete.png, roc_continuous.png, results.json")
    return 0


def _detect_fddb(args: argparse.Namespace, annotations: dict, out: Path | None) -> dict:
    import numpy as np
    from tqdm import tqdm

    from facescope.eval.fddb import write_fddb_detections
    from facescope.eval.widerface_runner import detections_to_xywh
    from facescope.inference.image_io import read_image

    detector = make_detector(args)
    detections = {}
    for name in tqdm(list(annotations), desc="FDDB", unit="img", disable=args.quiet):
        boxes, scores = detections_to_xywh(detector.detect(read_image(Path(args.images) / f"{name}.jpg"), color_order="bgr"))
        detections[name] = np.column_stack([boxes, scores]) if len(scores) else np.zeros((0, 5))
    if out is not None:
        write_fddb_detections(out / "detections.txt", detections, list(annotations))
    return detections


def run_landmarks(args: argparse.Namespace) -> int:
    from facescope.cli.extras import require_extra

    require_extra("facescope eval landmarks", "torch", ("torch", "torchvision"))  # face matching uses torchvision's box_iou
    if args.out:
        require_extra("facescope eval landmarks --out", "eval", ("matplotlib",))  # the CED plot
    import numpy as np
    from tqdm import tqdm

    from facescope.eval.landmarks import failure_rate, landmark_nme, match_faces, per_point_nme, plot_ced
    from facescope.eval.widerface_io import read_retinaface_labels
    from facescope.inference.image_io import read_image

    if args.out:
        check_output_folder("--out", args.out)
    images = [image for image in read_retinaface_labels(args.labels) if image.landmark_valid.any()]
    if not images:
        raise FacescopeError(f"{args.labels}: no face with landmarks")
    detector = make_detector(args)
    nmes, points, missed, total = [], [], 0, 0
    for image in tqdm(images, desc="landmarks", unit="img", disable=args.quiet):
        dets = detector.detect(read_image(Path(args.images) / image.path), color_order="bgr")
        boxes, _, landmarks = dets.numpy()
        with_points = np.flatnonzero(image.landmark_valid.any(axis=1))
        total += len(with_points)
        if landmarks is None:
            raise FacescopeError(f"model {args.model} predicts no landmarks")
        match = match_faces(image.boxes[with_points], boxes)
        missed += len(match.unmatched)
        gt = with_points[match.gt_index]
        args_nme = (landmarks[match.det_index], image.landmarks[gt], image.boxes[gt], image.landmark_valid[gt])
        nmes.append(landmark_nme(*args_nme))
        points.append(args_nme)
    nme = np.concatenate(nmes)
    per_point = per_point_nme(*(np.concatenate([p[i] for p in points]) for i in range(4)))
    print(f"landmarks: {len(nme)} of {total} annotated faces detected (IoU >= 0.5), {missed} missed")
    print(f"  mean NME {np.nanmean(nme):.5f}, failure rate (NME > 10%) {failure_rate(nme):.4f}")
    print("  per point: " + ", ".join(f"{v:.5f}" for v in per_point))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plot_ced([(args.model, nme)], out / "ced.png")
        summary = {"mean_nme": float(np.nanmean(nme)), "failure_rate": failure_rate(nme), "per_point_nme": per_point.tolist(),
                   "matched": int(len(nme)), "annotated": total, "missed": missed}
        (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0
