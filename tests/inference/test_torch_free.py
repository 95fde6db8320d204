"""Detection with ONNX weights imports no torch; ONNX files of another architecture are refused."""

import json
import subprocess
import sys

import pytest

from facescope.errors import WeightsError
from facescope.inference.detector import Detector

pytestmark = pytest.mark.shared

NO_TORCH_PROBE = """
import sys
from facescope.cli import main
code = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))
print('TORCH_MODULES', leaked)
sys.exit(code)
"""


def test_cli_detect_with_onnx_weights_never_imports_torch(scrfd_onnx, shared_data, tmp_path):
    out_json, out_image = tmp_path / "faces.json", tmp_path / "annotated.jpg"
    args = ["detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "scrfd_500m_kps",
            "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--json", str(out_json), "--out", str(out_image)]
    run = subprocess.run([sys.executable, "-c", NO_TORCH_PROBE, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "TORCH_MODULES []" in run.stdout
    assert "[onnxruntime]" in run.stdout  # the default backend picked onnxruntime for the .onnx file
    record = json.loads(out_json.read_text())
    assert record["model"] == "scrfd_500m_kps" and len(record["faces"]) == 6 and out_image.stat().st_size > 0


def test_python_api_with_onnx_weights_never_imports_torch(scrfd_onnx, shared_data):
    code = (
        "import sys, facescope; "
        f"d = facescope.Detector('scrfd_2.5g_kps', {str(scrfd_onnx['scrfd_2.5g_kps'])!r}); "
        f"faces = d.detect({str(shared_data / 'images/crowd/t1.jpg')!r}); "
        "print(len(faces), type(faces.boxes).__name__, d.backend.name, 'torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["6", "ndarray", "onnxruntime", "False"]


@pytest.mark.parametrize(
    "model,file,fits",
    [
        ("retinaface_mnet025", "scrfd_2.5g_kps", "scrfd_2.5g_kps"),
        ("scrfd_500m_kps", "scrfd_2.5g_kps", "scrfd_2.5g_kps"),
        ("scrfd_2.5g_kps", "scrfd_500m_kps", "scrfd_500m_kps"),
        ("retinaface_paper_r50", "scrfd_500m_kps", "scrfd_500m_kps"),
    ],
)
def test_official_file_of_another_architecture_is_refused(model, file, fits, scrfd_onnx):
    with pytest.raises(WeightsError, match=rf"does not fit model '{model}': it is the released weights '{file}\.insightface' .*; it fits {fits}$"):
        Detector(model, scrfd_onnx[file])


def test_unknown_file_is_judged_by_its_output_shapes(scrfd_onnx):
    """The static-640 file is no registered release: its outputs decide what it fits."""
    with pytest.raises(WeightsError) as caught:
        Detector("scrfd_500m", scrfd_onnx["scrfd_500m_kps_static640"])
    message = str(caught.value)
    assert "for a 640x640 input its 9 outputs have (rows, channels) [(12800, 1), (3200, 1), (800, 1), (12800, 4)" in message
    assert "'scrfd_500m' needs 6 outputs" in message
    assert message.endswith("it fits retinaface_mnet025, retinaface_r50, scrfd_10g_kps, scrfd_2.5g_kps, scrfd_500m_kps")
    with pytest.raises(WeightsError, match="'retinaface_paper_r50' needs 15 outputs"):
        Detector("retinaface_paper_r50", scrfd_onnx["scrfd_500m_kps_static640"])
    detector = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps_static640"])
    assert detector.model_name == "scrfd_500m_kps" and "scrfd_500m_bnkps_static640.onnx" in detector.describe()


WITHOUT_TORCH = """
import sys
class NoTorch:  # as if only the base install were present: torch and torchvision cannot be imported
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision'):
            raise ImportError(f"No module named '{name}'")
        return None
sys.meta_path.insert(0, NoTorch())
from facescope.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_torch_onnx_detection_works_and_pth_names_the_extra(scrfd_onnx, retinaface_mnet_weights, shared_data):
    image = str(shared_data / "images/crowd/t1.jpg")
    onnx_run = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, "detect", image, "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"])],
        capture_output=True, text=True,
    )
    assert onnx_run.returncode == 0, onnx_run.stderr
    assert "6 faces" in onnx_run.stdout
    pth_run = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, "detect", image, "--model", "retinaface_mnet025", "--weights", str(retinaface_mnet_weights)],
        capture_output=True, text=True,
    )
    assert pth_run.returncode == 2
    assert pth_run.stderr.strip().splitlines() == [
        'facescope: error: running weights mobilenet0.25_Final.pth needs PyTorch, which is not installed: '
        'pip install "facescope[torch]" (or use .onnx weights)'
    ]
