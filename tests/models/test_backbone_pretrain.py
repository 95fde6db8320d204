"""ImageNet initialisation of RetinaFace bodies from classification checkpoints."""

import pytest
import torch
import torchvision

from facescope.errors import WeightsError
from facescope.models import create_model
from facescope.models.backbones import TorchvisionResNetBody, load_backbone_pretrain


@pytest.mark.shared
def test_mobilenet_pretrain_tar_loads_into_the_body_without_fc(retinaface_backbone_pretrain):
    path = retinaface_backbone_pretrain
    model = create_model("retinaface_mnet025")
    fpn_before = model.fpn.state_dict()["output1.0.weight"].clone()
    dropped = load_backbone_pretrain(model.body, path)
    assert dropped == ["fc.bias", "fc.weight"]
    file_state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    body = model.body.state_dict()
    assert len(body) == len(file_state) - 2  # every body tensor came from the file
    assert torch.equal(body["stage1.0.0.weight"], file_state["module.stage1.0.0.weight"])
    assert torch.equal(body["stage3.1.4.running_var"], file_state["module.stage3.1.4.running_var"])
    assert torch.equal(model.fpn.state_dict()["output1.0.weight"], fpn_before)  # only the body changes


def test_torchvision_resnet_file_loads_into_the_r50_body(tmp_path):
    torch.manual_seed(0)
    classifier = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(classifier.state_dict(), path)
    body = TorchvisionResNetBody(50, ("layer2", "layer3", "layer4"))
    assert load_backbone_pretrain(body, path) == ["fc.bias", "fc.weight"]
    assert torch.equal(body.state_dict()["layer4.2.conv3.weight"], classifier.state_dict()["layer4.2.conv3.weight"])


def test_a_file_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"module.features.0.weight": torch.zeros(3)}}, path)
    with pytest.raises(WeightsError, match="'features.0.weight' does not belong to the RetinaFaceMobileNetV1 body"):
        load_backbone_pretrain(create_model("retinaface_mnet025").body, path)
    torch.save({"stage1.0.0.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match="missing from the file"):
        load_backbone_pretrain(create_model("retinaface_mnet025").body, path)
