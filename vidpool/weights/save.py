"""vidpool checkpoints written from weights of any supported source (``vidpool convert``)."""
from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from .load import LoadReport, apply_weights, read_weights


def save_converted(src: str, dst: str, arch: str, *, num_classes: Optional[int] = None, pool: str = "max",
                   head_pool: str = "avg", base_width: int = 64, source: str = "auto",
                   trusted: bool = False) -> LoadReport:
    """Load ``src`` into a fresh ``arch`` model and write it to ``dst`` as a vidpool checkpoint
    (``{'model', 'cfg', 'epoch': 0, 'converted_from'}``) that every vidpool tool reads with
    ``weights_only=True``. ``base_width``: stem channels of a 3D ResNet (64; 3D-ResNets-PyTorch's
    widen_factor times 64). ``num_classes`` defaults to the file's classifier; another count keeps
    the backbone only (a fresh classifier)."""
    from vidpool.config import get_cfg
    from vidpool.models import create_model

    weights = read_weights(src, source, trusted)
    file_classes = weights.num_classes
    classes = num_classes or file_classes
    if classes is None:
        raise ValueError(f"{src} has no classifier; pass num_classes (--num-classes)")
    kw = {"base_width": base_width} if base_width != 64 else {}
    model: nn.Module = create_model(arch, classes, pool=pool, head_pool=head_pool, **kw)
    report = apply_weights(model, weights, finetune=classes != file_classes)
    cfg = get_cfg()
    cfg.MODEL.ARCH, cfg.MODEL.NUM_CLASSES, cfg.MODEL.POOL, cfg.MODEL.HEAD_POOL = arch, classes, pool, head_pool
    cfg.MODEL.BASE_WIDTH = base_width
    cfg.MODEL.I3D_TF_SAME = bool(report.options.get("tf_same", False))
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    state = {"model": model.state_dict(), "cfg": cfg.dump(), "epoch": 0,
             "converted_from": {"path": os.path.abspath(src), "source": report.source, "layout": report.layout}}
    torch.save(state, dst)
    return report
