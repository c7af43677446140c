"""Accuracy counting and per-video aggregation of multi-view predictions."""
from __future__ import annotations

from typing import Dict, Sequence

import torch


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[int, int]:
    """Number of samples whose label is among the k highest scores, for each k (k capped at the class count)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == labels[:, None]
    return {k: int(hits[:, :k].any(1).sum()) for k in ks}


class EpochMeter:
    """Sums of loss, correct counts and samples over an epoch; ``reduce`` adds up all processes."""

    def __init__(self):
        self.loss = self.top1 = self.top5 = self.n = 0.0

    def update(self, loss: float, logits: torch.Tensor, labels: torch.Tensor) -> None:
        c = topk_correct(logits.detach().float(), labels)
        b = labels.shape[0]
        self.loss += loss * b
        self.top1 += c[1]
        self.top5 += c[5]
        self.n += b

    def reduce(self, all_reduce) -> dict:
        loss, top1, top5, n = all_reduce([self.loss, self.top1, self.top5, self.n])
        n = max(n, 1)
        return {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5 / n, "samples": int(n)}


class VideoAggregator:
    """Softmax scores averaged per video over its valid views (clips x crops). A video none of whose
    views could be read has no prediction and counts as wrong."""

    def __init__(self, num_videos: int, num_classes: int):
        self.scores = torch.zeros(num_videos, num_classes, dtype=torch.float64)
        self.views = torch.zeros(num_videos, dtype=torch.long)
        self.labels = torch.full((num_videos,), -1, dtype=torch.long)
        self.seen = torch.zeros(num_videos, dtype=torch.bool)

    def update(self, logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, valid: torch.Tensor) -> None:
        probs = torch.softmax(logits.detach().double().cpu(), dim=1)
        index, valid, labels = index.cpu(), valid.cpu(), labels.cpu()
        self.seen[index] = True
        self.labels[index] = labels
        self.scores.index_add_(0, index[valid], probs[valid])
        self.views.index_add_(0, index[valid], torch.ones(int(valid.sum()), dtype=torch.long))

    def merge(self, other) -> None:
        """Add another process's share: a VideoAggregator or its ``part()``."""
        part = other.part() if isinstance(other, VideoAggregator) else other
        index = part["index"]
        self.scores.index_add_(0, index, part["scores"])
        self.views.index_add_(0, index, part["views"])
        self.labels[index] = part["labels"]
        self.seen[index] = True

    def part(self) -> dict:
        """The rows of the videos this process saw (what it sends to rank 0: about 1/world of the
        score matrix, instead of the whole dense matrix)."""
        index = self.seen.nonzero().flatten()
        return {"index": index, "scores": self.scores[index], "views": self.views[index], "labels": self.labels[index]}

    def results(self) -> dict:
        """Per-video mean scores, predictions (-1: no readable view), and accuracies over the labelled
        videos: over all of them (a video without a readable view counts as wrong: comparable with
        a paper that had every video) and over the readable ones (comparable with numbers that leave
        out videos no longer available), each as top-1, top-5 and mean class accuracy (the mean over
        classes of per-class top-1)."""
        mean = self.scores / self.views.clamp(min=1)[:, None].double()
        readable = self.views > 0
        pred = torch.where(readable, mean.argmax(1), torch.full_like(self.views, -1))
        k = min(5, mean.shape[1])
        top5_scores, top5 = mean.topk(k, dim=1)
        labelled = self.seen & (self.labels >= 0)
        hit1 = (pred == self.labels) & readable & labelled
        hit5 = (top5 == self.labels[:, None]).any(1) & readable & labelled

        def accuracies(keep):
            n = int(keep.sum())
            per_class = [float(hit1[keep & (self.labels == c)].double().mean())
                         for c in range(mean.shape[1]) if (keep & (self.labels == c)).any()]
            return (100 * int((hit1 & keep).sum()) / max(n, 1), 100 * int((hit5 & keep).sum()) / max(n, 1),
                    100 * sum(per_class) / max(len(per_class), 1))

        top1, top5_acc, mean_class = accuracies(labelled)
        top1_r, top5_r, mean_class_r = accuracies(labelled & readable)
        return {"scores": mean, "pred": pred, "top5": top5, "top5_scores": top5_scores, "readable": readable,
                "labels": self.labels, "top1": top1, "top5_acc": top5_acc, "mean_class_acc": mean_class,
                "top1_readable": top1_r, "top5_readable": top5_r, "mean_class_acc_readable": mean_class_r,
                "videos": int(labelled.sum()), "readable_videos": int((labelled & readable).sum()),
                "unreadable": int((self.seen & ~readable).sum())}
