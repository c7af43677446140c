"""Video backbones behind one registry: ``list_models()``, ``create_model(name, num_classes, pool=...)``.
Checkpoints are loaded by ``vidpool.weights.load_weights`` (which depends on this package, not the reverse)."""
from . import i3d, resnet3d, srtg, srtg_official  # noqa: F401  (register the model families)
from ._registry import build_model, create_model, list_models, model_input, register_model
from .heads import freeze_stages, replace_classifier, stage_names


__all__ = ["build_model", "model_input", "create_model", "list_models", "register_model", "replace_classifier",
           "freeze_stages", "stage_names"]
