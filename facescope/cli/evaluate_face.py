"""``facescope eval afw`` and ``facescope eval pascal``: AP on AFW and PASCAL faces with the face-eval
protocol (Mathias et al., ECCV 2014; :mod:`facescope.eval.face_eval`), from the benchmarks' published
annotation files. Registered by :mod:`facescope.cli.evaluate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facescope.cli.common import add_model_arguments, make_detector
from facescope.cli.preflight import check_output_folder
from facescope.errors import FacescopeError

BENCHMARKS = {
    "afw": ("AFW", "new_annotations_AFW.mat", "testimages/"),
    "pascal": ("PASCAL faces", "Annotations_Face_PASCALLayout_large_fixed.mat", "JPEGImages/"),
}


def register(benchmarks: argparse._SubParsersAction) -> None:
    for key, (title, annotation, images) in BENCHMARKS.items():
        parser = benchmarks.add_parser(
            key,
            help=f"{title} AP (face-eval protocol: 30 px minimum, box calibration, VOC all-point AP)",
            description=(
                f"{title} average precision with the face-eval protocol: faces under --min-size are ignored, "
                "detections of both sides <= 0.707 * --min-size dropped, IoU > 0.5 matching over the whole set, "
                "--calibration-rounds evaluations with box calibration in between (1 = plain VOC AP)."
            ),
            epilog=(
                "examples:\n"
                f"  facescope eval {key} --annotations {annotation} --detections dets.txt\n"
                f"  facescope eval {key} --annotations {annotation} --images {images} --out {key}/\n\n"
                "detection files: one line per face, 'image_id score x1 y1 x2 y2' (image_id: the image name without\n"
                "extension); --images writes the detector's as <out>/detections.txt."
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--annotations", required=True, help=f"the published ground truth ({annotation})")
        parser.add_argument("--detections", help="existing detection file ('image_id score x1 y1 x2 y2' lines)")
        parser.add_argument("--images", help="image folder (<imgname> of the annotations): run the detector on it")
        parser.add_argument("--out", help="output folder: detections.txt (with --images), results.json")
        parser.add_argument("--min-size", type=int, default=30, help="faces narrower or lower than this are ignored (default 30)")
        parser.add_argument("--calibration-rounds", type=int, default=5, help="evaluations with box calibration in between (default 5)")
        parser.add_argument(
            "--shift-top", type=float, default=0.0,
            help="move detected box tops down by this fraction of their height before scoring (S3FD/SHF use 0.2)",
        )  # fmt: skip
        parser.add_argument("--name", help="method label")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        add_model_arguments(parser)
        parser.set_defaults(func=run_face_eval, benchmark_title=title, score_thresh=0.02)


def run_face_eval(args: argparse.Namespace) -> int:
    from facescope.cli.extras import require_extra

    require_extra(f"facescope eval {args.benchmark}", "eval", ("scipy",))  # the annotations are MATLAB files
    from facescope.eval.face_eval import evaluate_face_ap, read_face_eval_annotations, read_face_eval_detections, shift_box_tops

    if bool(args.detections) == bool(args.images):
        raise FacescopeError("pass exactly one of --detections (a detection file) and --images (run the detector)")
    if args.calibration_rounds < 1 or args.min_size < 1:
        raise FacescopeError("--calibration-rounds and --min-size must be >= 1")
    if args.out:
        check_output_folder("--out", args.out)
    faces, ignore = read_face_eval_annotations(args.annotations)
    if args.detections:
        detections, name = read_face_eval_detections(args.detections), args.name or Path(args.detections).stem
    else:
        detections, name = _detect(args, faces), args.name or args.model
    if args.shift_top:
        detections = {k: _shifted(v, args.shift_top, shift_box_tops) for k, v in detections.items()}
    unknown = sorted(set(detections) - set(faces))
    if unknown:
        raise FacescopeError(f"{len(unknown)} detected image ids are not in {args.annotations}, e.g. '{unknown[0]}'")
    result = evaluate_face_ap(
        faces, detections, ignore=ignore, min_size=args.min_size, calibration_rounds=args.calibration_rounds, name=name
    )
    print(f"{args.benchmark_title} ({len(faces)} images, {result.num_faces} faces), {name}:")
    print(f"  AP {result.ap:.6f} (VOC all-point), 11-point AP {result.ap11:.6f}, {args.calibration_rounds} calibration round(s)")
    if args.out:
        summary = {"name": name, "benchmark": args.benchmark, "ap": result.ap, "ap11": result.ap11,
                   "num_images": len(faces), "num_faces": result.num_faces, "calibration_rounds": args.calibration_rounds}  # fmt: skip
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {out / 'results.json'}")
    return 0


def _shifted(table, fraction: float, shift):  # noqa: ANN001, ANN202 - numpy tables
    import numpy as np

    table = np.asarray(table, dtype=np.float64).reshape(-1, 5)
    return np.column_stack([shift(table[:, :4], fraction), table[:, 4]])


def _detect(args: argparse.Namespace, faces: dict) -> dict:
    import numpy as np
    from tqdm import tqdm

    from facescope.eval.face_eval import write_face_eval_detections
    from facescope.inference.image_io import list_images, read_image

    by_id = {path.stem: path for path in list_images(Path(args.images))}
    missing = sorted(set(faces) - set(by_id))
    if missing:
        raise FacescopeError(f"{len(missing)} annotated images are not under {args.images}, e.g. '{missing[0]}'")
    detector = make_detector(args)
    detections = {}
    for image_id in tqdm(list(faces), desc=args.benchmark, unit="img", disable=args.quiet):
        found = detector.detect(read_image(by_id[image_id]), color_order="bgr")
        detections[image_id] = np.column_stack([found.boxes, found.scores]) if len(found) else np.zeros((0, 5))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_face_eval_detections(Path(args.out) / "detections.txt", detections)
    return detections
