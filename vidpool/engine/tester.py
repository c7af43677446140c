"""Multi-view testing: TEST.NUM_ENSEMBLE_VIEWS clips x TEST.NUM_SPATIAL_CROPS crops per video,
softmax scores averaged per video, video-level top-1/top-5, ``predictions.csv`` (one row per video,
for significance tests between runs) and ``confusion_matrix.csv`` (rows: true class, columns:
predicted; videos without any readable view are left out of the matrix but count as wrong)."""
from __future__ import annotations

import csv
import logging
import os
from typing import Optional

import torch
from torch import nn

from vidpool.data import build_dataset, build_loader
from vidpool.models import build_model

from . import checkpoint as ckpt
from . import distributed as dist
from .meters import VideoAggregator
from .run_log import progress, setup_logging
from .trainer import autocast, seed_everything

log = logging.getLogger("vidpool.engine")


@torch.no_grad()
def run_views(model: nn.Module, loader, dataset, cfg, device) -> VideoAggregator:
    model.eval()
    agg = VideoAggregator(len(dataset.records), dataset.num_classes)
    for batch in progress(loader, len(loader), "test", cfg.LOG_PERIOD, dist.is_main()):
        with autocast(device, cfg.TRAIN.MIXED_PRECISION):
            logits = model(batch["clip"].to(device)).float()
        agg.update(logits, batch["label"], batch["index"], batch["valid"])
    return agg


def write_predictions(path: str, dataset, res: dict) -> None:
    names = dataset.classes
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["video_id", "true_label", "predicted_label", "top5_labels", "true_name", "predicted_name",
                      "correct"])
        for i, rec in enumerate(dataset.records):
            pred = int(res["pred"][i])
            top5 = " ".join(str(int(c)) for c in res["top5"][i]) if pred >= 0 else ""
            out.writerow([rec.video_id, rec.label, pred, top5, names[rec.label] if rec.label >= 0 else "",
                          names[pred] if pred >= 0 else "", int(pred == rec.label and pred >= 0)])


def write_confusion(path: str, dataset, res: dict) -> torch.Tensor:
    k = dataset.num_classes
    matrix = torch.zeros(k, k, dtype=torch.long)
    ok = (res["pred"] >= 0) & (res["labels"] >= 0)
    matrix.index_put_((res["labels"][ok], res["pred"][ok]), torch.ones(int(ok.sum()), dtype=torch.long),
                      accumulate=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["true \\ predicted"] + dataset.classes)
        for i in range(k):
            out.writerow([dataset.classes[i]] + matrix[i].tolist())
    return matrix


def test(cfg, model: Optional[nn.Module] = None, output_dir: Optional[str] = None) -> dict:
    """Test ``model`` (or the weights of TEST.CHECKPOINT_FILE_PATH, or the run's newest checkpoint)."""
    out = output_dir or cfg.OUTPUT_DIR
    device = dist.choose_device(cfg.DEVICE)
    dist.init(device)
    if model is None:
        setup_logging(out, dist.is_main())
        seed_everything(cfg.RNG_SEED)
        path = cfg.TEST.CHECKPOINT_FILE_PATH
        state = ckpt.load_checkpoint(path) if path else ckpt.latest_checkpoint(out)
        if state is None:
            raise FileNotFoundError(f"no checkpoint to test: set TEST.CHECKPOINT_FILE_PATH or train into {out} first")
        model = build_model(cfg)
        model.load_state_dict(state["model"])
        log.info("testing %s", path or state["path"])
        model.to(device)
    dataset = build_dataset(cfg, "test")
    loader = build_loader(cfg, "test", dataset=dataset)
    agg = run_views(ckpt.unwrap(model), loader, dataset, cfg, device)
    parts = dist.all_gather_objects(agg)
    for other in parts[1:]:
        parts[0].merge(other)
    res = parts[0].results()
    summary = {"video_top1": res["top1"], "video_top5": res["top5_acc"], "videos": res["videos"],
               "unreadable_videos": res["unreadable"],
               "views": cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS}
    if dist.is_main():
        os.makedirs(out, exist_ok=True)
        write_predictions(os.path.join(out, "predictions.csv"), dataset, res)
        write_confusion(os.path.join(out, "confusion_matrix.csv"), dataset, res)
        log.info("test: video top-1 %.2f%%, top-5 %.2f%% over %d videos (%d views each; %d unreadable)",
                 res["top1"], res["top5_acc"], res["videos"], summary["views"], res["unreadable"])
    return summary
