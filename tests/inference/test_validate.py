"""Range checks of Detector options (facescope.inference.validate), before any work."""

from __future__ import annotations

import math

import pytest

from facescope.errors import FacescopeError
from facescope.inference import validate
from facescope.inference.validate import (
    InvalidOptionError,
    check_device,
    check_input_memory,
    check_input_size,
    check_positive_int,
    check_probability,
    estimate_inference_bytes,
    memory_budget,
    parse_byte_count,
    validate_detector_options,
)


@pytest.mark.parametrize("value", [0, 0.0, 0.45, 1, 1.0])
def test_probability_accepts_the_closed_unit_interval(value) -> None:
    assert check_probability("score_thresh", value) == float(value)


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf, "0.5", True, None])
def test_probability_refuses_the_rest(value) -> None:
    with pytest.raises(InvalidOptionError, match=r"^score_thresh must be"):
        check_probability("score_thresh", value)


def test_positive_int() -> None:
    assert check_positive_int("batch_size", 3) == 3
    assert check_positive_int("batch_size", 4.0) == 4
    for bad, words in [(0, "must be >= 1, got 0"), (-2, "must be >= 1, got -2"), (2.5, "whole number"), (True, "whole number")]:
        with pytest.raises(InvalidOptionError, match=words):
            check_positive_int("batch_size", bad)
    with pytest.raises(InvalidOptionError, match="must be <= 10, got 11"):
        check_positive_int("x", 11, maximum=10)


def test_input_size_forms_and_bounds() -> None:
    assert check_input_size(None) is None and check_input_size("original") == "original"
    assert check_input_size(640) == 640 and check_input_size([1280, 720]) == (1280, 720)
    cases = [
        (0, "input_size must be >= 1, got 0"),
        (-5, "input_size must be >= 1, got -5"),
        ((640,), r"must be \(width, height\)"),
        ((100000, 100000), "input_size width must be <= 16384, got 100000"),
        ((640, 0), "input_size height must be >= 1, got 0"),
        ("big", "input_size must be a side such as 640"),
    ]
    for value, words in cases:
        with pytest.raises(InvalidOptionError, match=words):
            check_input_size(value)


def test_memory_estimate_is_the_documented_formula() -> None:
    # sides round up to 32: 1000x1000 -> 1024x1024; scrfd_2.5g_kps: 103 bytes per pixel
    assert estimate_inference_bytes((1000, 1000), 1, "scrfd_2.5g_kps") == 1024 * 1024 * 103
    assert estimate_inference_bytes((640, 640), 3, "unknown") == 3 * 640 * 640 * validate.DEFAULT_BYTES_PER_PIXEL


def test_every_registered_model_declares_its_measured_bytes_per_pixel(monkeypatch) -> None:
    from facescope.models.registry import entries

    monkeypatch.delenv(validate.MEMORY_BUDGET_ENV, raising=False)
    declared = {entry.name: entry.bytes_per_pixel for entry in entries()}
    for name, value in declared.items():
        assert estimate_inference_bytes((64, 32), 1, name) == 64 * 32 * value, name
    # the Detector checks an original-size input with its model's figure, not the generic one
    from facescope.inference.preprocess import original_plan
    from facescope.models.spec import ResizeSpec

    resize = ResizeSpec("original", size_divisor=32)
    assert original_plan((6000, 6000), resize, "scrfd_500m_kps").input_hw == (6016, 6016)  # 3.3 GiB: fits 8 GiB
    with pytest.raises(InvalidOptionError, match=r"needs an estimated 15\.7 GiB .*\(300 bytes per input pixel\)"):
        original_plan((7000, 8000), resize)  # 7008 x 8000 x 300 bytes


def test_memory_budget_default_env_and_refusal(monkeypatch) -> None:
    monkeypatch.delenv(validate.MEMORY_BUDGET_ENV, raising=False)
    assert memory_budget() == 8 * 1024**3
    check_input_memory((4096, 4096), 1, "scrfd_500m_kps")  # 1.6 GB estimated: fits 8 GiB
    with pytest.raises(InvalidOptionError) as caught:
        check_input_memory((16384, 16384), 1, "scrfd_500m_kps")
    message = str(caught.value)
    assert message.startswith("input size 16384x16384 needs an estimated 24.5 GiB")
    assert "98 bytes per input pixel" in message and "memory budget of 8.0 GiB" in message
    assert "FACESCOPE_MEMORY_BUDGET" in message and "\n" not in message
    monkeypatch.setenv(validate.MEMORY_BUDGET_ENV, "1G")
    with pytest.raises(InvalidOptionError, match="over the memory budget of 1.0 GiB"):
        check_input_memory((4096, 4096), 1, "scrfd_500m_kps")
    monkeypatch.setenv(validate.MEMORY_BUDGET_ENV, "lots")
    with pytest.raises(InvalidOptionError, match="FACESCOPE_MEMORY_BUDGET must be a byte count"):
        memory_budget()


def test_parse_byte_count() -> None:
    assert parse_byte_count("8G", "x") == 8 * 1024**3
    assert parse_byte_count("512MiB", "x") == 512 * 1024**2
    assert parse_byte_count("1.5g", "x") == int(1.5 * 1024**3)
    assert parse_byte_count("1000", "x") == 1000


def test_device_names_and_availability(monkeypatch) -> None:
    monkeypatch.setattr(validate, "available_devices", lambda backend=None: ["cpu"])
    assert check_device("cpu") == "cpu" and check_device("CPU") == "cpu"
    with pytest.raises(InvalidOptionError, match=r"^device 'cuda' is not available here; available: cpu$"):
        check_device("cuda")
    with pytest.raises(InvalidOptionError, match="unknown device 'tpu'; use cpu, cuda, cuda:N or mps"):
        check_device("tpu")
    monkeypatch.setattr(validate, "available_devices", lambda backend=None: ["cpu", "cuda:0"])
    assert check_device("cuda") == "cuda" and check_device("cuda:0") == "cuda:0"
    with pytest.raises(InvalidOptionError, match=r"device 'cuda:1' is not available here; available: cpu, cuda:0"):
        check_device("cuda:1")


def test_available_devices_lists_this_machine() -> None:
    import torch

    devices = validate.available_devices("torch")
    assert devices[0] == "cpu"
    assert sum(d.startswith("cuda:") for d in devices) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_detector_refuses_bad_options_before_loading_weights(tmp_path) -> None:
    """A missing weights file would be a WeightsError: the option error comes first."""
    from facescope.inference.detector import Detector

    missing = tmp_path / "absent.onnx"
    bad = [
        (dict(score_thresh=1.5), "score_thresh must be in [0, 1], got 1.5"),
        (dict(nms_thresh=-0.1), "nms_thresh must be in [0, 1], got -0.1"),
        (dict(input_size=0), "input_size must be >= 1, got 0"),
        (dict(input_size=(100000, 100000)), "input_size width must be <= 16384"),
        (dict(input_size=(16000, 16000)), "input size 16000x16000 needs an estimated"),
        (dict(batch_size=0), "batch_size must be >= 1, got 0"),
        (dict(threads=0), "threads must be >= 1, got 0"),
        (dict(device="quantum"), "unknown device 'quantum'"),
    ]
    for kwargs, words in bad:
        with pytest.raises(InvalidOptionError) as caught:
            Detector("scrfd_500m_kps", missing, **kwargs)
        assert words in str(caught.value), kwargs
        assert isinstance(caught.value, (FacescopeError, ValueError))


def test_validate_accepts_the_defaults() -> None:
    validate_detector_options(model="scrfd_2.5g_kps", input_size=(1280, 720), batch_size=8, threads=2, score_thresh=0.3)


def test_onnxruntime_devices_come_from_its_providers(monkeypatch) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert validate.available_devices("onnxruntime") == ["cpu"]
    with pytest.raises(InvalidOptionError, match=r"device 'cuda' is not available here; available: cpu$"):
        check_device("cuda", "onnxruntime")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert validate.available_devices("onnxruntime") == ["cpu", "cuda"]
    assert check_device("cuda:1", "onnxruntime") == "cuda:1"  # the provider list cannot count GPUs


def test_original_size_inputs_are_checked_per_image_before_the_tensor_is_built(monkeypatch) -> None:
    import numpy as np

    from facescope.inference.preprocess import keep_original
    from facescope.models.spec import ResizeSpec

    monkeypatch.delenv(validate.MEMORY_BUDGET_ENV, raising=False)
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 30000, 3))  # no memory behind it
    with pytest.raises(InvalidOptionError, match=r"^original-size input 30016x20000 needs an estimated 167\.7 GiB"):
        keep_original(huge, ResizeSpec("original", size_divisor=32))
    photo = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (3000, 4000, 3))  # 12 MP: 3.4 GiB estimated, accepted
    assert keep_original(photo, ResizeSpec("original", size_divisor=32)).input_hw == (3008, 4000)
