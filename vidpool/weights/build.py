"""The model a checkpoint was trained as: built from the config a vidpool checkpoint carries, so a
SoftPool checkpoint is never run as a max-pool network (pooling layers hold no tensors, so loading
alone cannot tell)."""
from __future__ import annotations

from typing import Sequence, Tuple

from torch import nn

from .load import LoadReport, apply_weights, read_weights

# what decides the network a checkpoint's tensors belong to (MODEL.DROPOUT_RATE and the memory layout do not)
MODEL_KEYS = ("ARCH", "POOL", "POOL_COUNT_INCLUDE_PAD", "HEAD_POOL", "BASE_WIDTH", "NUM_CLASSES", "I3D_TF_SAME", "SRTG_PLACE", "SRTG_GATE",
              "SRTG_GATE_FROM_EPOCH", "SRTG_HIDDEN", "SRTG_RECALIB", "SRTG_GATE_COMPARE")


def gate_epoch(epoch) -> int:
    """The epoch SRTG gates are set to for a checkpoint saved after ``epoch`` epochs: as validation had
    them after its last epoch (files without an epoch, or converted ones with epoch 0: gates on)."""
    return int(epoch) - 1 if epoch else 10 ** 9


def model_value(cfg, key: str):
    """``cfg.MODEL[key]`` as far as it shapes the network: POOL_COUNT_INCLUDE_PAD only matters with
    average pooling (None otherwise), so a max-pool checkpoint agrees with either setting."""
    if key == "POOL_COUNT_INCLUDE_PAD" and cfg.MODEL.POOL != "avg":
        return None
    return cfg.MODEL[key]


def model_differences(ours, theirs) -> list:
    """``MODEL.KEY: ours, theirs`` for each key that makes the two configs build different networks."""
    return [f"MODEL.{k} {ours.MODEL[k]!r} in --cfg, {theirs.MODEL[k]!r} in the checkpoint"
            for k in MODEL_KEYS if model_value(ours, k) != model_value(theirs, k)]


def model_from_checkpoint(path: str, cfg=None, overrides: Sequence[str] = (), source: str = "auto",
                          trusted: bool = False) -> Tuple[nn.Module, object, LoadReport]:
    """(model, config, report) for the checkpoint at ``path``, in eval-ready form (SRTG gates set from
    its epoch). A vidpool checkpoint carries its config: without ``cfg`` that config (with
    ``overrides``) is used; with ``cfg``, every key of ``MODEL_KEYS`` must agree with it, else a
    ``ConfigError`` names both values. A file of another code base carries none: ``cfg`` is then
    required."""
    from vidpool.config import load_cfg_string
    from vidpool.config.check import ConfigError
    from vidpool.models import build_model
    from vidpool.models.srtg import set_epoch

    weights = read_weights(path, source, trusted)
    stored = weights.obj.get("cfg") if weights.kind == "vidpool" and isinstance(weights.obj.get("cfg"), str) else None
    if stored:
        theirs = load_cfg_string(stored, overrides)
        if cfg is None:
            cfg = theirs
        else:
            differ = model_differences(cfg, theirs)
            if differ:
                raise ConfigError(f"{path} was trained as another model than the config describes: " +
                                  "; ".join(differ) + ". Leave out --cfg to use the checkpoint's own config")
    elif cfg is None:
        raise ConfigError(f"{path} carries no vidpool config (a {weights.source} checkpoint): give --cfg FILE "
                          "describing the model to build")
    model = build_model(cfg)
    report = apply_weights(model, weights)
    set_epoch(model, gate_epoch(report.meta.get("epoch")))
    return model.eval(), cfg, report


__all__ = ["MODEL_KEYS", "gate_epoch", "model_differences", "model_from_checkpoint"]
