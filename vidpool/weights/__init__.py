"""Weights in: checkpoint files of vidpool, PySlowFast, 3D-ResNets-PyTorch, pytorch-i3d, torchvision
and the official SRTG code into vidpool models (``load_weights``), and vidpool checkpoints written from them."""
from .build import model_from_checkpoint
from .formats import SOURCES, NotACheckpointError, UntrustedCheckpointError
from .load import LoadReport, Weights, apply_weights, identify, load_weights, read_weights
from .save import save_converted

__all__ = ["SOURCES", "NotACheckpointError", "UntrustedCheckpointError", "LoadReport", "Weights", "apply_weights",
           "identify", "load_weights", "model_from_checkpoint", "read_weights", "save_converted"]
