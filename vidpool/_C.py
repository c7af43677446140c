"""The compiled SoftPool kernels: loads the CPU variant built for the best instruction set this
machine runs, and the CUDA kernels where they were built, registering ``torch.ops.vidpool.*``.

One build serves a whole cluster: the AVX-512, AVX2 and baseline variants are separate extensions
and only the one the CPU supports is loaded (as torch itself decides: ``ATEN_CPU_CAPABILITY``
lowers the choice, e.g. ``ATEN_CPU_CAPABILITY=default``). Import errors mean nothing was built;
``vidpool.ops`` then falls back to the pure-PyTorch reference.
"""
import importlib
import json
import os
import warnings

import torch

_PREFERENCE = {"avx512": ("avx512", "avx2", "default"), "avx2": ("avx2", "default")}


def _load_cpu():
    capability = torch.backends.cpu.get_cpu_capability().lower()
    missing = []
    for isa in _PREFERENCE.get(capability, ("default",)):
        try:
            return importlib.import_module(f"vidpool._kernels_{isa}")
        except ImportError as exc:
            missing.append(f"_kernels_{isa}: {exc}")
    raise ImportError("no vidpool CPU kernels could be loaded (" + "; ".join(missing) + ")")


_cpu = _load_cpu()
_cuda_error = None
try:
    _cuda = importlib.import_module("vidpool._kernels_cuda")
except ModuleNotFoundError:  # not built (no CUDA torch or no matching nvcc): see build_info()
    _cuda = None
except ImportError as exc:  # built, but it does not load here (another CUDA runtime, a missing library)
    _cuda, _cuda_error = None, str(exc)
    warnings.warn(f"vidpool's CUDA kernels were built but do not load ({exc}); CUDA tensors use the "
                  "pure-PyTorch reference", RuntimeWarning, stacklevel=2)

cpu_isa = _cpu.isa
cuda_compiled = _cuda is not None


def backends():
    """Devices whose kernels this build loaded: ``["cpu"]`` or ``["cpu", "cuda"]``."""
    return ["cpu"] + (["cuda"] if cuda_compiled else [])


def build_info():
    """What was built and loaded: the CPU variant in use, the backends, and setup.py's CUDA decision
    (with the reason when CUDA was left out)."""
    info = {"cpu_isa": cpu_isa, "backends": backends(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if _cuda_error:
        info["cuda_load_error"] = _cuda_error
    path = os.path.join(os.path.dirname(__file__), "_build_info.json")
    if os.path.exists(path):
        with open(path) as f:
            info["cuda_build"] = json.load(f)["cuda"]
    return info
