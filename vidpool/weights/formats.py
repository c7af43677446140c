"""Checkpoint files of other code bases: reading them safely, telling their layouts apart, renaming
their tensors to vidpool's module names.

Layouts (``source=`` names):
- ``vidpool``: ``{'model', 'cfg', 'epoch', ...}`` from a vidpool run, or a bare vidpool state_dict.
- ``pyslowfast``: ``{'model_state', 'optimizer_state', 'epoch', 'cfg'}``; the state inside is read
  in whichever layout it has (PySlowFast's own SlowFast/X3D/ResNet networks have no vidpool twin).
- ``hara``: 3D-ResNets-PyTorch (Hara et al.) ``models/resnet.py`` and ``models/resnet2p1d.py``:
  ``{'arch': 'resnet-50', 'state_dict', 'optimizer', ...}`` as published, or a bare state_dict.
- ``pytorch_i3d``: pytorch-i3d's ``InceptionI3d`` state_dict (``rgb_imagenet.pt``, ``rgb_charades.pt``).
- ``torchvision``: ``torchvision.models.video.r3d_18`` / ``r2plus1d_18`` state_dicts.
- ``srtg``: the official SRTG code's ``{'epoch', 'state_dict'[, 'optimizer']}`` of a DataParallel
  network, with SR blocks (``...sar.lstm...``) or, as its training script often wrote them, without.
DataParallel/DDP ``module.`` prefixes are removed everywhere.
"""
from __future__ import annotations

import os
import pickle
import pickletools
import re
import zipfile
from typing import Callable, Dict, Optional, Tuple

import torch

SOURCES = ("vidpool", "pyslowfast", "hara", "pytorch_i3d", "torchvision", "srtg")


class UntrustedCheckpointError(RuntimeError):
    """The file holds more than tensors and plain containers; unpickling it could run its code."""


class NotACheckpointError(ValueError):
    """The file is not a PyTorch checkpoint at all (a web page, a Git LFS pointer, a truncated download)."""


def _what_else(path: str) -> Optional[str]:
    """Why the file at ``path`` cannot be a PyTorch checkpoint, judged from its first bytes (None:
    it may be one)."""
    size = os.path.getsize(path)
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(2048)
    text = head.lstrip().lower()
    if text.startswith(b"version https://git-lfs"):
        return (f"is a Git LFS pointer ({size} bytes), not the weights: fetch the file itself "
                "(git lfs pull in its repository, or the release's download link)")
    if text.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in text[:512]:
        return (f"looks like an HTML page ({size} bytes), not a checkpoint: the download link returned a "
                "web page (a login, a quota or a 'confirm download' page); download the file itself")
    if head.startswith(b"PK\x03\x04"):
        return None if zipfile.is_zipfile(path) else \
            f"is truncated ({size} bytes: a PyTorch archive without its end); download it again"
    if not head.startswith(b"\x80"):
        return f"is not a PyTorch checkpoint (it starts with {head[:16]!r})"
    return None


def _truncated_pickle(path: str) -> bool:
    """Whether a legacy (non-zip) PyTorch file ends inside one of its pickles; read with
    pickletools, which never runs what it reads."""
    with open(path, "rb") as f:
        try:
            for _ in range(5):  # magic number, protocol, system info, the object, storage keys
                for _ in pickletools.genops(f):
                    pass
        except (ValueError, EOFError):
            return True
    return False


def read_file(path: str, trusted: bool = False):
    """The object a checkpoint file holds. Read with ``weights_only=True`` (tensors, numbers, strings,
    containers only) unless ``trusted``; a file that needs full unpickling is refused before any of
    it runs. A file that is no checkpoint at all (a web page, a Git LFS pointer, a truncated
    download) is a ``NotACheckpointError`` that says which."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    problem = _what_else(path)
    if problem:
        raise NotACheckpointError(f"{path} {problem}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except OSError as e:  # an I/O error: the file may read another time
        raise OSError(f"cannot read checkpoint {path}: {e}") from None
    except (pickle.UnpicklingError, EOFError) as e:
        if isinstance(e, EOFError) or (not zipfile.is_zipfile(path) and _truncated_pickle(path)):
            raise NotACheckpointError(f"{path} is truncated ({os.path.getsize(path)} bytes: it ends inside "
                                      "its data); download it again") from None
        if trusted:
            raise RuntimeError(f"cannot read checkpoint {path}: {e}") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UntrustedCheckpointError(
            f"{path} holds more than weights (objects that only full unpickling restores, which can run "
            f"code from the file: {first}). Load it only if you trust where it came from: "
            "load_weights(..., trusted=True), TRAIN.CHECKPOINT_TRUSTED True, or --trusted on the tools") from None
    except Exception as e:  # damaged or not a torch file: torch raises several types
        raise RuntimeError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None


def strip_module(state: dict) -> dict:
    """``state`` without the ``module.`` prefix DataParallel and DDP put on every key."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def unpack(obj, path: str) -> Tuple[str, dict, dict]:
    """(container kind, state_dict, meta) of a loaded checkpoint object. The kind is ``vidpool``,
    ``pyslowfast``, ``hara`` (a dict with ``arch`` and ``state_dict``), ``state_dict`` (another dict
    around a ``state_dict``) or ``raw``; ``meta`` keeps the container's other plain entries."""
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict or a state_dict "
                         "(a whole pickled model? save its state_dict() instead)")
    for key, kind in (("model", "vidpool"), ("model_state", "pyslowfast"), ("state_dict", "state_dict")):
        if isinstance(obj.get(key), dict):
            if kind == "state_dict" and isinstance(obj.get("arch"), str):
                kind = "hara"
            meta = {k: v for k, v in obj.items() if isinstance(v, (str, int, float, bool)) and k != key}
            return kind, strip_module(dict(obj[key])), meta
    if _is_state_dict(strip_module(obj)):
        return "raw", strip_module(dict(obj)), {}
    raise ValueError(f"{path} is not a checkpoint vidpool knows: top-level keys {sorted(map(str, obj))[:8]} "
                     "(expected a state_dict or one under 'model', 'model_state' or 'state_dict')")


def layout_of(state: dict) -> str:
    """Which code base's module names ``state`` uses: ``vidpool``, ``hara``, ``pytorch_i3d``,
    ``torchvision``, ``pyslowfast_native`` or ``unknown``."""
    if "Conv3d_1a_7x7.conv3d.weight" in state:
        return "pytorch_i3d"
    if "conv1.weight" in state or "conv1_s.weight" in state:
        return "hara"
    if any(k.startswith(("s1.pathway0_stem", "s1.pathway1_stem")) for k in state):
        return "pyslowfast_native"
    # official SRTG: SR blocks named "sar", r3d convs one level deeper than torchvision's, or
    # expansion-1 bottlenecks (conv3 as wide as conv1) behind a torchvision stem
    if any(".sar.lstm." in k for k in state) or "layer1.0.conv1.0.0.weight" in state and \
            state["layer1.0.conv1.0.0.weight"].shape[2:] == (3, 3, 3) or _expansion_one(state):
        return "srtg_official"
    stem = state.get("stem.0.weight")
    if stem is not None and stem.dim() == 5 and tuple(stem.shape[2:]) in ((3, 7, 7), (1, 7, 7)):
        return "torchvision"  # vidpool's own stems are 7x7x7 or (2+1)D Sequentials
    if any(k.startswith(("stem.", "features.", "layer1.")) for k in state):
        return "vidpool"
    return "unknown"


def _expansion_one(state: dict) -> bool:
    conv1, conv3 = state.get("layer1.0.conv1.0.weight"), state.get("layer1.0.conv3.0.weight")
    stem = state.get("stem.0.weight")
    return conv1 is not None and conv3 is not None and stem is not None and stem.shape[2:] != (7, 7, 7) \
        and conv3.shape[0] == conv1.shape[0]


def _rename(state: dict, rules) -> Tuple[dict, int]:
    out, renamed = {}, 0
    for key, value in state.items():
        new = key
        for pattern, repl in rules:
            new, n = pattern.subn(repl, key)
            if n:
                break
        renamed += new != key
        out[new] = value
    return out, renamed


# 3D-ResNets-PyTorch: conv/bn pairs become vidpool's (conv, bn[, relu]) Sequentials; in (2+1)D convs the
# spatial conv and its BN sit at .0.0/.0.1 and the temporal conv at .0.3 (BN at .1)
_HARA_RULES = [(re.compile(p), r) for p, r in (
    (r"^conv1_s\.", "stem.0.0."), (r"^bn1_s\.", "stem.0.1."), (r"^conv1_t\.", "stem.0.3."), (r"^bn1_t\.", "stem.1."),
    (r"^conv1\.", "stem.0."), (r"^bn1\.", "stem.1."),
    (r"^(layer\d+\.\d+)\.conv(\d)_s\.", r"\1.conv\2.0.0."), (r"^(layer\d+\.\d+)\.bn(\d)_s\.", r"\1.conv\2.0.1."),
    (r"^(layer\d+\.\d+)\.conv(\d)_t\.", r"\1.conv\2.0.3."), (r"^(layer\d+\.\d+)\.bn(\d)_t\.", r"\1.conv\2.1."),
    (r"^(layer\d+\.\d+)\.conv(\d)\.", r"\1.conv\2.0."), (r"^(layer\d+\.\d+)\.bn(\d)\.", r"\1.conv\2.1."),
)]

_I3D_BRANCHES = {"b0": "branch0", "b1a": "branch1.0", "b1b": "branch1.1", "b2a": "branch2.0", "b2b": "branch2.1",
                 "b3b": "branch3.1"}
_I3D_RULES = [(re.compile(p), r) for p, r in (
    (r"^logits\.conv3d\.", "logits."),
    (r"^(Conv3d_\w+)\.conv3d\.", r"features.\1.0."), (r"^(Conv3d_\w+)\.bn\.", r"features.\1.1."),
)] + [(re.compile(rf"^(Mixed_\w+)\.{b}\.conv3d\."), rf"features.\1.{v}.0.") for b, v in _I3D_BRANCHES.items()] \
   + [(re.compile(rf"^(Mixed_\w+)\.{b}\.bn\."), rf"features.\1.{v}.1.") for b, v in _I3D_BRANCHES.items()]


def add_batch_counters(state: dict) -> Tuple[dict, int]:
    """Files saved before PyTorch 0.4.1 have no ``num_batches_tracked``: add a zero one per BN layer."""
    out, added = dict(state), 0
    for key in state:
        if key.endswith(".running_mean"):
            counter = key[: -len("running_mean")] + "num_batches_tracked"
            if counter not in out:
                out[counter] = torch.tensor(0, dtype=torch.long)
                added += 1
    return out, added


def convert(layout: str, state: dict) -> Tuple[dict, int, Dict[str, object]]:
    """(state in vidpool's names, number of renamed keys, behaviour options the model needs)."""
    converters: Dict[str, Callable[[dict], Tuple[dict, int, dict]]] = {
        "vidpool": lambda s: (s, 0, {}),
        "torchvision": lambda s: (s, 0, {}),
        "srtg_official": lambda s: (s, 0, {}),  # vidpool's official models use its names
        "hara": lambda s: _rename(s, _HARA_RULES) + ({},),
        "pytorch_i3d": _convert_i3d,
    }
    if layout == "pyslowfast_native":
        raise ValueError("the file holds one of PySlowFast's own networks (SlowFast, Slow, C2D/I3D-ResNet, X3D: "
                         "keys 's1.pathway0_stem...'), which vidpool does not implement; vidpool reads "
                         "PySlowFast-format files that hold a vidpool, 3D-ResNets-PyTorch or pytorch-i3d network")
    if layout == "hara" and not any(".downsample." in k for k in state):
        raise ValueError("the file holds a 3D-ResNets-PyTorch network with shortcut type A (parameter-free "
                         "zero-padding shortcuts, the 2017 releases), which vidpool does not build; its "
                         "shortcut-B files (the 2020 releases, e.g. r3d50_K_200ep.pth) load")
    if layout not in converters:
        raise ValueError(f"unknown tensor layout (first keys: {list(state)[:4]}); supported sources: "
                         f"{', '.join(SOURCES)}")
    return converters[layout](state)


def _convert_i3d(state: dict):
    renamed, n = _rename(state, _I3D_RULES)
    renamed, _ = add_batch_counters(renamed)
    return renamed, n, {"tf_same": True}


def source_of(kind: str, layout: str) -> str:
    """The ``source=`` name of a file from its container kind and tensor layout."""
    if kind == "pyslowfast":
        return "pyslowfast"
    if kind == "vidpool":
        return "vidpool"
    if kind == "hara" or layout == "hara":
        return "hara"
    if layout == "srtg_official":
        return "srtg"
    return layout if layout in SOURCES else "vidpool"


def expected_layouts(source: str) -> Optional[Tuple[str, ...]]:
    """Tensor layouts a file declared as ``source`` may hold (None: any)."""
    return {"vidpool": ("vidpool", "torchvision"), "pyslowfast": None, "hara": ("hara",),
            "pytorch_i3d": ("pytorch_i3d",), "torchvision": ("torchvision", "vidpool"),
            "srtg": ("srtg_official", "torchvision")}[source]
