"""Fine-tuning helpers."""
import io

import pytest
import torch

from vidpool.models import create_model
from vidpool.models.heads import freeze_stages, replace_classifier, stage_names


@pytest.mark.parametrize("name", ["r3d_18", "i3d"])
def test_replace_classifier_keeps_the_backbone(name):
    torch.manual_seed(0)
    model = create_model(name, 200)  # e.g. a HACS model
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("fc.", "logits."))}
    replace_classifier(model, 101)  # -> UCF-101
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in backbone.items())
    assert model(torch.randn(2, 3, 8, 32, 32)).shape == (2, 101)
    with pytest.raises(ValueError, match="positive int"):
        replace_classifier(model, 0)


def test_freeze_stages_freezes_parameters_and_bn_statistics():
    torch.manual_seed(0)
    model = create_model("r3d_18", 10)
    assert stage_names(model)[:3] == ["stem", "pool", "layer1"]
    frozen = freeze_stages(model, 3)
    assert frozen == ["stem", "pool", "layer1"]
    model.train()
    stats = model.layer1[0].conv1[1].running_mean.clone()
    live = model.layer2[0].conv1[1].running_mean.clone()
    model(torch.randn(2, 3, 8, 32, 32)).sum().backward()
    assert all(p.grad is None for p in model.layer1.parameters())
    assert model.layer2[0].conv1[0].weight.grad is not None
    assert torch.equal(model.layer1[0].conv1[1].running_mean, stats)  # frozen BN keeps its statistics
    assert not torch.equal(model.layer2[0].conv1[1].running_mean, live)
    with pytest.raises(ValueError, match="upto must be in"):
        freeze_stages(model, 99)
    buffer = io.BytesIO()
    torch.save(model, buffer)  # whole-model pickling still works
    buffer.seek(0)
    again = torch.load(buffer, weights_only=False).train()
    again(torch.randn(2, 3, 8, 32, 32))
    assert torch.equal(again.layer1[0].conv1[1].running_mean, stats)
