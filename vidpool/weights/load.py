"""``load_weights(model, path)``: any supported checkpoint file into a vidpool model, all or nothing."""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional

import torch
from torch import nn

from . import formats

log = logging.getLogger("vidpool.weights")


@dataclasses.dataclass
class LoadReport:
    """What ``load_weights`` did."""
    path: str
    source: str                 # vidpool | pyslowfast | hara | pytorch_i3d | torchvision
    layout: str                 # module names the tensors came in
    tensors_loaded: int
    keys_renamed: int
    classifier: str             # "kept", "dropped (...)" or "none"
    options: Dict[str, object] = dataclasses.field(default_factory=dict)  # behaviour set on the model
    kept_initial: List[str] = dataclasses.field(default_factory=list)     # model tensors not in the file
    dropped: List[str] = dataclasses.field(default_factory=list)          # file tensors not used
    meta: Dict[str, object] = dataclasses.field(default_factory=dict)     # e.g. the file's 'arch', 'epoch'

    def __str__(self) -> str:
        parts = [f"{self.path}: {self.source} file ({self.layout} layout)", f"{self.tensors_loaded} tensors loaded",
                 f"{self.keys_renamed} keys renamed", f"classifier {self.classifier}"]
        if self.options:
            parts.append("options " + ", ".join(f"{k}={v}" for k, v in self.options.items()))
        if self.kept_initial:
            parts.append(f"{len(self.kept_initial)} model tensors not in the file kept their initial values "
                         f"({', '.join(self.kept_initial[:3])}{', ...' if len(self.kept_initial) > 3 else ''})")
        if self.dropped:
            parts.append(f"{len(self.dropped)} file tensors unused ({', '.join(self.dropped[:3])}"
                         f"{', ...' if len(self.dropped) > 3 else ''})")
        return "; ".join(parts)


def _pool_prefixes(model: nn.Module) -> List[str]:
    from vidpool.ops.swap import is_pooling_layer

    return [name + "." for name, m in model.named_modules() if name and is_pooling_layer(m)]


def _classifier_prefix(model: nn.Module) -> Optional[str]:
    from vidpool.models.heads import classifier_name

    try:
        return classifier_name(model) + "."
    except ValueError:
        return None


@dataclasses.dataclass
class Weights:
    """A checkpoint file read (once) and renamed to vidpool's module names."""
    path: str
    kind: str                   # container: vidpool, pyslowfast, hara, state_dict or raw
    source: str
    layout: str
    state: dict                 # tensors under vidpool's names
    renamed: int
    options: Dict[str, object]  # behaviour the model needs (e.g. {"tf_same": True})
    meta: Dict[str, object]
    obj: dict                   # what the file holds (for a vidpool checkpoint's stored config)

    @property
    def num_classes(self) -> Optional[int]:
        """Outputs of the file's classifier (None when it has none)."""
        head = self.state.get("fc.weight", self.state.get("logits.weight"))
        return None if head is None else int(head.shape[0])


def read_weights(path: str, source: str = "auto", trusted: bool = False) -> Weights:
    """Read a checkpoint file of any supported source (``auto``: detected from its layout, or one of
    ``formats.SOURCES``) with ``weights_only=True`` unless ``trusted``, and rename its tensors."""
    if source != "auto" and source not in formats.SOURCES:
        raise ValueError(f"source must be 'auto' or one of {formats.SOURCES}, got {source!r}")
    obj = formats.read_file(path, trusted)
    kind, state, meta = formats.unpack(obj, path)
    layout = formats.layout_of(state)
    detected = formats.source_of(kind, layout)
    if source != "auto":
        allowed = formats.expected_layouts(source)
        if detected != source and not (allowed and layout in allowed and kind in ("raw", "state_dict")):
            raise ValueError(f"{path} was read as a {source} file but holds a {detected} checkpoint "
                             f"({layout} layout); use source='auto' or {detected!r}")
        detected = source
    converted, renamed, options = formats.convert(layout, state)
    return Weights(path, kind, detected, layout, converted, renamed, options, meta, obj)


def load_weights(model: nn.Module, path: str, source: str = "auto", *, finetune: bool = False,
                 trusted: bool = False, cfg_check=None) -> LoadReport:
    """Load the checkpoint file ``path`` into ``model`` and report what was done.

    ``source``: ``auto`` (detected from the file's layout) or one of ``formats.SOURCES``.
    ``finetune``: the file's classifier is loaded only when its shape fits (else the model keeps its
    fresh one); without it a classifier of another class count is an error.
    ``trusted``: allow files that need full unpickling (can run code from the file).
    Pooling layers may differ between file and model (max-pool weights into a SoftPool model is the
    pooling-swap experiment): parameters of the model's pools that the file lacks keep their initial
    values and the file's pool parameters the model has no place for are dropped; both are reported.
    Anything else that does not fit raises, naming what the file holds, and leaves ``model`` untouched.
    Behaviour a source needs (pytorch-i3d's TensorFlow SAME padding) is set on the model and listed in
    ``report.options``."""
    return apply_weights(model, read_weights(path, source, trusted), finetune=finetune, cfg_check=cfg_check)


def apply_weights(model: nn.Module, weights: Weights, *, finetune: bool = False, cfg_check=None) -> LoadReport:
    """``load_weights`` for a file already read by ``read_weights``."""
    if weights.kind == "vidpool" and cfg_check is not None:
        cfg_check(weights.obj)
    report = LoadReport(weights.path, weights.source, weights.layout, 0, weights.renamed, "none",
                        dict(weights.options), meta=weights.meta)
    _check_options(model, weights.options, weights.path)
    to_load = _match(model, weights.state, report, finetune)
    model.load_state_dict(to_load, strict=False)
    report.tensors_loaded = len(to_load)
    _apply_options(model, weights.options)
    return report


def _check_options(model: nn.Module, options: dict, path: str) -> None:
    from vidpool.models.i3d import I3D

    if options.get("tf_same") and not isinstance(model, I3D):
        raise ValueError(f"{path} holds an I3D (pytorch-i3d) network; build the model as 'i3d' to load it "
                         f"(got {getattr(model, 'model_name', type(model).__name__)})")


def _apply_options(model: nn.Module, options: dict) -> None:
    if options.get("tf_same"):
        from vidpool.models.i3d import set_tf_same

        set_tf_same(model, True)


def _match(model: nn.Module, state: dict, report: LoadReport, finetune: bool) -> dict:
    """The subset of ``state`` to load; raises on anything that does not fit."""
    own = model.state_dict()
    optional = set(getattr(model, "optional_state_keys", ()))
    pools = _pool_prefixes(model)
    head = _classifier_prefix(model)
    in_pool = lambda k: any(k.startswith(p) for p in pools)  # noqa: E731
    in_head = lambda k: head is not None and k.startswith(head)  # noqa: E731
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    problems = [k for k in wrong if not in_head(k) or own[k].shape[1:] != state[k].shape[1:]]
    problems += [k for k in missing if not in_pool(k) and not (in_head(k) and finetune) and k not in optional]
    problems += [k for k in unexpected if not in_pool(k)]
    if problems:
        _plain_srtg_file(model, state, missing, report)
        raise ValueError(_mismatch_message(model, state, own, missing, unexpected, problems, report))
    wrong_head = [k for k in wrong if in_head(k)]  # only the class count differs
    report.classifier = "kept" if head and any(in_head(k) for k in state) else "none"
    if wrong_head:
        k = wrong_head[0]
        file_classes, model_classes = state[k].shape[0], own[k].shape[0]
        if not finetune:
            raise ValueError(f"{report.path}: the file's classifier has {file_classes} outputs, the model "
                             f"{model_classes}. Build the model with {file_classes} classes to keep it, or "
                             "load the backbone only with finetune=True (TRAIN.FINETUNE True)")
        report.classifier = f"dropped (file {file_classes} classes, model {model_classes}; fresh classifier)"
    report.kept_initial = [k for k in missing if k not in optional] + [k for k in wrong_head]
    report.dropped = list(unexpected) + [k for k in wrong_head]
    if head and finetune and any(in_head(k) for k in missing):
        report.classifier = "not in the file (fresh classifier)"
    return {k: v for k, v in state.items() if k in own and k not in wrong_head}


def _plain_srtg_file(model, state, missing, report) -> None:
    """A file of the official SRTG code without SR blocks, loaded into an official SRTG model: say what
    it is instead of listing LSTM tensors."""
    name = getattr(model, "model_name", "")
    if not (name.startswith("srtg_") and name.endswith("_official")) or any(".sar." in k for k in state):
        return
    plain = name[len("srtg_"):]
    network = plain[:-len("_official")]
    if missing and all(".sar." in k for k in missing):
        raise ValueError(
            f"{report.path} holds the plain {network} network of the official SRTG code: it has no SR-block "
            "tensors (the official training script builds the plain network for every srtg_* name, so its "
            f"'srtg' files often are). Load it into {plain}, the same network without SR blocks")


def _shape(t) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _mismatch_message(model, state, own, missing, unexpected, problems, report) -> str:
    name = getattr(model, "model_name", type(model).__name__)
    lines = []
    for k in problems[:4]:
        if k in own and k in state:
            lines.append(f"{k}: {name} has {_shape(own[k])}, the file {_shape(state[k])}")
        elif k in own:
            lines.append(f"{k} ({_shape(own[k])}) is not in the file")
        else:
            lines.append(f"the file's {k} ({_shape(state[k])}) has no place in {name}")
    fits = identify(state)
    holds = f"holds {' / '.join(fits)} weights" if fits else "holds weights of no registered model"
    arch = report.meta.get("arch")
    return (f"{report.path} ({report.source} file{', arch ' + repr(arch) if arch else ''}) {holds}, which do not "
            f"fit {name}: {len(problems)} tensors differ ({len(missing)} missing, {len(unexpected)} unexpected "
            "in all), e.g. " + "; ".join(lines) + ". The model is unchanged")


_SIGNATURES: Dict[str, Dict[str, tuple]] = {}


def _signature(name: str) -> Dict[str, tuple]:
    """Shapes of a registered model's backbone tensors (classifier and pools left out), built on the
    meta device so no memory is spent."""
    if name not in _SIGNATURES:
        from vidpool.models import create_model

        with torch.device("meta"):
            model = create_model(name, 10)
        skip = _pool_prefixes(model) + [p for p in [_classifier_prefix(model)] if p]
        optional = set(getattr(model, "optional_state_keys", ()))
        _SIGNATURES[name] = {k: tuple(v.shape) for k, v in model.state_dict().items()
                             if k not in optional and not any(k.startswith(p) for p in skip)}
    return _SIGNATURES[name]


def identify(state: dict) -> List[str]:
    """Registered models whose backbone tensors are exactly those of ``state`` (in vidpool names);
    failing that, those with the same tensors at other shapes (another base width)."""
    from vidpool.models import list_models

    shapes = {k: tuple(v.shape) for k, v in state.items() if k != "tf_same_padding"}
    exact, other_width = [], []
    for name in list_models():
        sig = _signature(name)
        if set(sig) == {k for k in shapes if _backbone_key(k)}:
            (exact if all(shapes[k] == s for k, s in sig.items()) else other_width).append(name)
    return exact or [f"{name} (of another width)" for name in other_width]


def _backbone_key(key: str) -> bool:
    """Not a classifier or (learned) pooling tensor, by vidpool's module names."""
    return not key.startswith(("fc.", "logits.", "pool.")) and ".branch3.0." not in key
