"""Model registry: ``@register_model`` builders, ``list_models()`` and ``create_model(...)``."""
from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

_MODELS: Dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder ``fn(num_classes, pool="max", **kw)`` under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list:
    return sorted(_MODELS)


def create_model(name: str, num_classes: int, pool: str = "max", **kw) -> nn.Module:
    """Build registered model ``name`` with ``num_classes`` outputs; ``pool`` names the method
    (from ``vidpool.ops.list_pools()``) used for every non-global pooling layer."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    if not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"create_model: num_classes must be a positive int, got {num_classes!r}")
    model = _MODELS[name](num_classes=num_classes, pool=pool, **kw)
    model.model_name = name  # for messages (load_weights names the model a file does not fit)
    return model


def build_model(cfg) -> nn.Module:
    """The model a config describes: MODEL.ARCH with MODEL.NUM_CLASSES outputs, MODEL.POOL for every
    non-global pool (with MODEL.POOL_COUNT_INCLUDE_PAD for avg), MODEL.HEAD_POOL for the global one,
    MODEL.DROPOUT_RATE before the classifier
    (and MODEL.BASE_WIDTH for the 3D ResNets and I3D, the MODEL.SRTG_* options for SRTG models), its
    weights in channels_last_3d layout with MODEL.CHANNELS_LAST (feed it clips in that layout too)."""
    m = cfg.MODEL
    kw = {"head_pool": m.HEAD_POOL, "dropout": m.DROPOUT_RATE}
    if m.POOL == "avg":
        kw["count_include_pad"] = bool(m.POOL_COUNT_INCLUDE_PAD)
    if m.BASE_WIDTH != 64:
        if not m.ARCH.startswith(("r3d_", "r2plus1d_", "srtg_", "i3d")) or m.ARCH.endswith(("_tv", "_official")):
            raise ValueError(f"MODEL.BASE_WIDTH applies to the r3d, r(2+1)d, SRTG and I3D families, not {m.ARCH}")
        kw["base_width"] = m.BASE_WIDTH
    if m.I3D_TF_SAME:
        if m.ARCH != "i3d":
            raise ValueError(f"MODEL.I3D_TF_SAME applies to i3d, not {m.ARCH}")
        kw["tf_same"] = True
    if m.ARCH.startswith("srtg_") and not m.ARCH.endswith("_official"):
        kw.update(place=m.SRTG_PLACE, gate=m.SRTG_GATE, gate_from_epoch=m.SRTG_GATE_FROM_EPOCH,
                  sr_hidden=m.SRTG_HIDDEN, recalib=m.SRTG_RECALIB, gate_compare=m.SRTG_GATE_COMPARE)
    model = create_model(m.ARCH, m.NUM_CLASSES, pool=m.POOL, **kw)
    return model.to(memory_format=torch.channels_last_3d) if m.CHANNELS_LAST else model


def model_input(clip: torch.Tensor, device, cfg) -> torch.Tensor:
    """A batch of clips on ``device`` in the memory layout ``build_model(cfg)`` gave the weights
    (channels_last_3d with MODEL.CHANNELS_LAST: a mismatch would make every convolution convert).
    uint8 clips, as the data loader hands them over, are copied to ``device`` as uint8 and converted
    to float32 and normalised there (DATA.MEAN, DATA.STD); float clips are taken as normalised."""
    layout = torch.channels_last_3d if cfg.MODEL.CHANNELS_LAST and clip.dim() == 5 else torch.preserve_format
    if clip.dtype == torch.uint8:
        from vidpool.data.transforms import normalize

        clip = clip.to(device, non_blocking=True)
        return normalize(clip, cfg.DATA.MEAN, cfg.DATA.STD,
                         torch.contiguous_format if layout is torch.preserve_format else layout)
    return clip.to(device, non_blocking=True, memory_format=layout)
