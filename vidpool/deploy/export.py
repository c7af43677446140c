"""Exporting models for deployment: ONNX, TorchScript and torch.export (``.pt2``) files.

SoftPool is traced as standard operations (``vidpool.ops.softpool.decomposed``), so the exported
files run without vidpool or its extension (onnxruntime, ``torch.jit.load``, ``torch.export.load``).
``check_export`` runs an exported file on a fresh input and compares its logits with the PyTorch
model's (compiled SoftPool op) on the same input.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import os
from typing import Optional, Sequence

import torch
import torch.fx.experimental._config as fx_config
from torch import nn

from vidpool.ops.softpool import decomposed

FORMATS = ("onnx", "torchscript", "exported")
DYNAMIC = ("none", "batch", "all")  # which input axes may change: none, the batch, batch and T, H, W


class ExportNeedsNewerTorch(RuntimeError):
    """The installed torch lacks an export feature vidpool uses (it is inside vidpool's torch range,
    which the rest of vidpool supports, but exporting needs newer features)."""


def missing_export_features(fmt: str, dynamic: str) -> list:
    """The torch features ``export_model(..., fmt, dynamic)`` needs that this torch lacks."""
    missing = []
    if not hasattr(fx_config, "backed_size_oblivious"):
        missing.append("torch.fx.experimental._config.backed_size_oblivious (size-oblivious tracing)")
    if fmt in ("onnx", "exported") and dynamic != "none" and not hasattr(torch.export.Dim, "DYNAMIC"):
        missing.append("torch.export.Dim.DYNAMIC (dynamic input axes)")
    if fmt == "onnx" and "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        missing.append("torch.onnx.export(dynamo=True) (the torch.export-based ONNX exporter)")
    return missing


def _dynamic_shapes(dynamic: str):
    if dynamic not in DYNAMIC:
        raise ValueError(f"dynamic must be one of {DYNAMIC}, got {dynamic!r}")
    if dynamic == "none":
        return None
    auto = torch.export.Dim.DYNAMIC
    axes = {0: auto} if dynamic == "batch" else {0: auto, 2: auto, 3: auto, 4: auto}
    return {"x": axes}


def export_model(model: nn.Module, example: torch.Tensor, fmt: str, path: str, dynamic: str = "batch",
                 opset: Optional[int] = None, quiet: bool = True) -> str:
    """Write ``model`` (eval mode) traced on ``example`` (N, 3, T, H, W) to ``path`` as ``fmt``.
    ``dynamic``: which input axes the file accepts other sizes of (``none``, ``batch``, ``all``;
    TorchScript tracing fixes the clip shape, so ``all`` is for onnx and exported). Trace with N >= 2.
    A dynamic-shape file accepts any clip whose last feature map is not a single cell."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "torchscript" and dynamic == "all":
        raise ValueError("TorchScript tracing fixes the clip shape: use dynamic 'batch' or 'none', or the "
                         "onnx / exported formats for a dynamic clip shape")
    if dynamic != "none" and example.shape[0] < 2:
        raise ValueError("trace a dynamic batch with an example batch of at least 2 (the tracer fixes size-1 axes)")
    missing = missing_export_features(fmt, dynamic)
    if missing:
        raise ExportNeedsNewerTorch(
            f"exporting {fmt} (dynamic: {dynamic}) needs features this torch {torch.__version__} lacks: "
            f"{'; '.join(missing)}. Install a newer torch (vidpool's export is tested with torch 2.14.1; "
            "everything else in vidpool works with the whole supported range)")
    model = model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    shapes = _dynamic_shapes(dynamic)
    sink = io.StringIO()
    # size-oblivious tracing: an axis that is 1 in the example (time after the strides) stays symbolic
    with decomposed(), torch.no_grad(), fx_config.patch(backed_size_oblivious=True), \
            (contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext()):
        if fmt == "exported":
            torch.export.save(torch.export.export(model, (example,), dynamic_shapes=shapes, strict=False), path)
        elif fmt == "torchscript":
            torch.jit.trace(model, example, check_trace=False).save(path)
        else:
            program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=shapes, input_names=["clips"],
                                        output_names=["logits"], opset_version=opset, verbose=False)
            program.save(path)
    return path


def run_exported(path: str, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """Logits of an exported file on ``x``, computed by the runtime of its format."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        if fmt == "torchscript":
            return torch.jit.load(path)(x)
        return torch.export.load(path).module()(x)


def check_export(model: nn.Module, path: str, fmt: str, shapes: Sequence[Sequence[int]], seed: int = 0) -> dict:
    """Max abs and relative (to the largest |logit|) difference between the file's logits and the
    model's on random inputs of each shape in ``shapes``."""
    g = torch.Generator().manual_seed(seed)
    worst = {"max_abs_diff": 0.0, "max_rel_diff": 0.0}
    for shape in shapes:
        x = torch.randn(tuple(shape), generator=g)
        with torch.no_grad():
            ref = model.eval()(x)
        out = run_exported(path, fmt, x)
        if out.shape != ref.shape:
            raise RuntimeError(f"{path}: logits of shape {tuple(out.shape)} for input {tuple(shape)}, "
                               f"PyTorch gives {tuple(ref.shape)}")
        diff = float((out.float() - ref.float()).abs().max())
        worst["max_abs_diff"] = max(worst["max_abs_diff"], diff)
        worst["max_rel_diff"] = max(worst["max_rel_diff"], diff / max(float(ref.abs().max()), 1e-12))
    return worst
