"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from facescope.cli import argtypes
from facescope.cli.startup import startup_phase
from facescope.errors import FacescopeError
from facescope.models.registry import DEFAULT_MODEL


def add_model_arguments(parser: argparse.ArgumentParser, default_model: str | None = None) -> None:
    """--model, --weights, --model-arg, --preset, thresholds, size, device, threads, backend."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=default_model,
        help=f"registered model name (default: the --weights file's architecture when it is a known release or a "
        f"facescope export, else {DEFAULT_MODEL})",
    )
    group.add_argument("--weights", help="weights file (.onnx or PyTorch) or release tag; default: the model's release")
    add_model_arg_option(group)
    group.add_argument(
        "--preset",
        default="default",
        help="inference preset: default (photos), official / widerface (the benchmarks' protocols: score threshold "
        "~0.02, for evaluation), original",
    )
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
    over the passes of an image with many test-time augmentation passes); ``args.model`` None is
    resolved from ``args.weights`` first (:func:`~facescope.inference.detector.model_for_weights`)."""
    with startup_phase():  # the detector, its backend and their modules live as long as the command
        from facescope.inference.detector import Detector

        return Detector(**detector_options(args, tta_progress))


def detector_options(args: argparse.Namespace, tta_progress: bool = False) -> dict[str, Any]:
    """The :class:`~facescope.Detector` keyword arguments the parsed model arguments ask for (``args.model``
    None is resolved from ``args.weights`` first)."""
    from facescope.inference.detector import model_for_weights

    if args.threads is not None and args.threads < 1:
        raise FacescopeError(f"--threads must be >= 1, got {args.threads}")
    if args.model is None:  # named for the messages and reports that follow
        args.model = model_for_weights(args.weights)
    preset = args.preset
    if preset is None:  # evaluation: the protocol of the weights' published numbers
        from facescope.models.registry import get_model_entry

        entry = get_model_entry(args.model)
        tags = {spec.tag for spec in entry.weights}
        release = None if args.weights in (None, "pretrained") else args.weights
        preset = entry.protocol_preset(release) if release is None or release in tags else "widerface"
    return dict(
        model=args.model,
        weights=args.weights,
        preset=preset,
        device=args.device,
        threads=args.threads,
        score_thresh=args.score_thresh,
        nms_thresh=args.nms_thresh,
        input_size=args.input_size,
        backend=args.backend,
        tta=getattr(args, "tta", None),
        tta_progress=tta_progress,
        batch_size=getattr(args, "batch_size", None) or 1,
        model_args=model_args_of(args),
        tune_process=True,  # the CLI owns its process: allocator tuning is safe here
    )


def add_model_arg_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--model-arg KEY=VALUE`` (repeatable): builder options of a fresh model; checked against a file's own."""
    parser.add_argument(
        "--model-arg", dest="model_args", type=argtypes.model_arg, action="append", default=[], metavar="KEY=VALUE",
        help="builder option of the model, e.g. deformable=false (repeatable; a file-valued option takes a path); "
        "a checkpoint or export records its own and needs none, and one given with another value is refused",
    )  # fmt: skip


def model_args_of(args: argparse.Namespace) -> dict[str, str]:
    """The parsed ``--model-arg`` options as a mapping; a key given twice is an error."""
    options: dict[str, str] = {}
    for key, value in getattr(args, "model_args", []):
        if key in options:
            raise FacescopeError(f"--model-arg {key} is given twice ({options[key]!r} and {value!r})")
        options[key] = value
    return options
