"""Video backbones behind one registry: ``list_models()``, ``create_model(name, num_classes, pool=...)``."""
from . import i3d, resnet3d, srtg, srtg_official  # noqa: F401  (register the model families)
from ._registry import build_model, create_model, list_models, model_input, register_model
from .heads import freeze_stages, replace_classifier, stage_names


def load_weights(model, path, source="auto", **kw):
    """Load a checkpoint file of any supported source into ``model``; see ``vidpool.weights.load_weights``."""
    from vidpool.weights import load_weights as load

    return load(model, path, source, **kw)


__all__ = ["load_weights", "build_model", "model_input", "create_model", "list_models", "register_model", "replace_classifier",
           "freeze_stages", "stage_names"]
