"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse

from facescope.cli import argtypes
from facescope.errors import FacescopeError


def add_model_arguments(parser: argparse.ArgumentParser, default_model: str = "scrfd_2.5g_kps") -> None:
    """--model, --weights, --preset, thresholds, size, device, threads, backend."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=default_model, help=f"registered model name (default {default_model})")
    group.add_argument("--weights", help="weights file (.onnx or PyTorch) or release tag; default: the model's release")
    group.add_argument("--preset", default="default", help="inference preset: default, official, widerface, original")
    group.add_argument("--score-thresh", type=argtypes.probability, help="override the preset's score threshold (0..1)")
    group.add_argument("--nms-thresh", type=argtypes.probability, help="override the preset's NMS IoU threshold (0..1)")
    group.add_argument("--input-size", type=argtypes.input_size, help="640, 1280x720, original or long:640 (longer side to 640, aspect kept; override the preset)")
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    group.add_argument("--threads", type=argtypes.positive_int, help="CPU threads")
    group.add_argument(
        "--tta",
        type=argtypes.tta_protocol,
        metavar="NAME",
        help="test-time augmentation protocol: flip, multiscale, retinaface, shf, s3fd, dsfd, pyramidbox, "
        "or none (default: the preset's; single pass except the DSFD/SHF widerface-style presets)",
    )
    group.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnxruntime"),
        help="auto (default): onnxruntime for .onnx weights, torch for PyTorch weights",
    )


def make_detector(args: argparse.Namespace, tta_progress: bool = False):  # noqa: ANN201 - avoids importing torch at parser build time
    """Build a :class:`~facescope.Detector` from parsed model arguments (``tta_progress``: a bar
    over the passes of an image with many test-time augmentation passes)."""
    from facescope.inference.detector import Detector

    if args.threads is not None and args.threads < 1:
        raise FacescopeError(f"--threads must be >= 1, got {args.threads}")
    preset = args.preset
    if preset is None:  # evaluation: the protocol of the weights' published numbers
        from facescope.models.registry import get_model_entry

        entry = get_model_entry(args.model)
        tags = {spec.tag for spec in entry.weights}
        release = None if args.weights in (None, "pretrained") else args.weights
        preset = entry.protocol_preset(release) if release is None or release in tags else "widerface"
    return Detector(
        args.model,
        args.weights,
        preset=preset,
        device=args.device,
        threads=args.threads,
        score_thresh=args.score_thresh,
        nms_thresh=args.nms_thresh,
        input_size=args.input_size,
        backend=args.backend,
        tta=getattr(args, "tta", None),
        tta_progress=tta_progress,
        tune_process=True,  # the CLI owns its process: allocator tuning is safe here
    )
