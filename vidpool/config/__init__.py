"""Configuration: ``get_cfg()`` defaults, ``load_cfg(path, overrides)`` from YAML plus KEY VALUE pairs."""
from __future__ import annotations

import difflib
from typing import Optional, Sequence

from fvcore.common.config import CfgNode

from .defaults import get_cfg


def _all_keys(node: CfgNode, prefix: str = "") -> list:
    keys = []
    for k, v in node.items():
        full = f"{prefix}{k}"
        keys += _all_keys(v, full + ".") if isinstance(v, CfgNode) else [full]
    return keys


def _check_keys(cfg: CfgNode, keys: Sequence[str], where: str) -> None:
    valid = _all_keys(cfg)
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise KeyError(f"unknown config key {key!r} in {where}{hint}")


def load_cfg(path: Optional[str] = None, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file at ``path``, then ``overrides`` as [KEY, VALUE, ...]; unknown
    keys raise an error that suggests the closest valid one. The result is frozen."""
    cfg = get_cfg()
    if path is not None:
        loaded = CfgNode.load_yaml_with_base(path, allow_unsafe=False)
        _check_keys(cfg, _all_keys(CfgNode(loaded)), path)
        cfg.merge_from_other_cfg(CfgNode(loaded))
    _apply_overrides(cfg, overrides)
    cfg.freeze()
    return cfg


def _apply_overrides(cfg: CfgNode, overrides: Sequence[str]) -> None:
    overrides = list(overrides)
    if len(overrides) % 2:
        raise ValueError(f"overrides must be KEY VALUE pairs, got an odd number: {overrides}")
    _check_keys(cfg, overrides[0::2], "the command-line overrides")
    for i in range(0, len(overrides), 2):  # SOLVER.BASE_LR 1 means 1.0 (fvcore refuses an int for a float)
        node = cfg
        for part in overrides[i].split(".")[:-1]:
            node = node[part]
        if isinstance(node[overrides[i].split(".")[-1]], float) and str(overrides[i + 1]).lstrip("-").isdigit():
            overrides[i + 1] = f"{overrides[i + 1]}.0"
    cfg.merge_from_list(overrides)


def load_cfg_string(text: str, overrides: Sequence[str] = ()) -> CfgNode:
    """A config stored as YAML text (e.g. in a checkpoint) over the defaults, then ``overrides`` as in
    ``load_cfg``; keys this version does not know (a file from another version) are ignored. The
    result is frozen."""
    import yaml

    def merge(node: CfgNode, values: dict) -> None:
        for k, v in (values or {}).items():
            if k not in node:
                continue
            if isinstance(node[k], CfgNode) and isinstance(v, dict):
                merge(node[k], v)
            elif not isinstance(node[k], CfgNode):
                node[k] = v

    cfg = get_cfg()
    merge(cfg, yaml.safe_load(text))
    _apply_overrides(cfg, overrides)
    cfg.freeze()
    return cfg


__all__ = ["get_cfg", "load_cfg", "load_cfg_string"]
