"""``facescope quantize MODEL --weights FILE.onnx --calibration DIR --out FILE.int8.onnx``: static int8."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from facescope.cli import argtypes
from facescope.errors import FacescopeError

ONNX_EXTRA_HINT = 'pip install "facescope[quantize]"'

EXAMPLES = """examples:
  facescope quantize scrfd_2.5g_kps --weights scrfd_2.5g_kps.onnx --calibration photos/ --out scrfd_2.5g_kps.int8.onnx
  facescope quantize scrfd_500m_kps --weights scrfd_500m_kps.onnx --calibration photos/ --out s500.int8.onnx \\
      --input-size long:640 --keep-float stem,depthwise,heads --ap-images WIDER_val/images --ap-gt wider_face_split/
  facescope detect photo.jpg --model scrfd_2.5g_kps --weights scrfd_2.5g_kps.int8.onnx

the int8 file runs through every command like any ONNX file of the model; its metadata
(facescope_quantization) records the calibration and the layers kept in float.
pitfalls: calibrate on real photos with faces at the size you deploy (naive int8 SCRFD files elsewhere
lost every box); int8 is not faster on every CPU (VNNI helps; depthwise layers are faster in float):
time it, and check the AP report (--ap-images/--ap-gt) before deploying.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="static int8 quantisation of an ONNX file (onnxruntime QDQ, calibrated on real images)",
        description=(
            "Quantise a float32 ONNX file of a registered model to int8 (QDQ: per-channel int8 weights, uint8 "
            "activations calibrated on the images of --calibration at the deployment size). With --ap-images and "
            "--ap-gt the report gives the WIDER FACE AP of the float and the int8 file."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="registered model name of the file (see `facescope models`)")
    parser.add_argument("--weights", required=True, help="the float32 .onnx file")
    parser.add_argument("--calibration", required=True, help="folder of real images (searched recursively)")
    parser.add_argument("--out", required=True, help="the int8 .onnx file to write")
    parser.add_argument("--input-size", type=argtypes.input_size, help="deployment size to calibrate at: 640, 640x480 or long:640 (default: the model's default preset)")
    parser.add_argument("--keep-float", default="stem,depthwise", help="comma-separated groups (stem, depthwise, heads) or node names left in float32 (default stem,depthwise; 'none' for none)")
    parser.add_argument("--method", default="percentile", choices=("percentile", "minmax", "entropy"), help="activation calibration (default percentile)")
    parser.add_argument("--percentile", type=argtypes.positive_float, default=99.999, help="percentile of --method percentile (default 99.999)")
    parser.add_argument("--max-images", type=argtypes.positive_int, default=100, help="calibration images used at most (default 100)")
    parser.add_argument("--ap-images", help="WIDER FACE images folder (<event>/<name>.jpg) for the AP report")
    parser.add_argument("--ap-gt", help="WIDER FACE ground-truth folder (wider_face_val.mat ...) for the AP report")
    parser.add_argument("--threads", type=argtypes.positive_int, help="CPU threads of the AP report's detectors")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facescope.cli.preflight import check_output_file

    check_output_file("--out", args.out, (".onnx",))
    weights = Path(args.weights)
    if not weights.is_file() or weights.suffix.lower() != ".onnx":
        raise FacescopeError(f"--weights {weights}: needs an existing .onnx file")
    if (args.ap_images is None) != (args.ap_gt is None):
        raise FacescopeError("--ap-images and --ap-gt go together")
    for option, folder in (("--ap-images", args.ap_images), ("--ap-gt", args.ap_gt), ("--calibration", args.calibration)):
        if folder is not None and not Path(folder).is_dir():
            raise FacescopeError(f"{option} {folder}: not a folder")
    try:
        import onnx  # noqa: F401 - the quantiser edits the graph with it
        from onnxruntime import quantization  # noqa: F401
    except ImportError:
        raise FacescopeError(f"facescope quantize needs the onnx package, which is not installed: {ONNX_EXTRA_HINT}") from None
    from facescope.export.quantize import quantize_onnx

    keep = [] if args.keep_float.strip().lower() == "none" else [k.strip() for k in args.keep_float.split(",") if k.strip()]
    result = quantize_onnx(
        args.model, weights, args.calibration, args.out, input_size=args.input_size, keep_float=keep,
        method=args.method, percentile=args.percentile, max_images=args.max_images,
    )  # fmt: skip
    calibration = result.metadata["calibration"]
    print(f"wrote {result.path} ({result.model_name}, int8 QDQ, {result.calibration_images} calibration images at "
          f"{calibration['input_size']}, {calibration['method']})")  # fmt: skip
    print(f"  kept in float32: {', '.join(result.kept_float) if result.kept_float else 'nothing'}")
    if args.ap_images:
        print(ap_report(args.model, weights, result.path, args.ap_images, args.ap_gt, args.input_size, args.threads))
    return 0


def ap_report(model: str, float_file: Path, int8_file: Path, images: str, gt: str, input_size: object, threads: int | None) -> str:
    """WIDER FACE AP (protocol preset ``widerface``, at ``input_size`` when given) of both files, as a table."""
    from facescope.eval import evaluate_detector_on_widerface
    from facescope.inference.detector import Detector

    rows = ["| file | AP easy | AP medium | AP hard |", "|---|---|---|---|"]
    aps = []
    for path in (float_file, int8_file):
        detector = Detector(model, path, preset="widerface", input_size=input_size, threads=threads, progress=False)
        result = evaluate_detector_on_widerface(
            detector, images, gt, progress=False, challenge=False, require_protocol_preset=input_size is None
        )  # fmt: skip
        aps.append(result.ap)
        rows.append(f"| {path.name} | {result.ap['easy']:.4f} | {result.ap['medium']:.4f} | {result.ap['hard']:.4f} |")
    change = ", ".join(f"{k} {100 * (aps[1][k] - aps[0][k]):+.2f}" for k in ("easy", "medium", "hard"))
    mode = "mini-benchmark: " if not result.is_full else ""
    return f"AP ({mode}{os.path.basename(str(images).rstrip('/'))}):\n" + "\n".join(rows) + f"\n  int8 - float32 (points): {change}"
