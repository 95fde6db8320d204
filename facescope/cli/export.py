"""``facescope export MODEL --out model.onnx``: ONNX export, checked against PyTorch right away."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facescope.cli import argtypes
from facescope.cli.common import add_model_arg_option, model_args_of
from facescope.errors import FacescopeError

EXAMPLES = """examples:
  facescope export scrfd_500m_kps --weights scrfd_500m_kps.onnx --out scrfd_500m_kps_fs.onnx
  facescope export scrfd_2.5g_kps --out model.onnx --input-size 640 --opset 18
  facescope export scrfd_10g_kps --weights pretrained --out det_10g.onnx --no-dynamic --input-size 640x480
  facescope export retinaface_paper_r50 --weights runs/r50/last.pth --out r50.onnx   # the checkpoint's model options
  facescope detect photo.jpg --model scrfd_500m_kps --weights scrfd_500m_kps_fs.onnx --backend onnxruntime

outputs (NMS and decoding stay outside the graph):
  input   float32[B, 3, H, W]  normalised as the model expects; B, H, W dynamic unless --no-dynamic
  score_S float32[B, N_S, 1]   face probabilities, one output per stride S (ascending)
  bbox_S  float32[B, N_S, 4]   raw box regressions, one per stride
  kps_S   float32[B, N_S, 10]  raw landmark regressions (models with landmarks)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX (checked against PyTorch in onnxruntime)",
        description=(
            "Export a registered detector to ONNX (opset >= 17, dynamic batch/height/width), then check it "
            "with onnx.checker and against eager PyTorch in onnxruntime; the file is written only if the "
            "largest difference is within --tolerance."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="registered model name (see `facescope models`)")
    parser.add_argument("--weights", help="weights file (.onnx or PyTorch), release tag or 'pretrained'; default: random init")
    add_model_arg_option(parser)
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=argtypes.positive_int, default=17, help="ONNX opset (>= 17, default 17)")
    parser.add_argument("--input-size", type=argtypes.concrete_size, default=640, help="trace size: 640 or WIDTHxHEIGHT (default 640)")
    parser.add_argument("--no-dynamic", action="store_true", help="fixed batch 1 and --input-size (no dynamic axes)")
    parser.add_argument("--simplify", action="store_true", help="run onnx-simplifier (pip install onnxsim)")
    parser.add_argument("--tolerance", type=argtypes.positive_float, default=1e-3, help="largest allowed |onnxruntime - PyTorch| (default 1e-3)")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check (not recommended)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facescope.cli.preflight import check_output_file
    from facescope.export import export_onnx
    from facescope.models.options import describe_saved

    check_output_file("--out", args.out, (".onnx",))  # before the export's minutes of work

    if isinstance(args.input_size, str):
        raise FacescopeError("--input-size needs a concrete size such as 640 or 640x480, not 'original'")
    from facescope.inference.validate import check_input_memory

    width, height = (args.input_size, args.input_size) if isinstance(args.input_size, int) else args.input_size
    check_input_memory((height, width), 2, args.model, what="--input-size")  # the parity check runs a batch of 2
    if args.weights is None:
        print(f"facescope: note: no --weights given, exporting randomly initialised {args.model}")
    result = export_onnx(
        args.model,
        Path(args.out),
        weights=args.weights,
        opset=args.opset,
        input_size=args.input_size,
        dynamic=not args.no_dynamic,
        simplify=args.simplify,
        verify=not args.no_verify,
        tolerance=args.tolerance,
        model_args=model_args_of(args),
    )
    axes = "dynamic batch/height/width" if result.dynamic else "fixed shape"
    print(f"wrote {result.path} ({result.model_name}, opset {result.opset}, {axes}{', simplified' if result.simplified else ''})")
    print(f"  outputs: {', '.join(result.output_names)}")
    if result.metadata.get("facescope_model_args", "{}") != "{}":
        print(f"  model options: {describe_saved(json.loads(result.metadata['facescope_model_args']))}")
    for check in result.checks:
        shape = "x".join(str(v) for v in check.input_shape)
        print(f"  onnxruntime vs PyTorch on input {shape}: max abs diff {check.max_abs_diff:.3g} ({check.worst_output})")
    if result.checks:
        print(f"  parity ok: max abs diff {result.max_abs_diff:.3g} <= tolerance {args.tolerance:g}")
    return 0
