"""Video backbones behind one registry: ``list_models()``, ``create_model(name, num_classes, pool=...)``."""
from . import resnet3d  # noqa: F401  (registers the r3d / r(2+1)d families)
from ._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
