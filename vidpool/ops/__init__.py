"""Pooling operators: SoftPool (compiled, with a pure-PyTorch fallback)."""
from .softpool import (
    AdaptiveSoftPool1d,
    AdaptiveSoftPool2d,
    AdaptiveSoftPool3d,
    SoftPool1d,
    SoftPool2d,
    SoftPool3d,
    adaptive_soft_pool1d,
    adaptive_soft_pool2d,
    adaptive_soft_pool3d,
    backend,
    soft_pool1d,
    soft_pool2d,
    soft_pool3d,
)

__all__ = [
    "SoftPool1d", "SoftPool2d", "SoftPool3d",
    "AdaptiveSoftPool1d", "AdaptiveSoftPool2d", "AdaptiveSoftPool3d",
    "soft_pool1d", "soft_pool2d", "soft_pool3d",
    "adaptive_soft_pool1d", "adaptive_soft_pool2d", "adaptive_soft_pool3d",
    "backend",
]
