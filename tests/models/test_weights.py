"""Weights: cache, download with hash check, offline message, checkpoint layouts, wrong architecture."""

import dataclasses
import zipfile

import pytest
import torch

from facescope.errors import WeightsError
from facescope.models import create_model, get_model_entry
from facescope.models.weights import WeightSpec, cached_path, fetch_weights, file_sha256, read_state_dict


def _spec(tmp_path, payload: bytes, **kwargs) -> WeightSpec:
    source = tmp_path / "release.bin"
    source.write_bytes(payload)
    fields = dict(
        tag="test", url=source.as_uri(), sha256=file_sha256(source), filename="model.bin",
        license="test", format="torch",
    )
    fields.update(kwargs)
    return WeightSpec(**fields)


def test_download_verifies_and_caches(tmp_path, isolated_home):
    spec = _spec(tmp_path, b"weights-bytes")
    path = fetch_weights(spec, progress=False)
    assert path == isolated_home / "weights" / "model.bin" and path.read_bytes() == b"weights-bytes"
    (tmp_path / "release.bin").unlink()
    assert fetch_weights(spec, progress=False) == path  # served from the cache


def test_download_from_archive_member(tmp_path):
    archive = tmp_path / "pack.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("det.onnx", b"inner")
        zf.writestr("other.onnx", b"x")
    (tmp_path / "inner").write_bytes(b"inner")
    spec = WeightSpec("t", archive.as_uri(), file_sha256(tmp_path / "inner"), "det.onnx", "l", "onnx", archive_member="det.onnx")
    assert fetch_weights(spec, progress=False).read_bytes() == b"inner"


def test_hash_mismatch_is_refused_and_nothing_is_cached(tmp_path, isolated_home):
    spec = dataclasses.replace(_spec(tmp_path, b"tampered"), sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        fetch_weights(spec, progress=False)
    assert not (isolated_home / "weights" / "model.bin").exists()
    # A corrupt cached file is refused too.
    (isolated_home / "weights").mkdir(exist_ok=True)
    (isolated_home / "weights" / "model.bin").write_bytes(b"corrupt")
    with pytest.raises(WeightsError, match="refusing weights .*model.bin: sha256"):
        fetch_weights(spec, progress=False)


def test_declared_size_is_checked_before_the_hash(tmp_path, isolated_home):
    spec = _spec(tmp_path, b"12345", size_bytes=5)
    assert fetch_weights(spec, progress=False).read_bytes() == b"12345"
    (isolated_home / "weights" / "model.bin").write_bytes(b"123")  # a truncated cached copy
    with pytest.raises(WeightsError, match=r"refusing weights .*model.bin: 3 bytes, expected 5 .*truncated"):
        fetch_weights(spec, progress=False)
    short = dataclasses.replace(_spec(tmp_path, b"1234"), filename="other.bin", size_bytes=5)
    with pytest.raises(WeightsError, match="4 bytes, expected 5"):
        fetch_weights(short, progress=False)  # a short download never reaches the cache
    assert not (isolated_home / "weights" / "other.bin").exists()


def test_dsfd_release_declares_its_published_size():
    assert get_model_entry("dsfd_official").weight_spec().size_bytes == 481_004_605


def test_offline_message_says_what_to_place_where(isolated_home):
    spec = get_model_entry("scrfd_2.5g_kps").weight_spec()
    with pytest.raises(WeightsError) as info:
        fetch_weights(spec, progress=False)
    message = str(info.value)
    assert "det_2.5g.onnx" in message and spec.sha256 in message
    assert str(isolated_home / "weights" / spec.filename) in message and "--weights" in message


def test_every_release_declares_licence_hash_and_metrics():
    from facescope.models import list_models

    for name in list_models(pretrained=True):
        for spec in get_model_entry(name).weights:
            assert len(spec.sha256) == 64 and spec.license
            assert spec.url.startswith("https://") or (spec.embedded and cached_path(spec).is_file())  # embedded: in the package
            assert set(spec.metrics["widerface_val"]) == {"easy", "medium", "hard"}


def test_mmdet_and_dataparallel_checkpoints_load(tmp_path):
    source = create_model("scrfd_500m")
    state = source.state_dict()
    mmdet = tmp_path / "mmdet.pth"
    torch.save({"meta": {"epoch": 640}, "state_dict": state, "optimizer": {}}, mmdet)
    dp = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, dp)
    for path in (mmdet, dp):
        model = create_model("scrfd_500m", weights=path)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_wrong_architecture_is_explained(tmp_path):
    path = tmp_path / "2.5g.pth"
    torch.save(create_model("scrfd_2.5g_kps").state_dict(), path)
    with pytest.raises(WeightsError, match=r"do not fit architecture 'scrfd_500m_kps'.*they fit 'scrfd_2.5g_kps'"):
        create_model("scrfd_500m_kps", weights=path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        read_state_dict(path)
    with pytest.raises(WeightsError, match="neither a file nor a release"):
        create_model("scrfd_500m", weights=tmp_path / "missing.pth")
