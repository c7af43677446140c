"""load_weights against the source networks (tests/weights/sources.py): same logits after loading the
published key layouts, pooling swaps, fine-tuning, wrong files, and refusing to unpickle code."""
import os

import pytest
import torch
import torchvision

from tests.weights.sources import HaraResNet, TFInceptionI3d, randomise
from vidpool.models import create_model
from vidpool.weights import load_weights
from vidpool.models.i3d import set_tf_same
from vidpool.weights import UntrustedCheckpointError
from vidpool.weights.save import save_converted


def _rel(a, b):
    return float((a - b).abs().max() / a.abs().max())


def _published_hara(path, src, depth, factorised, prefix="module."):
    """A file as 3D-ResNets-PyTorch's training script saves it (DataParallel, arch, optimizer)."""
    arch = f"resnet{'2p1d' if factorised else ''}-{depth}"
    scheduler = torch.optim.lr_scheduler.MultiStepLR(torch.optim.SGD([torch.zeros(1)], lr=0.1), [50, 100])
    torch.save({"epoch": 200, "arch": arch, "state_dict": {prefix + k: v for k, v in src.state_dict().items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
                "scheduler": scheduler.state_dict()}, path)  # its milestones are a collections.Counter
    return path


@pytest.mark.parametrize("factorised", [False, True], ids=["resnet", "resnet2p1d"])
@pytest.mark.parametrize("depth", [10, 18, 34, 50, 101, 152, 200])
def test_hara_files_of_every_depth_give_the_source_logits(tmp_path, depth, factorised):
    src = randomise(HaraResNet(depth, factorised, n_classes=7, widen_factor=0.25 if depth > 50 else 0.5), depth)
    path = _published_hara(str(tmp_path / "w.pth"), src, depth, factorised)
    name = f"{'r2plus1d' if factorised else 'r3d'}_{depth}"
    model = create_model(name, 7, base_width=16 if depth > 50 else 32).eval()
    report = load_weights(model, path)
    assert report.source == "hara" and report.classifier == "kept" and report.meta["arch"].endswith(str(depth))
    assert report.tensors_loaded == len(src.state_dict()) and report.keys_renamed > 0
    x = torch.randn(2, 3, 6, 48, 40)
    with torch.no_grad():
        assert _rel(src(x), model(x)) < 1e-4


def test_raw_hara_state_dict_and_pyslowfast_container(tmp_path):
    src = randomise(HaraResNet(18, n_classes=5, widen_factor=0.25))
    raw, slow = str(tmp_path / "raw.pth"), str(tmp_path / "slow.pyth")
    torch.save(src.state_dict(), raw)
    x = torch.randn(1, 3, 4, 32, 32)
    model = create_model("r3d_18", 5, base_width=16).eval()
    assert load_weights(model, raw).source == "hara"
    with torch.no_grad():
        assert _rel(src(x), model(x)) < 1e-4
    # PySlowFast writes {'epoch', 'model_state', 'optimizer_state', 'cfg'} with DDP prefixes
    mine = randomise(create_model("r3d_18", 5, base_width=16), 3)
    torch.save({"epoch": 4, "model_state": {"module." + k: v for k, v in mine.state_dict().items()},
                "optimizer_state": {"state": {}, "param_groups": []}, "cfg": "TRAIN:\n  ENABLE: true\n"}, slow)
    report = load_weights(model, slow)
    assert report.source == "pyslowfast" and report.meta["epoch"] == 4
    with torch.no_grad():
        assert torch.equal(model(x), mine.eval()(x))
    torch.save({"model_state": {"s1.pathway0_stem.conv.weight": torch.zeros(64, 3, 1, 7, 7)}}, slow)
    with pytest.raises(ValueError, match="PySlowFast's own networks"):
        load_weights(model, slow)


def test_pytorch_i3d_file_gives_its_logits_with_tf_same_padding(tmp_path):
    src = randomise(TFInceptionI3d(6))
    path = str(tmp_path / "rgb_imagenet.pt")
    # saved by PyTorch before 0.4.1: no num_batches_tracked
    torch.save({k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}, path)
    model = create_model("i3d", 6).eval()
    report = load_weights(model, path)
    assert report.source == "pytorch_i3d" and report.options == {"tf_same": True} and model.tf_same
    x = torch.randn(1, 3, 21, 224, 224)  # odd length: SAME puts the extra cell at the end
    with torch.no_grad():
        reference = src.clip_logits(x)
        assert _rel(reference, model(x)) < 1e-4
        set_tf_same(model, False)  # the option is what makes the difference
        assert _rel(reference, model(x)) > 1e-2
    # a converted file carries the padding mode: a model built symmetric gets it back
    out = str(tmp_path / "i3d.pyth")
    save_converted(path, out, "i3d")
    fresh = create_model("i3d", 6).eval()
    load_weights(fresh, out)
    assert fresh.tf_same
    with torch.no_grad():
        assert _rel(reference, fresh(x)) < 1e-4


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18"])
def test_torchvision_state_dicts_into_the_tv_models(tmp_path, name):
    src = randomise(getattr(torchvision.models.video, name)(num_classes=4), 2)
    path = str(tmp_path / "tv.pth")
    torch.save(src.state_dict(), path)
    model = create_model(name + "_tv", 4).eval()
    report = load_weights(model, path)
    assert report.source == "torchvision" and report.keys_renamed == 0
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert _rel(src(x), model(x)) < 1e-4


def test_max_pool_weights_into_softpool_and_learned_pools(tmp_path):
    src = randomise(HaraResNet(18, n_classes=5, widen_factor=0.25))
    path = _published_hara(str(tmp_path / "w.pth"), src, 18, False)
    soft = create_model("r3d_18", 5, pool="softpool", base_width=16)
    report = load_weights(soft, path)
    assert report.kept_initial == [] and torch.equal(soft.stem[0].weight, src.conv1.weight)
    lip = create_model("r3d_18", 5, pool="lip", base_width=16)
    before = {k: v.clone() for k, v in lip.state_dict().items() if k.startswith("pool.")}
    report = load_weights(lip, path)
    assert before and sorted(report.kept_initial) == sorted(before)
    assert all(torch.equal(lip.state_dict()[k], v) for k, v in before.items())
    assert torch.equal(lip.layer4[1].conv2[0].weight, src.layer4[1].conv2.weight)


def test_other_class_count_needs_finetune_and_keeps_a_fresh_classifier(tmp_path):
    src = randomise(HaraResNet(18, n_classes=7, widen_factor=0.25))
    path = _published_hara(str(tmp_path / "w.pth"), src, 18, False)
    model = create_model("r3d_18", 3, base_width=16)
    fresh = model.fc.weight.clone()
    with pytest.raises(ValueError, match=r"7 outputs, the model 3.*finetune=True"):
        load_weights(model, path)
    report = load_weights(model, path, finetune=True)
    assert report.classifier.startswith("dropped") and torch.equal(model.fc.weight, fresh)
    assert torch.equal(model.layer1[0].conv1[0].weight, src.layer1[0].conv1.weight)


def test_file_of_another_depth_or_family_names_both_and_leaves_the_model(tmp_path):
    src = randomise(HaraResNet(50, n_classes=7, widen_factor=0.25))
    path = _published_hara(str(tmp_path / "w.pth"), src, 50, False)
    model = create_model("r3d_18", 7, base_width=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"arch 'resnet-50'.*holds r3d_50 \(of another width\) weights, which do not fit r3d_18") as e:
        load_weights(model, path)
    assert "layer1.0.conv1.0.weight" in str(e.value) and "unchanged" in str(e.value)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match=r"holds r3d_50 \(of another width\) weights, which do not fit r2plus1d_50"):
        load_weights(create_model("r2plus1d_50", 7, base_width=16), path)
    with pytest.raises(ValueError, match="read as a pytorch_i3d file but holds a hara checkpoint"):
        load_weights(model, path, source="pytorch_i3d")
    shortcut_a = {k: v for k, v in src.state_dict().items() if ".downsample." not in k}
    torch.save(shortcut_a, path)
    with pytest.raises(ValueError, match="shortcut type A"):
        load_weights(model, path)
    with pytest.raises(ValueError, match="build the model as 'i3d'"):
        torch.save(randomise(TFInceptionI3d(7)).state_dict(), path)
        load_weights(model, path)


def _touch(path):
    """Runs at unpickling time: what a malicious checkpoint would do."""
    open(path, "w").write("ran")
    return 0


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _touch, (self.marker,)


def test_files_that_need_unpickling_are_refused_unless_trusted(tmp_path):
    src = randomise(HaraResNet(18, n_classes=5, widen_factor=0.25))
    marker, path = str(tmp_path / "marker"), str(tmp_path / "evil.pth")
    torch.save({"arch": "resnet-18", "state_dict": src.state_dict(), "scheduler": Payload(marker)}, path)
    model = create_model("r3d_18", 5, base_width=16)
    with pytest.raises(UntrustedCheckpointError, match=r"trusted=True.*TRAIN.CHECKPOINT_TRUSTED True"):
        load_weights(model, path)
    assert not os.path.exists(marker)  # nothing in the file ran
    load_weights(model, path, trusted=True)  # the explicit opt-in unpickles it all
    assert os.path.exists(marker) and torch.equal(model.stem[0].weight, src.conv1.weight)


def test_convert_tool_writes_a_checkpoint_that_builds_and_computes_the_source(tmp_path):
    from vidpool.cli import convert as tool
    from vidpool.config import load_cfg_string
    from vidpool.engine.checkpoint import load_checkpoint
    from vidpool.models import build_model

    src = randomise(HaraResNet(10, factorised=True, n_classes=9, widen_factor=0.25))
    path = _published_hara(str(tmp_path / "w.pth"), src, 10, True)
    out = str(tmp_path / "out" / "r2p1d10.pyth")
    assert tool.main(["--weights", path, "--out", out, "--arch", "r2plus1d_10"]) == 2  # 64-wide model, 16-wide file
    assert not os.path.exists(out)
    assert tool.main(["--weights", path, "--out", out, "--arch", "r2plus1d_10", "--base-width", "16"]) == 0
    state = load_checkpoint(out)  # weights_only
    cfg = load_cfg_string(state["cfg"])
    assert (cfg.MODEL.ARCH, cfg.MODEL.NUM_CLASSES, cfg.MODEL.BASE_WIDTH) == ("r2plus1d_10", 9, 16)
    model = build_model(cfg).eval()
    model.load_state_dict(state["model"])
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert _rel(src(x), model(x)) < 1e-4
    assert tool.main(["--weights", path, "--out", out, "--arch", "r2plus1d_10", "--base-width", "16", "--pool", "softpool",
                      "--num-classes", "4"]) == 0
    cfg = load_cfg_string(load_checkpoint(out)["cfg"])
    assert (cfg.MODEL.POOL, cfg.MODEL.NUM_CLASSES) == ("softpool", 4)


def _files_that_are_not_checkpoints(tmp_path):
    """Files a download goes wrong into, each with the words its message must have."""
    good = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.zeros(64)}}, good)
    legacy = tmp_path / "legacy.pth"
    torch.save({"model": {"w": torch.zeros(64)}}, legacy, _use_new_zipfile_serialization=False)
    files = {
        "page.pth": (b"\n<!DOCTYPE html><html><head><title>Google Drive</title></head></html>", "looks like an HTML page"),
        "lfs.pth": (b"version https://git-lfs.github.com/spec/v1\noid sha256:0a1b\nsize 98765\n", "is a Git LFS pointer"),
        "empty.pth": (b"", "is empty"),
        "zip_cut.pth": (good.read_bytes()[: good.stat().st_size // 2], "is truncated"),
        "pickle_cut.pth": (legacy.read_bytes()[: legacy.stat().st_size // 3], "is truncated"),
        "text.pth": (b"hello, world", "is not a PyTorch checkpoint"),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    return {str(tmp_path / n): words for n, (_, words) in files.items()}


def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path):
    from vidpool.weights import NotACheckpointError

    model = create_model("r3d_10", 5, base_width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for path, words in _files_that_are_not_checkpoints(tmp_path).items():
        with pytest.raises(NotACheckpointError) as error:
            load_weights(model, path)
        assert words in str(error.value) and path in str(error.value)
        assert "trusted" not in str(error.value)  # not the message for pickled objects
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_only_a_pickle_with_objects_is_called_untrusted(tmp_path):
    path = str(tmp_path / "objects.pth")
    torch.save({"model": {"w": torch.zeros(3)}, "args": argparse_namespace()}, path)
    with pytest.raises(UntrustedCheckpointError, match="trusted=True"):
        load_weights(create_model("r3d_10", 5, base_width=8), path)


def argparse_namespace():
    import argparse

    return argparse.Namespace(lr=0.1)  # what training scripts of other code bases often pickle
