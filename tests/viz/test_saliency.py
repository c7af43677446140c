"""Grad-CAM on a tiny model whose evidence for a class sits in a known region."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from vidpool.viz.saliency import grad_cam, overlay


class Tiny(nn.Module):
    """features: channel k = relu of colour channel k (a 1x1x1 identity conv); head: global average
    pool + identity classifier, so class k's logit is the mean of colour channel k."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv3d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(3).view(3, 3, 1, 1, 1))
        self.fc = nn.Linear(3, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(3))

    def forward(self, x):
        return self.fc(torch.relu(self.features(x)).mean((2, 3, 4)))


def test_map_peaks_where_the_class_evidence_is():
    x = torch.zeros(1, 3, 4, 16, 20)
    x[0, 0, 2, 4:8, 10:14] = 1.0  # red (class 0) only here
    x[0, 1, :, 12:16, 0:4] = 0.2  # some green elsewhere
    model = Tiny()
    cam, cls, scores = grad_cam(model, x, layer=model.features)
    assert cls == 0 and scores.shape == (3,)
    assert cam.shape == (4, 16, 20) and float(cam.max()) == pytest.approx(1.0)
    t, y, xx = np.unravel_index(int(cam.argmax()), cam.shape)
    assert 1 <= t <= 3 and 4 <= y < 8 and 10 <= xx < 14
    assert float(cam[:, 12:16, 0:4].max()) < 0.05  # the green region carries no class-0 evidence
    cam1, cls1, _ = grad_cam(model, x, target=1, layer=model.features)
    assert cls1 == 1 and float(cam1[:, 13:15, 1:3].mean()) > 0.9 and float(cam1[2, 5:7, 11:13].max()) < 0.05
    with pytest.raises(ValueError, match="not in 0..2"):
        grad_cam(model, x, target=5, layer=model.features)


def test_overlay_blends_the_colour_map():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    cam = np.zeros((2, 4, 4))
    cam[:, 0, 0] = 1.0
    out = overlay(frames, cam, alpha=1.0)
    assert out.shape == frames.shape and out[0, 0, 0, 0] > 100 and out[0, 3, 3, 2] > 100  # jet: red / blue


def test_tool_on_a_trained_checkpoint(tmp_path, synthetic_root):
    from vidpool.engine import train

    from ..engine.test_train import tiny_cfg

    train(tiny_cfg(synthetic_root, tmp_path / "run", "SOLVER.MAX_EPOCH", "1", "TEST.ENABLE", "False",
                   "TRAIN.EVAL_PERIOD", "0", "TENSORBOARD.ENABLE", "False"))
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint_epoch_00001.pyth"
    video = next(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(synthetic_root, "ucf101", "UCF-101"))
                 for f in fs if f.endswith(".avi"))
    tool = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "visualize_saliency.py")
    done = subprocess.run([sys.executable, tool, video, "--cfg", str(tmp_path / "run" / "config.yaml"),
                           "--checkpoint", str(ckpt), "--checkpoint", str(ckpt), "--class", "2",
                           "--out", str(tmp_path / "viz")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    name = os.path.splitext(os.path.basename(video))[0]
    assert done.stdout.count("class 2") == 2
    assert os.path.isfile(tmp_path / "viz" / f"{name}_saliency.png")
    assert os.path.isfile(tmp_path / "viz" / f"{name}_saliency.mp4")
