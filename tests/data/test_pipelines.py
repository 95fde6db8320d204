"""Registered data pipelines: lookup by name, pipeline-specific checks, new pipelines without engine changes."""

import numpy as np
import pytest

from facescope.config import FieldError, from_dict
from facescope.data.pipelines import build_transforms, get_pipeline, list_pipelines, register_pipeline
from facescope.data.transforms import Compose, Resize, Sample
from facescope.engine.config import DataConfig, TrainConfig
from facescope.errors import ConfigError


def test_builtin_pipelines_are_registered():
    assert {"scrfd", "retinaface"} <= set(list_pipelines())
    with pytest.raises(ConfigError, match=r"unknown data pipeline 'retinafce' \(did you mean 'retinaface'\?\); registered: \["):
        get_pipeline("retinafce")


def test_retinaface_check_travels_with_the_pipeline():
    with pytest.raises(ConfigError, match=r"<r>: 'data.crop_scales' must be <= 1 for data.pipeline 'retinaface'"):
        from_dict(TrainConfig, {"model": "m", "data": {"pipeline": "retinaface"}}, source="<r>")
    data = DataConfig(pipeline="retinaface", crop_scales=(0.5, 1.0))
    data.crop_scales = (0.5, 1.5)  # changed after construction: checked again when built
    with pytest.raises(FieldError, match="'crop_scales' must be <= 1"):
        build_transforms(data)


def test_a_new_pipeline_is_one_registration():
    @register_pipeline("test_resize_only", summary="resize to data.image_size, nothing else")
    def resize_only(data: DataConfig) -> Compose:
        return Compose([Resize(data.image_size)])

    data = DataConfig(pipeline="test_resize_only", image_size=32)
    sample = Sample(np.zeros((64, 128, 3), np.float32), np.array([[0, 0, 64, 32]], np.float32),
                    np.zeros((1, 5, 2), np.float32), np.zeros((1, 5), bool))
    out = build_transforms(data)(sample, np.random.default_rng(0))
    assert out.image.shape[:2] == (32, 32) and out.boxes.tolist() == [[0.0, 0.0, 16.0, 16.0]]
    with pytest.raises(ValueError, match="already registered"):
        register_pipeline("test_resize_only", summary="again")(resize_only)


def test_the_data_layer_does_not_depend_on_the_engine_recipe():
    """engine/config.py reads the pipeline registry; the registry must not reach back (not even type-only)."""
    import ast
    from pathlib import Path

    import facescope.data.pipelines as pipelines

    tree = ast.parse(Path(pipelines.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in imported if m and m.startswith("facescope.engine")}
