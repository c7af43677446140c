"""Replace the pooling layers of any model by another pooling method, keeping everything else."""
from __future__ import annotations

import fnmatch
from typing import Iterable, Optional

import torch
from torch import nn

from ._avg_pool import AvgPool3d
from .softpool import AdaptiveSoftPool1d, AdaptiveSoftPool2d, AdaptiveSoftPool3d, _SoftPoolNd
from .zoo import WindowPool, accepts_channels, build_pool, needs_channels

_FIXED = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
          AvgPool3d: 3}
_ADAPTIVE = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
             nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3,
             AdaptiveSoftPool1d: 1, AdaptiveSoftPool2d: 2, AdaptiveSoftPool3d: 3}
_ADAPTIVE_BUILDERS = {
    "softpool": {1: AdaptiveSoftPool1d, 2: AdaptiveSoftPool2d, 3: AdaptiveSoftPool3d},
    "avg": {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
    "max": {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d},
}


def _pool_dim(module) -> Optional[int]:
    """Dimension of a swappable pool (exact torch pool types, zoo pools, SoftPool), else None."""
    if isinstance(module, (WindowPool, _SoftPoolNd)):
        return module.dim
    return _FIXED.get(type(module))


def is_pooling_layer(module: nn.Module) -> bool:
    """A pooling layer: a torch max/avg pool (fixed or adaptive), a zoo pool or SoftPool."""
    return _pool_dim(module) is not None or type(module) in _ADAPTIVE


def _geometry(name, module):
    dilation = getattr(module, "dilation", 1)
    if dilation not in (1, (1,), (1, 1), (1, 1, 1)):
        raise ValueError(f"swap_pooling: {name} ({module}) uses dilation {dilation}, which the pooling zoo "
                         "does not support; exclude it with exclude=[...]")
    if getattr(module, "return_indices", False):
        raise ValueError(f"swap_pooling: {name} returns indices (return_indices=True); exclude it")
    return module.kernel_size, module.stride, module.padding, bool(module.ceil_mode)


def _static_channels(model: nn.Module, target: str) -> Optional[int]:
    """Channels of the last conv/norm layer registered before ``target`` (the usual forward order)."""
    channels = None
    for name, module in model.named_modules():
        if name == target:
            return channels
        for attr in ("out_channels", "num_features"):
            if isinstance(getattr(module, attr, None), int):
                channels = getattr(module, attr)
    return None


def _traced_channels(model: nn.Module, names: Iterable[str], example_input) -> dict:
    found, hooks = {}, []
    modules = dict(model.named_modules())
    def record(name):
        def hook(module, args):
            found.setdefault(name, args[0].shape[1])  # returns None: the input is left as it is
        return hook

    for name in names:
        hooks.append(modules[name].register_forward_pre_hook(record(name)))
    modes = {m: m.training for m in model.modules()}
    model.eval()  # no batch-norm statistics updated, batch size 1 allowed
    try:
        with torch.no_grad():
            model(*example_input) if isinstance(example_input, tuple) else model(example_input)
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return found


def _selected(name: str, include, exclude) -> bool:
    if include is not None and not any(fnmatch.fnmatch(name, pat) for pat in include):
        return False
    return not (exclude and any(fnmatch.fnmatch(name, pat) for pat in exclude))


def swap_pooling(model: nn.Module, name: str, include: Optional[Iterable[str]] = None,
                 exclude: Optional[Iterable[str]] = None, adaptive: bool = False, example_input=None,
                 **kw) -> list:
    """Replace max/avg pooling layers (and zoo pools) of ``model`` in place by method ``name``.

    Each replacement keeps the layer's dimension and geometry (kernel, stride, padding,
    ceil_mode). ``include``/``exclude`` are glob patterns over qualified module names. Adaptive and
    global pools are left alone unless ``adaptive=True`` (then only for softpool/avg/max).
    Methods with per-channel parameters get their channel count from ``example_input`` (a forward
    pass with hooks) or else from the last conv/norm layer registered before the pool; that guess
    is wrong where a pool does not follow that layer (parallel branches, as in Inception/I3D), so
    pass ``example_input`` for such models (a wrong count raises a clear error at the first forward). New modules
    are put on the device and dtype of the model's parameters. Returns the replaced names in order.
    """
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    targets = []
    for qual, module in model.named_modules():
        if not qual or not _selected(qual, include, exclude):
            continue
        if _pool_dim(module) is not None or (adaptive and type(module) in _ADAPTIVE):
            targets.append((qual, module))
    if adaptive and name not in _ADAPTIVE_BUILDERS and any(type(m) in _ADAPTIVE for _, m in targets):
        raise ValueError(f"swap_pooling: adaptive pools can become {sorted(_ADAPTIVE_BUILDERS)}, not {name!r}")
    channels = {}
    if accepts_channels(name):
        names = [q for q, m in targets if type(m) not in _ADAPTIVE]
        channels = _traced_channels(model, names, example_input) if example_input is not None else {
            q: _static_channels(model, q) for q in names}
        missing = [q for q in names if channels.get(q) is None]
        if missing and needs_channels(name):
            raise ValueError(f"swap_pooling: cannot infer the channel count of {missing} for {name!r}; pass "
                             "example_input=<a batch> so it can be traced, or exclude those layers")
    param = next(model.parameters(), None)
    replaced = []
    for qual, module in targets:
        if type(module) in _ADAPTIVE:
            new = _ADAPTIVE_BUILDERS[name][_ADAPTIVE[type(module)]](module.output_size)
        else:
            new = build_pool(name, _pool_dim(module), *_geometry(qual, module), channels=channels.get(qual), **kw)
        if param is not None:
            new = new.to(device=param.device, dtype=param.dtype)
        parent_name, _, child = qual.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        replaced.append(qual)
    return replaced
