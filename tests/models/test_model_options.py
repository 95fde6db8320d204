"""Builder options as data: read with the builder's type hints, file-valued options carried by content,
saved forms compared with the options a caller gives."""

import pytest

from facescope.errors import ConfigError, FacescopeError, WeightsError
from facescope.models.options import (
    FILE_KEY,
    ModelFile,
    check_agreement,
    coerce_like,
    coerce_option,
    from_saved,
    is_file_option,
    parse_model_arg,
    to_saved,
)


@pytest.mark.parametrize(
    "hint, text, value",
    [(bool, "false", False), (bool, "True", True), (int, "3", 3), (float, "5e-4", 5e-4), (int | None, "null", None),
     (str, "50", "50"), (tuple[int, ...], "[1, 2]", (1, 2)), (float, 2, 2.0)],
)
def test_values_are_read_with_the_builders_type_hints(hint, text, value):
    got = coerce_option("x", hint, text)
    assert got == value and type(got) is type(value)


def test_a_value_that_does_not_fit_names_the_option():
    with pytest.raises(ConfigError, match=r"^model options: 'deformable' must be bool, got 'maybe'$"):
        coerce_option("deformable", bool, "maybe")
    with pytest.raises(ConfigError, match=r"model option 'mesh_topology': file not found: .*nope.npz"):
        coerce_option("mesh_topology", ModelFile | None, "nope.npz")


def test_a_file_option_is_carried_by_content_not_path(tmp_path):
    path = tmp_path / "genotype.json"
    path.write_text('{"cells": [1, 2]}')
    assert is_file_option(ModelFile | None) and is_file_option(ModelFile) and not is_file_option(str | None)
    value = coerce_option("genotype", ModelFile | None, str(path))
    assert value.json() == {"cells": [1, 2]} and value.name == "genotype.json"
    saved = to_saved({"genotype": value})
    assert str(tmp_path) not in str(saved) and saved["genotype"][FILE_KEY] == "genotype.json"
    path.unlink()  # the saved form no longer needs the file
    assert from_saved(saved["genotype"]) == value and coerce_option("genotype", ModelFile, saved["genotype"]) == value
    broken = dict(saved["genotype"], sha256="0" * 64)
    with pytest.raises(WeightsError, match="does not match its sha256"):
        from_saved(broken)


def test_agreement_compares_values_and_file_contents(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.json").write_text("{}")
    saved = to_saved({"deformable": False, "genotype": ModelFile.read(tmp_path / "a.json"), "scale": 1.0})
    same = to_saved({"deformable": False, "genotype": ModelFile.read(tmp_path / "b.json"), "scale": 1})
    check_agreement(saved, same, "ckpt.pth")  # same content under another name; 1 == 1.0
    with pytest.raises(WeightsError, match=r"^ckpt.pth was built with model option deformable=False, but deformable=1 was given"):
        check_agreement(saved, {"deformable": 1}, "ckpt.pth")  # 1 is not a bool
    (tmp_path / "c.json").write_text('{"x": 1}')
    with pytest.raises(WeightsError, match=r"genotype=file 'a.json' \(sha256 [0-9a-f]{12}\), but genotype=file 'c.json'"):
        check_agreement(saved, to_saved({"genotype": ModelFile.read(tmp_path / "c.json")}), "ckpt.pth")
    # the torch-free path reads command-line strings the way the saved value is
    assert coerce_like(False, "false", "deformable") is False and coerce_like(1.0, "2", "scale") == 2.0
    assert coerce_like(saved["genotype"], str(tmp_path / "b.json"), "genotype")["sha256"] == saved["genotype"]["sha256"]


def test_model_arg_syntax():
    assert parse_model_arg("deformable=false") == ("deformable", "false")
    assert parse_model_arg("path=a=b") == ("path", "a=b")
    for bad in ("deformable", "=1", "two words=1"):
        with pytest.raises(ConfigError, match="must look like KEY=VALUE"):
            parse_model_arg(bad)


def test_a_checkpoint_rebuilds_its_model_without_the_option_file(tmp_path):
    import torch

    from facescope.models.mesh_topology import icosphere_topology, save_mesh_topology
    from facescope.models.registry import create_model
    from facescope.models.weights import save_state_dict

    mesh = save_mesh_topology(icosphere_topology(1), tmp_path / "ico.npz")
    model = create_model("retinaface_paper_r50", deformable="false", mesh_topology=str(mesh))
    assert model.dense_branch is not None and model.model_args["mesh_topology"][FILE_KEY] == "ico.npz"
    checkpoint = save_state_dict(model, tmp_path / "model.pth")
    mesh.unlink()
    rebuilt = create_model("retinaface_paper_r50", checkpoint)
    assert rebuilt.model_args == model.model_args and rebuilt.dense_branch is not None
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))
    with pytest.raises(WeightsError, match=r"mesh_topology=file 'ico.npz' \(sha256 [0-9a-f]{12}\), but mesh_topology=None was given"):
        create_model("retinaface_paper_r50", checkpoint, mesh_topology="none")


def test_saved_options_the_builder_does_not_know_are_refused_naming_the_file(tmp_path):
    import torch

    from facescope.models.registry import create_model

    model = create_model("scrfd_500m")
    assert model.model_args == {}  # a builder without options records none
    torch.save({"model": model.state_dict(), "model_args": {"depths": [1, 2]}}, tmp_path / "odd.pth")
    with pytest.raises(FacescopeError, match=r"model 'scrfd_500m' does not accept 'depths' \(saved in .*odd.pth\); accepted overrides: none"):
        create_model("scrfd_500m", tmp_path / "odd.pth")
