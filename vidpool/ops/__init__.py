"""Pooling operators: SoftPool (compiled, with a pure-PyTorch fallback), the pooling zoo of the
SoftPool paper behind one registry, and a pooling swap for any model."""
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
from .swap import swap_pooling
from .zoo import (
    POOLS,
    DPPPool,
    GatedPool,
    LIPPool,
    LpPool,
    MixedPool,
    S3Pool,
    StochasticPool,
    SumPool,
    TrainableLpPool,
    build_pool,
    list_pools,
)

__all__ = [
    "SoftPool1d", "SoftPool2d", "SoftPool3d",
    "AdaptiveSoftPool1d", "AdaptiveSoftPool2d", "AdaptiveSoftPool3d",
    "soft_pool1d", "soft_pool2d", "soft_pool3d",
    "adaptive_soft_pool1d", "adaptive_soft_pool2d", "adaptive_soft_pool3d",
    "backend",
    "POOLS", "list_pools", "build_pool", "swap_pooling",
    "SumPool", "LpPool", "TrainableLpPool", "MixedPool", "GatedPool", "StochasticPool", "S3Pool",
    "LIPPool", "DPPPool",
]
