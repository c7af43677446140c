"""Fine-tuning helpers: a new classifier for another class count, and frozen early stages."""
from __future__ import annotations

from torch import nn


def classifier_name(model: nn.Module) -> str:
    for name in ("fc", "logits"):
        if isinstance(getattr(model, name, None), (nn.Linear, nn.Conv3d)):
            return name
    raise ValueError(f"{type(model).__name__} has no 'fc' or 'logits' classifier to replace")


def replace_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the final classifier for a freshly initialised one with ``num_classes`` outputs, keeping
    everything else (e.g. HACS -> Kinetics-700 or UCF-101 fine-tuning). Returns the new layer."""
    if not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"replace_classifier: num_classes must be a positive int, got {num_classes!r}")
    name = classifier_name(model)
    old = getattr(model, name)
    new = nn.Linear(old.in_features, num_classes) if isinstance(old, nn.Linear) else nn.Conv3d(
        old.in_channels, num_classes, 1)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    setattr(model, name, new)
    return new


def stage_names(model: nn.Module) -> list:
    """The model's stages in forward order (stem first), as accepted by ``freeze_stages``."""
    if hasattr(model, "layer1"):
        return ["stem", "pool"] + [f"layer{i}" for i in range(1, 5)]
    if hasattr(model, "features"):
        return [f"features.{n}" for n, _ in model.features.named_children()]
    raise ValueError(f"{type(model).__name__}: unknown stage layout")


def freeze_stages(model: nn.Module, upto: int) -> list:
    """Freeze the parameters and batch-norm statistics of the first ``upto`` stages (of
    ``stage_names(model)``). Frozen BN layers use and keep their running statistics even under
    ``model.train()``.
    Returns the frozen stage names."""
    names = stage_names(model)
    if not 0 <= upto <= len(names):
        raise ValueError(f"freeze_stages: upto must be in [0, {len(names)}], got {upto}; stages: {names}")
    frozen = []
    for name in names[:upto]:
        module = _submodule(model, name)
        if module is None:  # e.g. the stem pool of the torchvision layouts
            continue
        for p in module.parameters():
            p.requires_grad_(False)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
                m.register_forward_pre_hook(_keep_eval)
        frozen.append(name)
    return frozen


def _submodule(model: nn.Module, name: str):
    """The submodule called ``name``, or None where the model has none (or a None placeholder)."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _keep_eval(module: nn.Module, args) -> None:
    """Forward pre-hook of frozen batch-norm layers: normalise with the running statistics and
    leave them unchanged, whatever mode the model is in (a plain function, so models pickle)."""
    module.training = False

