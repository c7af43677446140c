"""predict / vidpool predict on the real test clips: the views the model receives, the probabilities
it prints (the mean softmax of those views' logits), class names, and unreadable files."""
import json
import os

import pytest
import torch

from vidpool.config import load_cfg
from vidpool.data.datasets.base import packaged_classes
from vidpool.models import build_model

VIDEOS = os.path.join(os.path.dirname(__file__), "..", "assets", "videos")
CLIPS = [os.path.join(VIDEOS, n) for n in ("arm_wrestling.mp4", "apply_eye_makeup.avi")]
K700 = packaged_classes("kinetics700")
OPTS = ["MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "8", "MODEL.NUM_CLASSES", "700", "MODEL.POOL", "softpool",
        "DATA.NUM_FRAMES", "4", "DATA.TEST_CROP_SIZE", "40", "TEST.NUM_SPATIAL_CROPS", "3", "TEST.BATCH_SIZE", "4",
        "TEST.DATASET", "kinetics", "DATA.CLASS_NAMES_FILE", K700, "DATA_LOADER.NUM_WORKERS", "0", "DEVICE", "cpu"]


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    model = build_model(load_cfg(None, OPTS))
    path = str(tmp_path / "w.pyth")
    torch.save({"model": model.state_dict()}, path)
    return path


def test_predictions_are_the_mean_softmax_of_the_views_the_model_receives(tmp_path, weights):
    import vidpool

    broken = str(tmp_path / "broken.mp4")
    open(broken, "wb").write(b"\0" * 4096)
    seen = []
    cfg = load_cfg(None, OPTS)
    model = build_model(cfg)
    vidpool.load_weights(model, weights)
    model.register_forward_hook(lambda m, args, out: seen.append((args[0].clone(), out.clone())))
    results = vidpool.predict(cfg, None, [CLIPS[0], broken, CLIPS[1]], topk=3, views=2, model=model)
    clips = torch.cat([c for c, _ in seen])
    logits = torch.cat([o for _, o in seen])
    assert clips.shape == (3 * 2 * 3, 3, 4, 40, 40)  # 3 videos x 2 clips x 3 crops (the broken one as zeros)
    # the unreadable video's views are blank (one value: black, normalised), the others are not
    assert clips[6:12].std() == 0 and clips[:6].std() > 0.1 and clips[12:].std() > 0.1
    assert "error" in results[1] and results[1]["video"] == broken and "top" not in results[1]
    names = open(K700).read().split("\n")
    for r, rows in ((results[0], slice(0, 6)), (results[2], slice(12, 18))):
        probs = torch.softmax(logits[rows].double(), 1).mean(0)
        top = probs.topk(3)
        assert [t["index"] for t in r["top"]] == top.indices.tolist()
        assert [t["prob"] for t in r["top"]] == pytest.approx(top.values.tolist(), rel=1e-6)
        assert [t["label"] for t in r["top"]] == [names[i] for i in top.indices.tolist()]


def test_cli_prints_json_and_fails_for_an_unreadable_file(tmp_path, weights, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("MODEL:\n  ARCH: r3d_10\n")
    from vidpool.cli import predict as tool

    assert tool.main(["--cfg", str(cfg), "--weights", weights, "--json", "--topk", "2", *CLIPS,
                      *OPTS]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["video"] for r in out] == CLIPS and all(len(r["top"]) == 2 for r in out)
    assert all(0 < t["prob"] <= 1 for r in out for t in r["top"])
    assert tool.main(["--cfg", str(cfg), "--weights", weights, str(tmp_path / "gone.mp4"), *OPTS]) == 1
    assert "cannot be read" in capsys.readouterr().out


@pytest.mark.parametrize("dataset", ["ucf101", "kinetics", "hacs"])
def test_class_names_without_reading_annotation_rows_match_the_test_split(synthetic_root, dataset):
    from vidpool.data.build import dataset_classes, read_annotations

    names = os.path.join(synthetic_root, "classes.txt") if dataset != "ucf101" else ""
    cfg = load_cfg(None, ["TEST.DATASET", dataset, "DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, dataset),
                          "DATA.CLASS_NAMES_FILE", names])
    assert dataset_classes(cfg, "test") == read_annotations(cfg, "test", keep_missing=True).classes
