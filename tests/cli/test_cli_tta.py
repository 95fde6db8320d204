"""``--tta NAME`` on the command line: detect and eval run the protocol; an unknown name is refused
while the arguments are parsed (exit code 2, with the closest name)."""

from __future__ import annotations

import json
import shutil

import pytest

from facescope.cli import main

pytestmark = pytest.mark.shared


def test_detect_with_tta_runs_the_protocol(scrfd_onnx, wider_val_images, tmp_path, capsys):
    image = wider_val_images[0]
    common = ["detect", str(image), "--model", "scrfd_2.5g_kps", "--weights", str(scrfd_onnx["scrfd_2.5g_kps"])]
    assert main([*common, "--json", str(tmp_path / "single.json"), "--quiet"]) == 0
    assert main([*common, "--tta", "flip", "--json", str(tmp_path / "flip.json")]) == 0
    assert "TTA 'flip'" in capsys.readouterr().out
    single = json.loads((tmp_path / "single.json").read_text())["faces"]
    flipped = json.loads((tmp_path / "flip.json").read_text())["faces"]
    assert len(flipped) > 5 and flipped != single
    assert all(face["score"] >= 0.5 for face in flipped)  # the preset's threshold holds after the merge


@pytest.mark.parametrize("command", [["detect", "x.jpg"], ["eval", "widerface", "--images", "i", "--gt", "g", "--out", "o"],
                                     ["eval", "fddb", "--ellipses", "e", "--images", "i"]])
def test_unknown_protocol_is_refused_while_parsing(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--tta", "pyramidbx"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --tta: unknown TTA protocol 'pyramidbx' (did you mean 'pyramidbox'?)" in err


def test_eval_widerface_with_tta_notes_the_protocol(shared_data, scrfd_onnx, wider_val_images, tmp_path, capsys):
    images = tmp_path / "images"
    path = wider_val_images[0]
    (images / path.parent.name).mkdir(parents=True)
    shutil.copy(path, images / path.parent.name / path.name)
    argv = ["eval", "widerface", "--images", str(images), "--gt", str(shared_data / "widerface/ground_truth"),
            "--out", str(tmp_path / "run"), "--model", "scrfd_2.5g_kps", "--weights", str(scrfd_onnx["scrfd_2.5g_kps"]),
            "--tta", "flip", "--quiet", "--no-challenge"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "preset 'widerface'" in captured.err and "TTA 'flip'" in captured.err
    assert "tta 'flip' (protocol: single pass)" in captured.out  # the result says it is not the published protocol
    assert len(list((tmp_path / "run/predictions").rglob("*.txt"))) == 1


def test_eval_fddb_with_tta(scrfd_onnx, wider_val_images, tmp_path, capsys):
    """A one-image FDDB-format set made from a WIDER image: the detector runs with the protocol."""
    import cv2

    pics = tmp_path / "pics/2002/08"
    pics.mkdir(parents=True)
    image = cv2.imread(str(wider_val_images[0]))
    cv2.imwrite(str(pics / "img_1.jpg"), image)
    (tmp_path / "ellipses.txt").write_text("2002/08/img_1\n1\n20 12 1.5707963 50 40 1\n")
    argv = ["eval", "fddb", "--ellipses", str(tmp_path / "ellipses.txt"), "--images", str(tmp_path / "pics"),
            "--out", str(tmp_path / "out"), "--model", "scrfd_2.5g_kps", "--weights", str(scrfd_onnx["scrfd_2.5g_kps"]),
            "--tta", "flip", "--quiet"]
    assert main(argv) == 0
    lines = (tmp_path / "out/detections.txt").read_text().splitlines()
    assert lines[0] == "2002/08/img_1" and int(lines[1]) > 30  # score >= 0.02 (the FDDB default): many faces
