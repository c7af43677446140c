"""Multi-view testing on the TEST.SPLIT annotations of TEST.DATASET: TEST.NUM_ENSEMBLE_VIEWS clips x
TEST.NUM_SPATIAL_CROPS crops per video, softmax scores averaged per video (rank 0 gathers each
process's rows). The summary gives top-1, top-5 and mean class accuracy over all labelled videos (no
readable view counts as wrong) and over the readable ones, with the missing and unreadable counts; it
is logged, appended to ``stats.jsonl`` (``"kind": "test"``) and TensorBoard. ``predictions.csv``: one
row per video with the top-5 classes and their scores (for significance tests between runs);
``confusion_matrix.csv``: rows true class, columns predicted (videos without a readable view are
left out of the matrix but count as wrong)."""
from __future__ import annotations

import csv
import logging
import os
from typing import Optional

import torch
from torch import nn

from vidpool.config.check import check_cfg
from vidpool.data import build_dataset, build_loader, iterate
from vidpool.models import build_model, model_input
from vidpool.models.srtg import set_epoch as srtg_set_epoch
from vidpool.weights.build import gate_epoch
from vidpool.weights import load_weights

from . import checkpoint as ckpt
from . import distributed as dist
from . import resume
from .meters import VideoAggregator
from .run_log import BadVideoLog, StatsWriter, progress, setup_logging
from .trainer import autocast, seed_everything

log = logging.getLogger("vidpool.engine")


@torch.no_grad()
def run_views(model: nn.Module, loader, dataset, cfg, device, bad_videos: Optional[BadVideoLog] = None,
              stop: Optional[resume.StopRequests] = None) -> VideoAggregator:
    """Every view's scores, per video. With ``stop``, a stop request ends it after the current batch
    (``resume.StopNow``)."""
    model.eval()
    agg = VideoAggregator(len(dataset.records), dataset.num_classes)
    batches = resume.stoppable(iterate(loader), len(loader), stop, device)
    for batch in progress(batches, len(loader), "test", cfg.LOG_PERIOD, dist.is_main()):
        if bad_videos is not None:
            bad_videos.add(batch.get("bad", []))
        with autocast(device, cfg):
            logits = model(model_input(batch["clip"], device, cfg)).float()
        agg.update(logits, batch["label"], batch["index"], batch["valid"])
    return agg


def write_predictions(path: str, dataset, res: dict) -> None:
    names = dataset.classes
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["video_id", "true_label", "predicted_label", "top5_labels", "top5_scores", "true_name",
                      "predicted_name", "correct"])
        for i, rec in enumerate(dataset.records):
            pred = int(res["pred"][i])
            top5 = " ".join(str(int(c)) for c in res["top5"][i]) if pred >= 0 else ""
            scores = " ".join(f"{float(p):.6f}" for p in res["top5_scores"][i]) if pred >= 0 else ""
            out.writerow([rec.video_id, rec.label, pred, top5, scores, names[rec.label] if rec.label >= 0 else "",
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
    """Test ``model`` (or the weights of TEST.CHECKPOINT_FILE_PATH, or the run's newest checkpoint) on
    the TEST.SPLIT annotations of TEST.DATASET. Returns the summary (every process gets rank 0's).
    SIGTERM or SIGUSR1 ends it after the current batch with ``resume.Preempted`` (nothing written)."""
    out = output_dir or cfg.OUTPUT_DIR
    check_cfg(cfg, test=model is None)
    device = dist.choose_device(cfg.DEVICE)
    dist.init(device)
    dist.check_softpool_backend(cfg, device)
    epoch = None
    if model is None:
        setup_logging(out, dist.is_main())
        seed_everything(cfg.RNG_SEED)
        path = cfg.TEST.CHECKPOINT_FILE_PATH
        model = build_model(cfg)
        if path:  # any format load_weights reads; a vidpool checkpoint must be of this config's model
            path = ckpt.resolve_weights_path(path, "TEST.CHECKPOINT_FILE_PATH")
            report = load_weights(model, path, cfg.TRAIN.CHECKPOINT_TYPE, trusted=cfg.TRAIN.CHECKPOINT_TRUSTED,
                                  cfg_check=lambda state: ckpt.check_compatible(state, cfg, path))
            epoch = report.meta.get("epoch")
            log.info("testing %s", report)
        else:
            state = resume.agreed_checkpoint(out)
            if state is None:
                raise FileNotFoundError(f"no checkpoint to test: set TEST.CHECKPOINT_FILE_PATH or train into {out} first")
            ckpt.check_compatible(state, cfg, state["path"])
            model.load_state_dict(state["model"])
            epoch = state.get("epoch")
            log.info("testing %s", state["path"])
        # SRTG gates as validation had them after the checkpoint's last epoch (files without an epoch: on)
        srtg_set_epoch(model, gate_epoch(epoch))
        model.to(device)
    dataset = build_dataset(cfg, "test")
    loader = build_loader(cfg, "test", dataset=dataset)
    bad_videos = BadVideoLog(out, dist.is_main(), dist.gather_to_main)
    with resume.StopRequests() as stop:
        try:
            agg = run_views(ckpt.unwrap(model), loader, dataset, cfg, device, bad_videos, stop)
        except resume.StopNow as e:
            bad_videos.flush()
            raise resume.Preempted(None, e.signum) from None
    bad_videos.flush()
    parts = dist.gather_to_main(agg.part())  # rank 0 alone aggregates
    summary = None
    if dist.is_main():
        for part in parts[1:]:  # parts[0] is rank 0's own
            agg.merge(part)
        summary = _summarise(cfg, dataset, agg.results(), out, epoch)
    return dist.broadcast_from_main(summary)


def _summarise(cfg, dataset, res: dict, out: str, epoch: Optional[int]) -> dict:
    labelled = [r for r in dataset.records if r.label >= 0]
    missing = sum(not os.path.isfile(r.path) for r in labelled)
    summary = {"video_top1": res["top1"], "video_top5": res["top5_acc"], "mean_class_accuracy": res["mean_class_acc"],
               "video_top1_readable": res["top1_readable"], "video_top5_readable": res["top5_readable"],
               "mean_class_accuracy_readable": res["mean_class_acc_readable"], "videos": res["videos"],
               "readable_videos": res["readable_videos"], "missing_videos": missing,
               "unreadable_videos": res["videos"] - res["readable_videos"] - missing,
               "views": cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS, "split": cfg.TEST.SPLIT}
    os.makedirs(out, exist_ok=True)
    write_predictions(os.path.join(out, "predictions.csv"), dataset, res)
    write_confusion(os.path.join(out, "confusion_matrix.csv"), dataset, res)
    log.info("test on %s (%s split): %d videos, %d views each", dataset.name, cfg.TEST.SPLIT, res["videos"],
             summary["views"])
    log.info("  all %d videos:      top-1 %.2f%%, top-5 %.2f%%, mean class accuracy %.2f%% (no readable view: wrong)",
             res["videos"], res["top1"], res["top5_acc"], res["mean_class_acc"])
    log.info("  %d readable videos: top-1 %.2f%%, top-5 %.2f%%, mean class accuracy %.2f%% (%d missing, %d unreadable)",
             res["readable_videos"], res["top1_readable"], res["top5_readable"], res["mean_class_acc_readable"],
             missing, summary["unreadable_videos"])
    writer = StatsWriter(out, True, cfg.TENSORBOARD.ENABLE)
    try:
        writer.write({"kind": "test", "epoch": epoch or 0, **{f"test_{k}": v for k, v in summary.items()}})
    finally:
        writer.close()
    return summary


def format_summary(summary: dict) -> str:
    """The test summary in two lines: all labelled videos, and the readable ones."""
    return (f"{summary['split']} split, all {summary['videos']} videos: top-1 {summary['video_top1']:.2f}%, "
            f"top-5 {summary['video_top5']:.2f}%, mean class accuracy {summary['mean_class_accuracy']:.2f}%\n"
            f"{summary['readable_videos']} readable videos: top-1 {summary['video_top1_readable']:.2f}%, "
            f"top-5 {summary['video_top5_readable']:.2f}%, mean class accuracy "
            f"{summary['mean_class_accuracy_readable']:.2f}% ({summary['missing_videos']} missing, "
            f"{summary['unreadable_videos']} unreadable; {summary['views']} views each)")
