"""``facescope eval {widerface,fddb,landmarks,afw,pascal}``: benchmark evaluation with the official protocols."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from facescope.cli.common import add_model_arguments, make_detector
from facescope.cli.preflight import check_output_folder
from facescope.errors import FacescopeError

if TYPE_CHECKING:  # pragma: no cover
    from facescope.eval.widerface import WiderFaceResult
    from facescope.eval.widerface_io import WiderGroundTruth

EXAMPLES = """examples:
  # score a detector on WIDER FACE val (all 3,226 images = the official numbers)
  facescope eval widerface --images WIDER_val/images --gt ground_truth --out runs/scrfd_2.5g \\
      --model scrfd_2.5g_kps --weights scrfd_2.5g_kps.onnx      # the weights' protocol preset (widerface)
  # evaluate an existing official prediction folder (<dir>/<event>/<name>.txt)
  facescope eval widerface --predictions preds/ --gt ground_truth
  # several methods on one plot
  facescope eval widerface --predictions a/ --name A --compare B=b/ --compare C=c/ --gt ground_truth --out cmp/
  # scale out over processes (each rank detects a shard; rank 0 evaluates)
  torchrun --nproc_per_node 2 -m facescope eval widerface --images ... --gt ... --out ...
  facescope eval fddb --detections dets.txt --ellipses FDDB-folds/ --images originalPics/ --out fddb/
  facescope eval afw --annotations new_annotations_AFW.mat --detections afw_dets.txt
  facescope eval pascal --annotations Annotations_Face_PASCALLayout_large_fixed.mat --images pascal/ --out pascal/
"""

WIDER_EXAMPLES = EXAMPLES.split("  facescope eval fddb")[0]

BANNER = "=" * 78


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate on WIDER FACE, FDDB, AFW or PASCAL faces, or landmark accuracy (official protocols)",
        description="Evaluate detectors with the benchmarks' official protocols.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    benchmarks.required = True
    _register_widerface(benchmarks)
    from facescope.cli import evaluate_face, evaluate_other

    evaluate_other.register(benchmarks)
    evaluate_face.register(benchmarks)


def _register_widerface(benchmarks: argparse._SubParsersAction) -> None:
    parser = benchmarks.add_parser(
        "widerface",
        help="WIDER FACE val AP (easy/medium/hard), official MATLAB protocol",
        description=(
            "Run a detector over WIDER FACE images (or read existing prediction files) and compute the official "
            "easy/medium/hard AP plus the WIDER Face Challenge mAP (IoU 0.50:0.95). With only part of the 3,226 "
            "val images present the run is a MINI-BENCHMARK over those images."
        ),
        epilog=WIDER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input (one of)")
    source.add_argument("--images", help="WIDER_val/images folder (<event>/<name>.jpg): run the detector on it")
    source.add_argument("--predictions", help="existing prediction folder (<event>/<name>.txt) to evaluate")
    parser.add_argument("--gt", required=True, help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    parser.add_argument("--out", help="output folder: predictions/, results.txt/json, pr_*.png (required with --images)")
    parser.add_argument("--name", help="method label in the table and plots")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="NAME=DIR", help="another prediction folder on the same plot"
    )
    parser.add_argument(
        "--missing",
        choices=("error", "empty", "skip"),
        default="error",
        help="--predictions with absent files: fail (default), count as no detections (MATLAB), or skip (mini-benchmark)",
    )
    parser.add_argument("--overwrite", action="store_true", help="recompute prediction files that already exist")
    parser.add_argument("--no-challenge", action="store_true", help="skip the IoU 0.50:0.95 mAP")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_arguments(parser)
    # preset None: the one the weights' published numbers were measured with (their registry entry says)
    parser.set_defaults(func=run_widerface, preset=None)


def run_widerface(args: argparse.Namespace) -> int:
    from facescope.cli.extras import require_extra

    # the .mat ground truth needs scipy.io; the PR plots written to --out need matplotlib
    require_extra("facescope eval widerface", "eval", ("scipy", "matplotlib") if args.out else ("scipy",))
    from facescope.distributed import rank_world
    from facescope.eval.widerface_runner import load_ground_truth

    if bool(args.images) == bool(args.predictions):
        raise FacescopeError("pass exactly one of --images (run a detector) and --predictions (evaluate files)")
    if args.images and not args.out:
        raise FacescopeError("--out is required with --images (prediction files and reports are written there)")
    if args.out:
        check_output_folder("--out", args.out)
    compare = [_parse_compare(spec) for spec in args.compare]
    gt = load_ground_truth(args.gt)
    if args.images:
        result = _run_detector(args, gt)
    else:
        from facescope.eval.widerface_runner import evaluate_predictions_on_widerface

        result = evaluate_predictions_on_widerface(
            args.predictions, gt, missing=args.missing, challenge=not args.no_challenge, name=args.name or Path(args.predictions).name
        )
    if rank_world()[0] != 0:
        return 0
    results = [result, *_compare_results(compare, gt, result, not args.no_challenge)]
    _print_result(result)
    if len(results) > 1 or result.notes:
        from facescope.eval.reports import format_results_table

        print()
        print(format_results_table(results))
    if args.out:
        from facescope.eval.reports import write_results

        paths = write_results(results, args.out)
        print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _run_detector(args: argparse.Namespace, gt: WiderGroundTruth) -> WiderFaceResult:
    from facescope.distributed import rank_world
    from facescope.eval.widerface_runner import evaluate_detector_on_widerface, find_wider_images

    images, _ = find_wider_images(args.images, gt)
    is_rank0 = rank_world()[0] == 0
    if len(images) < len(gt) and is_rank0:
        print(
            f"{BANNER}\nMINI-BENCHMARK: only {len(images)} of the {len(gt)} WIDER FACE val images are present under "
            f"{args.images}.\nThe APs below cover those images only and are NOT comparable with full-val "
            f"(published) numbers.\n{BANNER}",
            file=sys.stderr,
        )
    detector = make_detector(args)
    identity = f"{detector.describe()}; weights {args.weights or 'release'}"
    if is_rank0:
        print(f"detector: {identity}", file=sys.stderr)
    logger = logging.getLogger("facescope.eval")
    banner_printed = _DropMiniBenchmarkWarning()  # the banner above already said it
    logger.addFilter(banner_printed)
    try:
        return evaluate_detector_on_widerface(
            detector,
            args.images,
            gt,
            args.out,
            progress=not args.quiet,
            overwrite=args.overwrite,
            challenge=not args.no_challenge,
            name=args.name or args.model,
            write_report=False,
            detector_id=identity,
            require_protocol_preset=False,  # --preset / threshold flags here are explicit; a note marks the result
        )
    finally:
        logger.removeFilter(banner_printed)


class _DropMiniBenchmarkWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("MINI-BENCHMARK")


def _parse_compare(spec: str) -> tuple[str, str]:
    name, sep, folder = spec.partition("=")
    if not sep or not name or not folder:
        raise FacescopeError(f"--compare expects NAME=DIR, got '{spec}'")
    return name, folder


def _compare_results(
    specs: list[tuple[str, str]], gt: WiderGroundTruth, main: WiderFaceResult, challenge: bool
) -> list[WiderFaceResult]:
    """Evaluate ``NAME=DIR`` folders on the same images as the main result."""
    from facescope.eval.widerface_runner import evaluate_predictions_on_widerface

    results = []
    for name, folder in specs:
        subset = gt.restrict_to(main.image_keys) if main.partial else gt
        results.append(evaluate_predictions_on_widerface(folder, subset, missing="error", challenge=challenge, name=name))
    return results


def _print_result(result: WiderFaceResult) -> None:
    where = "full val" if result.is_full else f"MINI-BENCHMARK, {result.num_images} of {result.split_size} images"
    print(f"WIDER FACE val AP ({where}), {result.name}:")
    for subset in ("easy", "medium", "hard"):
        print(f"  {subset:<6} {result.ap[subset]!r}")
    if result.challenge_map:
        values = "  ".join(f"{s} {result.challenge_map[s]:.4f}" for s in ("easy", "medium", "hard"))
        print(f"  mAP IoU 0.50:0.95 (WIDER Face Challenge): {values}")
    if not result.is_full:
        print("  (mini-benchmark: not comparable with published full-val numbers)")
