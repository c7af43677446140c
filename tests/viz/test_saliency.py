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


BLOBS = [(8, 8), (8, 40), (40, 8), (40, 40)]  # top-left corners of a 16x16 blob in a 64x64 frame


def _blob_video(path, colour, quadrant, rng):
    import av

    with av.open(path, "w") as out:
        stream = out.add_stream("ffv1", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "bgr0"
        for _ in range(8):
            img = rng.integers(40, 90, (64, 64, 3)).astype(np.uint8)
            y, x = BLOBS[quadrant]
            img[y:y + 16, x:x + 16] = [220, 40, 40] if colour == 0 else [40, 220, 40]
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.mark.slow
def test_trained_checkpoint_looks_at_the_evidence(tmp_path):
    """A model trained through the engine to tell a red blob from a green one (anywhere in the frame)
    has its Grad-CAM peak on the blob of a held-out video; the tool runs on that checkpoint."""
    from vidpool.config import load_cfg
    from vidpool.engine import train

    rng = np.random.default_rng(0)
    root = tmp_path / "blobs"
    os.makedirs(root / "ucfTrainTestlist")
    train_list, test_list = [], []
    for c, name in enumerate(("Red", "Green")):
        os.makedirs(root / name)
        for i in range(16):
            f = f"v_{name}_g{i + 1:02d}_c01.mkv"
            _blob_video(str(root / name / f), c, i % 4, rng)
            (train_list if i < 12 else test_list).append((name, f, c, i % 4))
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 Red\n2 Green\n")
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("".join(f"{n}/{f} {c + 1}\n" for n, f, c, _ in train_list))
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text("".join(f"{n}/{f}\n" for n, f, _, _ in test_list))
    overrides = ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101", "DATA.PATH_TO_DATA_DIR", str(root),
                 "MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "8", "MODEL.NUM_CLASSES", "2", "DATA.NUM_FRAMES", "4",
                 "DATA.SAMPLING_RATE", "8", "DATA.TARGET_FPS", "8", "DATA.TRAIN_JITTER_SCALES", "[64, 64]",
                 "DATA.TRAIN_CROP_SIZE", "64", "DATA.TEST_CROP_SIZE", "64", "TRAIN.BATCH_SIZE", "8",
                 "DATA_LOADER.NUM_WORKERS", "0", "SOLVER.BASE_LR", "0.05", "SOLVER.MAX_EPOCH", "4",
                 "SOLVER.STEPS", "[0]", "SOLVER.LRS", "[1]", "LOG_PERIOD", "0", "OUTPUT_DIR", str(tmp_path / "run"),
                 "TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0",
                 "TRAIN.PRECISE_BN", "True"]  # eval-mode BN statistics from the final weights: 12 steps are few
    cfg = load_cfg(None, overrides)
    train(cfg)
    ckpt = str(tmp_path / "run" / "checkpoints" / "checkpoint_epoch_00004.pyth")
    from vidpool.cli import viz_saliency as tool

    model, _ = tool.load_model(cfg, ckpt)
    seen = []
    for name, f, c, quadrant in test_list:
        clip, _, _ = tool.load_clip(cfg, str(root / name / f))
        cam, cls, scores = grad_cam(model, clip)
        y, x = BLOBS[quadrant]
        assert cls == c and scores[c] > 0.9, f
        # layer4 sees 16 px cells whose receptive fields span most of the frame, and the map is
        # upsampled from 4x4: compare the blob's quadrant with the diagonally opposite one
        qy, qx = y // 32 * 32, x // 32 * 32
        mine = float(cam[:, qy:qy + 32, qx:qx + 32].mean())
        opposite = float(cam[:, 32 - qy:64 - qy, 32 - qx:64 - qx].mean())
        seen.append(mine - opposite)
    # a tiny network's maps are coarse: most maps, and the mean, favour the evidence clearly
    assert sum(d > 0 for d in seen) >= 6 and np.mean(seen) > 0.2, seen
    video = str(root / test_list[0][0] / test_list[0][1])
    done = subprocess.run([sys.executable, "-m", "vidpool", "visualize", "saliency", video,
                           "--cfg", str(tmp_path / "run" / "config.yaml"), "--weights", ckpt, "--weights", ckpt,
                           "--out", str(tmp_path / "viz")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("class 0") == 2  # each model's predicted class: red
    stem = os.path.splitext(os.path.basename(video))[0]
    assert os.path.isfile(tmp_path / "viz" / f"{stem}_saliency.png")
    assert os.path.isfile(tmp_path / "viz" / f"{stem}_saliency.mp4")
