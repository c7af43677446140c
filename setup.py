"""Build vidpool and its compiled SoftPool kernels (vidpool._C), plus vidpool._cuda_emulated: the CUDA
kernels compiled for the host, which the tests run by serial grid emulation on machines without a GPU.

The CPU kernels are always built. The CUDA kernels are built when the installed torch has CUDA
(torch.version.cuda) and an nvcc of the same major version is found; otherwise the build is CPU-only
and says why (VIDPOOL_CUDA=1 makes that an error, VIDPOOL_CUDA=0 skips CUDA). nvcc is looked for in
$CUDA_HOME/bin, then on PATH, then in /usr/local/cuda/bin; the toolkit found is the one compiled with.
Environment knobs, a user's own values always win:
  VIDPOOL_CUDA            auto (default) | 1 | 0
  CUDA_HOME               the CUDA toolkit to use (default: the one nvcc on PATH belongs to)
  TORCH_CUDA_ARCH_LIST    default "7.5;8.0;9.0+PTX" (sm_80 code runs on 8.6/8.9 GPUs, the PTX on newer ones;
                          each architecture adds about 20 s of build time)
  VIDPOOL_CPU_ISA         auto (default: AVX-512 and AVX2 variants, chosen at run time) | avx512 | avx2 | none
  VIDPOOL_EMULATED        1 (default) | 0: skip vidpool._cuda_emulated (only tests use it)
  MAX_JOBS                parallel compile jobs (default 2)
Install with `pip install --no-build-isolation -e .` so the build sees the installed torch.
"""
import json
import os
import re
import shutil
import subprocess
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "7.5;8.0;9.0+PTX"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def nvcc_release(nvcc):
    """(major, minor) that `nvcc --version` reports, or None when it cannot be run or read."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"release (\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else None


def nvcc_toolkit_root(nvcc):
    """The toolkit an nvcc belongs to, as nvcc itself reports it (TOP in a dry run): right for a
    wrapper script on PATH too; the directory above its bin/ when the dry run says nothing."""
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
        found = re.search(r"^#\$ TOP=(.+)$", out.stdout + out.stderr, re.M)
    except (OSError, subprocess.SubprocessError):
        found = None
    if found:
        return os.path.normpath(found.group(1).strip().strip('"'))
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def find_nvcc(environ, fallback="/usr/local/cuda"):
    """(nvcc, toolkit root, where it came from) or (None, None, why not)."""
    home = environ.get("CUDA_HOME") or environ.get("CUDA_PATH")
    if home:
        nvcc = os.path.join(home, "bin", "nvcc")
        if os.path.isfile(nvcc) and os.access(nvcc, os.X_OK):
            return nvcc, home, f"CUDA_HOME={home}"
        return None, None, f"CUDA_HOME={home} has no bin/nvcc"
    on_path = shutil.which("nvcc", path=environ.get("PATH", ""))
    if on_path:
        return on_path, nvcc_toolkit_root(on_path), f"PATH ({on_path})"
    if os.path.isfile(os.path.join(fallback, "bin", "nvcc")):
        return os.path.join(fallback, "bin", "nvcc"), fallback, fallback
    return None, None, f"no nvcc on PATH, in $CUDA_HOME/bin or in {fallback}/bin"


def select_cuda(environ, torch_cuda, fallback="/usr/local/cuda"):
    """Decide whether to build the CUDA kernels: a dict with build (bool), home, nvcc, release, reason.

    torch_cuda is torch.version.cuda (None for a CPU-only torch). Raises RuntimeError when
    VIDPOOL_CUDA=1 asks for CUDA that cannot be built, naming the reason.
    """
    flag = environ.get("VIDPOOL_CUDA", "auto").strip().lower()
    if flag not in _ON + _OFF + ("auto", ""):
        raise RuntimeError(f"VIDPOOL_CUDA={flag!r}: expected auto, 1 or 0")
    result = {"build": False, "home": None, "nvcc": None, "release": None, "torch_cuda": torch_cuda}
    if flag in _OFF:
        return dict(result, reason="VIDPOOL_CUDA=0")
    nvcc, home, origin = find_nvcc(environ, fallback)
    release = nvcc_release(nvcc) if nvcc else None
    if torch_cuda is None:
        reason = "the installed torch is a CPU-only build (torch.version.cuda is None)"
    elif nvcc is None:
        reason = origin
    elif release is None:
        reason = f"`{nvcc} --version` did not report a release"
    elif str(release[0]) != str(torch_cuda).split(".")[0]:
        reason = (f"nvcc {release[0]}.{release[1]} ({nvcc}, from {origin}) does not match the CUDA {torch_cuda} "
                  "torch was built with: the major versions must agree (set CUDA_HOME to a matching toolkit)")
    else:
        return dict(result, build=True, home=home, nvcc=nvcc, release=f"{release[0]}.{release[1]}",
                    reason=f"nvcc {release[0]}.{release[1]} from {origin}")
    if flag in _ON:
        raise RuntimeError(f"VIDPOOL_CUDA=1 but the CUDA kernels cannot be built: {reason}")
    return dict(result, nvcc=nvcc, reason=reason)


def cuda_include_dirs(home, torch_dir, torch_cuda):
    """The toolkit's headers first, then the pip-installed nvidia/cu<major> ones (which hold headers
    such as cusparse's that a bare toolkit may lack) only as a fallback."""
    dirs = [os.path.join(home, "include")]
    pip_headers = os.path.join(os.path.dirname(torch_dir), "nvidia", f"cu{str(torch_cuda).split('.')[0]}", "include")
    if os.path.isdir(pip_headers):
        dirs.append(os.path.abspath(pip_headers))
    return dirs


# Compiler flags of each CPU variant. at::vec picks its AVX2/AVX-512 implementation from the
# CPU_CAPABILITY macros, as ATen's own per-ISA kernels do.
ISA_FLAGS = {
    "default": [],
    "avx2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"],
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c",
               "-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"],
}


def cpu_variants(environ, machine):
    """The CPU kernel variants to build. Each is a whole extension of its own, so no code compiled
    for a newer instruction set can leak into what an older CPU runs; vidpool._C loads the best one
    the machine (as torch reports it) supports, so one build serves every node of a cluster."""
    isa = environ.get("VIDPOOL_CPU_ISA", "auto").strip().lower()
    x86 = machine.lower() in ("x86_64", "amd64", "i686", "x86")
    chosen = {"auto": ["default", "avx2", "avx512"], "avx512": ["default", "avx2", "avx512"],
              "avx2": ["default", "avx2"], "none": ["default"]}.get(isa)
    if chosen is None:
        raise RuntimeError(f"VIDPOOL_CPU_ISA={isa!r}: expected auto, avx512, avx2 or none")
    return chosen if x86 else ["default"]


def _extensions(cuda):
    import platform

    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    exts = []
    for isa in cpu_variants(os.environ, platform.machine()):
        # at::parallel_for is OpenMP-based in torch's builds: without -fopenmp it runs serially.
        exts.append(CppExtension(
            f"vidpool._kernels_{isa}", ["csrc/ops.cpp", "csrc/softpool_cpu.cpp", "csrc/zoo_cpu.cpp"],
            define_macros=[("VIDPOOL_CPU_ISA", isa)],
            extra_compile_args={"cxx": ["-O3", "-fopenmp"] + ISA_FLAGS[isa]}, extra_link_args=["-fopenmp"]))
    if os.environ.get("VIDPOOL_EMULATED", "1").strip() != "0":
        exts.append(CppExtension("vidpool._cuda_emulated", ["csrc/emulation/softpool_emulated.cpp"],
                                 extra_compile_args={"cxx": ["-O2"]}))
    if cuda["build"]:
        include_dirs = cuda_include_dirs(cuda["home"], os.path.dirname(torch.__file__), torch.version.cuda)
        exts.append(CUDAExtension(
            "vidpool._kernels_cuda", ["csrc/ops.cpp", "csrc/softpool_cuda.cu"], include_dirs=include_dirs,
            define_macros=[("VIDPOOL_WITH_CUDA", None)], extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3"]}))
    return exts


def main():
    os.environ.setdefault("MAX_JOBS", "2")
    import torch  # only its version: torch.utils.cpp_extension reads CUDA_HOME when first imported

    cuda = select_cuda(os.environ, torch.version.cuda)
    if cuda["build"]:
        os.environ["CUDA_HOME"] = cuda["home"]  # the toolkit checked above is the one compiled with
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)
        cuda["archs"] = os.environ["TORCH_CUDA_ARCH_LIST"]
        print(f"vidpool: building CPU and CUDA kernels ({cuda['reason']}, archs {cuda['archs']})", file=sys.stderr)
    else:
        print(f"vidpool: building CPU kernels only: {cuda['reason']} "
              "(VIDPOOL_CUDA=1 turns this into an error)", file=sys.stderr)
    with open(os.path.join(HERE, "vidpool", "_build_info.json"), "w") as f:
        json.dump({"cuda": cuda}, f, indent=1)
    from torch.utils.cpp_extension import BuildExtension

    setup(
        name="vidpool",
        version="0.1.0",
        description="Video action recognition with spatio-temporal SoftPool",
        packages=find_packages(include=["vidpool", "vidpool.*"]),
        package_data={"vidpool.data": ["classes/*.txt", "classes/NOTICE.md"], "vidpool": ["_build_info.json"]},
        entry_points={"console_scripts": ["vidpool = vidpool.cli:main"]},
        python_requires=">=3.10",
        ext_modules=_extensions(cuda),
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    )


if __name__ == "__main__":
    main()
