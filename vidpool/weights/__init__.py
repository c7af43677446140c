"""Weights in: checkpoint files of vidpool, PySlowFast, 3D-ResNets-PyTorch, pytorch-i3d, torchvision
and the official SRTG code into vidpool models (``load_weights``), and vidpool checkpoints written from them."""
from .formats import SOURCES, UntrustedCheckpointError
from .load import LoadReport, identify, load_weights
from .save import save_converted

__all__ = ["SOURCES", "UntrustedCheckpointError", "LoadReport", "identify", "load_weights", "save_converted"]
