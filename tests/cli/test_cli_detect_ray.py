"""``facescope detect --engine ray``: its options are checked before any work, a missing extra is named in
one line, and the command runs end to end on a local Ray instance it starts itself (slow)."""

import sys

import pytest

from facescope.cli import main


def _detect(*extra):
    return main(["detect", "nowhere/", "--model", "scrfd_500m_kps", *extra])


def test_engine_ray_without_the_extra_names_it_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as without the extra
    assert _detect("--engine", "ray", "--out-dir", "out") == 2
    err = capsys.readouterr().err
    assert err == 'facescope: error: --engine ray needs Ray Data, which is not installed: pip install "facescope[ray]"\n'


@pytest.mark.parametrize(
    "options,message",
    [
        (["--out-dir", "out"], "--out-dir need --engine ray"),
        (["--address", "auto"], "--address need --engine ray"),
        (["--engine", "ray"], "--engine ray needs --out-dir OUT"),
        (["--engine", "ray", "--out-dir", "o", "--json", "f.json"], "--json are not available with --engine ray"),
    ],
)
def test_engine_options_are_checked_before_any_work(options, message, capsys):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    assert _detect(*options) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.shared
def test_engine_ray_end_to_end_with_two_actors(wider_val_images, scrfd_onnx, tmp_path, capsys):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from facescope.scale.records import read_results

    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in wider_val_images[:12]) + "\nnot_there.jpg\n")
    args = ["detect", str(listing), "--engine", "ray", "--out-dir", str(tmp_path / "out"), "--actors", "2",
            "--batch-size", "4", "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"])]  # fmt: skip
    assert main(args) == 1  # the missing file is an error row
    printed = capsys.readouterr()
    assert "13 images: 13 detected now" in printed.out and "1 image could not be read" in printed.err
    table = read_results(tmp_path / "out")
    assert table.num_rows == 13 and table.column("error").null_count == 12
    assert main(args) == 0 and "13 images: 0 detected now" in capsys.readouterr().out  # nothing new, no error this run
