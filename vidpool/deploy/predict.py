"""``predict``: a trained model on video files, decoded and viewed exactly as the test split is."""
from __future__ import annotations

import logging
import os
from typing import List, Optional, Sequence, Union

import torch

log = logging.getLogger("vidpool.deploy")


def class_names(cfg) -> List[str]:
    """The label names of MODEL.NUM_CLASSES outputs: DATA.CLASS_NAMES_FILE, else the test dataset's
    classes (UCF-101's classInd.txt when it is on this machine, else vidpool's official list); numbered
    names ("class_7") when no list has MODEL.NUM_CLASSES entries."""
    from vidpool.data.build import dataset_classes
    from vidpool.data.datasets.base import packaged_classes, read_class_names

    names: List[str] = []
    if cfg.DATA.CLASS_NAMES_FILE:
        names = read_class_names(cfg.DATA.CLASS_NAMES_FILE)
    else:
        try:
            names = dataset_classes(cfg, "test")  # no annotation rows read: HACS has 1.5 M
        except (OSError, ValueError) as e:
            official = {"hacs": "hacs_200", "kinetics": "kinetics700", "ucf101": "ucf101"}.get(cfg.TEST.DATASET)
            log.info("class names: %s's class list is not readable here (%s); using vidpool's official list",
                     cfg.TEST.DATASET, e)
            names = read_class_names(packaged_classes(official)) if official else []
    if len(names) != cfg.MODEL.NUM_CLASSES:
        log.warning("the class list has %d names but the model %d outputs; printing class numbers (set "
                    "DATA.CLASS_NAMES_FILE)", len(names), cfg.MODEL.NUM_CLASSES)
        names = [f"class_{i}" for i in range(cfg.MODEL.NUM_CLASSES)]
    return names


def predict(cfg, weights: str, videos: Sequence[str], topk: int = 5, views: Optional[int] = None,
            device: Union[str, torch.device, None] = None, model: Optional[torch.nn.Module] = None) -> List[dict]:
    """Top-``topk`` classes of each video: ``[{"video": path, "top": [{"label", "index", "prob"}, ...]}]``,
    the probabilities being the softmax averaged over TEST.NUM_ENSEMBLE_VIEWS (or ``views``) clips x
    TEST.NUM_SPATIAL_CROPS crops, as the test computes them. A video that cannot be read gets
    ``{"video": path, "error": reason}`` and the others still run. ``cfg``: a CfgNode or a YAML path;
    ``weights``: any file ``load_weights`` reads (or pass a built ``model``)."""
    from vidpool.config import load_cfg
    from vidpool.data.build import default_shape
    from vidpool.data.datasets.base import VideoClipDataset, VideoRecord, collate_clips
    from vidpool.engine.distributed import choose_device
    from vidpool.engine.meters import VideoAggregator
    from vidpool.models import build_model, model_input
    from vidpool.weights import load_weights

    cfg = load_cfg(cfg) if isinstance(cfg, str) else cfg
    if not videos:
        raise ValueError("predict: no videos given")
    if topk < 1:
        raise ValueError(f"predict: topk must be >= 1, got {topk}")
    if views is not None and views < 1:
        raise ValueError(f"predict: views must be >= 1, got {views}")
    device = torch.device(device) if device is not None else choose_device(cfg.DEVICE)
    if model is None:
        model = build_model(cfg)
        log.info("%s", load_weights(model, weights, cfg.TRAIN.CHECKPOINT_TYPE, trusted=cfg.TRAIN.CHECKPOINT_TRUSTED))
    model.to(device).eval()
    names = class_names(cfg)
    d = cfg.DATA
    records = [VideoRecord(path, -1, os.path.basename(path)) for path in videos]
    dataset = VideoClipDataset(records, names, "test", default_shape(cfg), decoder=d.DECODER,
                               decode_device=d.DECODE_DEVICE, target_fps=d.TARGET_FPS, test_crop_size=d.TEST_CROP_SIZE,
                               num_views=views or cfg.TEST.NUM_ENSEMBLE_VIEWS, num_crops=cfg.TEST.NUM_SPATIAL_CROPS,
                               short=d.SHORT_CLIPS, name="predict")
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.TEST.BATCH_SIZE, shuffle=False,
                                         num_workers=min(cfg.DATA_LOADER.NUM_WORKERS, len(dataset)),
                                         collate_fn=collate_clips)
    agg = VideoAggregator(len(records), len(names))
    errors = {}
    with torch.no_grad():
        for batch in loader:
            errors.update(dict(batch["bad"]))
            agg.update(model(model_input(batch["clip"], device, cfg)).float(), batch["label"], batch["index"], batch["valid"])
    scores = agg.scores / agg.views.clamp(min=1)[:, None].double()
    out = []
    for i, path in enumerate(videos):
        if agg.views[i] == 0:
            out.append({"video": path, "error": errors.get(path, "no view of the video could be read")})
            continue
        probs, idx = scores[i].topk(min(topk, len(names)))
        out.append({"video": path, "top": [{"label": names[c], "index": int(c), "prob": float(p)}
                                           for p, c in zip(probs.tolist(), idx.tolist())]})
    return out
