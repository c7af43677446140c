"""Model registry: ``@register_model`` builders, ``list_models()`` and ``create_model(...)``."""
from __future__ import annotations

from typing import Callable, Dict

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
    return _MODELS[name](num_classes=num_classes, pool=pool, **kw)
