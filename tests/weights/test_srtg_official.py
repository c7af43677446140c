"""The official SRTG networks: parameter counts, files in the published layout, plain-network files."""
import pytest
import torch
import torchvision

from tests.weights.sources import SRTGVideoResNet, randomise
from vidpool.models import create_model
from vidpool.weights import load_weights


def _lstm_params(h):
    return 2 * 4 * (h * h + h * h + 2 * h)  # 2 layers, 4 gates, W_ih, W_hh, two biases (input size = h)


def test_parameter_counts_from_the_architecture():
    # r3d_18: torchvision's r3d_18 (same convs) plus one SR block per basic block, as wide as its stage
    tv = sum(p.numel() for p in torchvision.models.video.r3d_18(num_classes=400).parameters())
    sr = sum(2 * _lstm_params(h) for h in (64, 128, 256, 512))
    assert tv + sr == 44_543_312

    def count(name):
        with torch.device("meta"):
            return sum(p.numel() for p in create_model(name, 400).parameters())
    assert count("srtg_r3d_18_official") == 44_543_312
    assert count("srtg_r3d_50_official") == 56_904_656
    assert count("r3d_18_official") == tv  # without SR blocks: exactly torchvision's count


def _lively(net):
    """Random weights, with LSTMs whose output gates are open and whose cells hold their input, so
    that x * h keeps the signal through eight or more SR blocks (else every clip gets the same logits)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.LSTM):
                for name, p in m.named_parameters():
                    if name.startswith("bias_ih"):
                        h = p.shape[0] // 4
                        p[:h] += 2.0        # input gate
                        p[h:2 * h] += 2.0   # forget gate
                        p[3 * h:] += 3.0    # output gate
                    elif name.startswith("weight_ih"):
                        p.mul_(4.0)
    return net


def _published(path, net):
    """As the official training script saves: {'epoch', 'state_dict'} of a DataParallel network."""
    torch.save({"epoch": 30, "state_dict": {"module." + k: v for k, v in net.state_dict().items()},
                "optimizer": {"state": {}, "param_groups": []}}, path)


@pytest.mark.parametrize("kind,depth", [("r3d", 18), ("r2plus1d", 18), ("r3d", 50), ("r2plus1d", 34)])
def test_official_files_give_the_official_logits(tmp_path, kind, depth):
    src = _lively(randomise(SRTGVideoResNet(kind, depth, n_classes=6), depth))
    path = str(tmp_path / "srtg.pth")
    _published(path, src)
    model = create_model(f"srtg_{kind}_{depth}_official", 6).eval()
    report = load_weights(model, path)
    assert report.source == "srtg" and report.tensors_loaded == len(src.state_dict())
    x = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        reference = src(x)
        assert float((reference[0] - reference[1]).abs().max() / reference.abs().max()) > 0.01  # input matters
        # in float64: float32 rounding differences (the fused LSTM kernel against nn.LSTM's) grow through
        # the saturated LSTMs of these weights to 1e-3 of a logit, and would hide a real difference
        exact = src.double()(x.double())
        assert float((exact - model.double()(x.double())).abs().max() / exact.abs().max()) < 1e-9
        src.float(), model.float()
    soft = create_model(f"srtg_{kind}_{depth}_official", 6, pool="softpool").eval()
    load_weights(soft, path)  # the SoftPool paper's SRTG rows: SoftPool swapped into the official network
    with torch.no_grad():
        assert float((soft(x) - reference).abs().max() / reference.abs().max()) > 1e-3


def test_plain_files_of_the_official_code_are_named_and_load_into_the_plain_network(tmp_path):
    src = randomise(SRTGVideoResNet("r3d", 50, recursion=False, n_classes=6))
    path = str(tmp_path / "srtg_r3d_50.pth")
    _published(path, src)
    with pytest.raises(ValueError, match=r"plain r3d_50 network of the official SRTG code.*r3d_50_official"):
        load_weights(create_model("srtg_r3d_50_official", 6), path)
    model = create_model("r3d_50_official", 6).eval()
    assert load_weights(model, path).source == "srtg"
    x = torch.randn(1, 3, 8, 48, 48)
    with torch.no_grad():
        assert float((src(x) - model(x)).abs().max() / src(x).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="have the published widths"):
        create_model("r3d_50_official", 6, base_width=16)
    with pytest.raises(ValueError, match="holds r3d_50_official weights, which do not fit r3d_34_official"):
        load_weights(create_model("r3d_34_official", 6), path)


def test_official_file_round_trips_through_a_vidpool_checkpoint(tmp_path):
    from vidpool.config import load_cfg_string
    from vidpool.engine.checkpoint import load_checkpoint
    from vidpool.models import build_model
    from vidpool.weights import save_converted

    src = _lively(randomise(SRTGVideoResNet("r2plus1d", 18, n_classes=5), 3))
    path, out = str(tmp_path / "srtg.pth"), str(tmp_path / "converted.pyth")
    _published(path, src)
    report = save_converted(path, out, "srtg_r2plus1d_18_official", pool="softpool")
    assert report.source == "srtg"
    state = load_checkpoint(out)
    cfg = load_cfg_string(state["cfg"])
    assert (cfg.MODEL.ARCH, cfg.MODEL.POOL, cfg.MODEL.NUM_CLASSES) == ("srtg_r2plus1d_18_official", "softpool", 5)
    rebuilt = build_model(cfg).eval()
    rebuilt.load_state_dict(state["model"])
    direct = create_model("srtg_r2plus1d_18_official", 5, pool="softpool").eval()
    load_weights(direct, path)
    x = torch.randn(1, 3, 8, 48, 48)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), direct(x))
