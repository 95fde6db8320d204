"""``facescope quantize``: static int8 QDQ of a small official file calibrated on a few real images."""

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest

from facescope import Detector
from facescope.cli import main
from facescope.export.quantize import DEFAULT_KEEP_FLOAT, float_nodes, quantization_record

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory, scrfd_onnx, shared_data):
    """scrfd_500m_kps quantised on 4 real photos at long:320 (minmax: the quick calibration)."""
    folder = tmp_path_factory.mktemp("quantize")
    calibration = folder / "calibration"
    calibration.mkdir()
    for name in ("t1.jpg", "selfie.jpg", "SSH_t2.jpg", "curve_test.jpg"):
        shutil.copy(shared_data / "images/crowd" / name, calibration / name)
    out = folder / "s500.int8.onnx"
    code = main(["quantize", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--calibration", str(calibration),
                 "--out", str(out), "--input-size", "long:320", "--method", "minmax"])  # fmt: skip
    assert code == 0
    return out


def test_int8_file_records_what_it_is(int8_file, scrfd_onnx):
    record = quantization_record(int8_file)
    assert record["format"] == "QDQ" and record["calibration"] == {"method": "minmax", "images": 4, "input_size": "long:320"}
    proto = onnx.load(str(int8_file))
    assert {p.key: p.value for p in proto.metadata_props}["facescope_model"] == "scrfd_500m_kps"
    # the stem and every depthwise convolution stay float: those are the convs without a DequantizeLinear weight
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    float_weights = {n.name for n in convs if any(i.name == n.input[1] for i in proto.graph.initializer)}
    assert set(record["kept_float"]) == float_weights and len(float_weights) == 1 + 20  # stem + 14 backbone and 6 head-tower depthwise convs
    assert sum(n.op_type == "QuantizeLinear" for n in proto.graph.node) > 20
    assert quantization_record(scrfd_onnx["scrfd_500m_kps"]) is None


def test_int8_file_detects_like_the_float_file(int8_file, scrfd_onnx, shared_data):
    image = cv2.imread(str(shared_data / "images/crowd/t1.jpg"))
    float_faces = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], input_size="long:320").detect(image, color_order="bgr")
    int8_faces = Detector("scrfd_500m_kps", int8_file, input_size="long:320").detect(image, color_order="bgr")
    assert len(float_faces) == len(int8_faces) == 6  # t1.jpg's six faces, no box vanished
    order = np.argsort(float_faces.boxes[:, 0]), np.argsort(int8_faces.boxes[:, 0])
    # faces of ~50 px: int8 moves a box by a few pixels at most
    assert np.abs(float_faces.boxes[order[0]] - int8_faces.boxes[order[1]]).max() < 4.0


def test_int8_file_runs_through_the_cli_and_warns_off_its_calibration_size(int8_file, shared_data, tmp_path, caplog):
    out = tmp_path / "faces.json"
    command = ["detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "scrfd_500m_kps", "--weights", str(int8_file), "--json", str(out)]
    assert main([*command, "--input-size", "long:320"]) == 0
    assert len(json.loads(out.read_text())["faces"]) == 6 and "calibrated at" not in caplog.text
    # at another size than it was calibrated at, this 4-image minmax calibration loses every face: the pitfall is named
    assert main(command) == 0
    assert "s500.int8.onnx was calibrated at long:320 but runs at long:640" in caplog.text
    assert json.loads(out.read_text())["faces"] == []


def test_keep_float_groups_name_the_nodes(scrfd_onnx):
    proto = onnx.load(str(scrfd_onnx["scrfd_500m_kps"]))
    heads = float_nodes(proto, ["heads"])
    assert len(heads) == 9  # score, box and landmark convolutions of 3 levels
    assert len(float_nodes(proto, DEFAULT_KEEP_FLOAT)) == 21 and float_nodes(proto, ["Conv_0"]) == ["Conv_0"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--keep-float", "heads,Conv_9999"], "--keep-float 'Conv_9999' is neither a group"),
        (["--ap-images", "."], "--ap-images and --ap-gt go together"),
        (["--input-size", "original"], "not 'original'"),
        (["--method", "kl"], None),  # argparse: invalid choice
    ],
)
def test_bad_quantize_options_are_one_line_errors(args, words, scrfd_onnx, shared_data, tmp_path, capsys):
    command = ["quantize", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]),
               "--calibration", str(shared_data / "images/crowd"), "--out", str(tmp_path / "x.onnx"), *args]  # fmt: skip
    if words is None:
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 2
        return
    assert main(command) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not (tmp_path / "x.onnx").exists()


def test_empty_calibration_folder_and_a_file_of_another_model_are_refused(scrfd_onnx, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["quantize", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--out", str(tmp_path / "x.onnx")]
    assert main([*base, "--calibration", str(empty)]) == 2
    assert "no images" in capsys.readouterr().err
    assert main(["quantize", "scrfd_2.5g_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--calibration", str(empty),
                 "--out", str(tmp_path / "x.onnx")]) == 2  # fmt: skip
    assert "does not fit model 'scrfd_2.5g_kps'" in capsys.readouterr().err


def test_ap_report_gives_both_files_on_a_wider_subset(int8_file, scrfd_onnx, wider_val_images, shared_data, tmp_path):
    from facescope.cli.quantize import ap_report

    images = tmp_path / "images"
    for path in wider_val_images[:2]:
        (images / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, images / path.parent.name / path.name)
    report = ap_report("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], int8_file, str(images), str(shared_data / "widerface/ground_truth"), "long:320", 1)
    lines = report.splitlines()
    assert lines[0] == "AP (mini-benchmark: images):" and lines[3].startswith("| scrfd_500m_kps.onnx | 0.")
    assert lines[4].startswith("| s500.int8.onnx | ") and "int8 - float32 (points): easy " in lines[5]
