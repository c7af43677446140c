"""Build vidpool and its compiled SoftPool kernels (vidpool._C).

The CPU kernels are always built. The CUDA kernels are built too when nvcc is found
(override with VIDPOOL_CUDA=0/1). Environment knobs, a user's own values always win:
  CUDA_HOME               default /usr/local/cuda when it exists
  TORCH_CUDA_ARCH_LIST    default "7.5;8.0;9.0+PTX" (sm_80 code runs on 8.6/8.9 GPUs, the PTX on newer ones;
                          each architecture adds about 20 s of build time)
  VIDPOOL_CPU_ISA         auto (default: the best of AVX-512/AVX2 the build machine has) | avx512 | avx2 | none
  MAX_JOBS                parallel compile jobs (default 2)
Install with `pip install --no-build-isolation -e .` so the build sees the installed torch.
"""
import os
import shutil

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "7.5;8.0;9.0+PTX"


def _want_cuda():
    flag = os.environ.get("VIDPOOL_CUDA", "auto").lower()
    if flag in ("0", "false", "no", "off"):
        return False
    if "CUDA_HOME" not in os.environ and os.path.isdir("/usr/local/cuda"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"
    found = shutil.which("nvcc") is not None or os.path.exists(
        os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "bin", "nvcc"))
    if flag in ("1", "true", "yes", "on") and not found:
        raise RuntimeError("VIDPOOL_CUDA=1 but nvcc was not found; set CUDA_HOME to your CUDA toolkit")
    if found:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)
    return found


def _cpu_isa_flags():
    isa = os.environ.get("VIDPOOL_CPU_ISA", "auto").lower()
    if isa == "auto":
        try:
            with open("/proc/cpuinfo") as f:
                flags = f.read()
            avx512 = all(f" {f}" in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq"))
            isa = "avx512" if avx512 else "avx2" if (" avx2" in flags and " fma" in flags) else "none"
        except OSError:
            isa = "none"
    if isa == "avx2":
        # at::vec picks its AVX2 implementation from these macros, as ATen's own AVX2 kernels do.
        return ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]
    if isa == "avx512":
        return ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c",
                "-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"]
    if isa == "none":
        return []
    raise RuntimeError(f"VIDPOOL_CPU_ISA={isa!r}: expected auto, avx512, avx2 or none")


def _extensions(with_cuda):
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    sources = ["csrc/ops.cpp", "csrc/softpool_cpu.cpp"]
    # at::parallel_for is OpenMP-based in torch's builds: without -fopenmp it runs serially.
    cxx = ["-O3", "-fopenmp"] + _cpu_isa_flags()
    link = ["-fopenmp"]
    if with_cuda:
        nvidia_include = os.path.join(os.path.dirname(torch.__file__), "..", "nvidia", "cu13", "include")
        include_dirs = [os.path.abspath(nvidia_include)] if os.path.isdir(nvidia_include) else []
        return [CUDAExtension(
            "vidpool._C", sources + ["csrc/softpool_cuda.cu"], include_dirs=include_dirs,
            define_macros=[("VIDPOOL_WITH_CUDA", None)], extra_link_args=link,
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]})]
    return [CppExtension("vidpool._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link)]


def main():
    os.environ.setdefault("MAX_JOBS", "2")
    # torch.utils.cpp_extension reads CUDA_HOME when first imported: settle it before that.
    with_cuda = _want_cuda()
    from torch.utils.cpp_extension import BuildExtension

    setup(
        name="vidpool",
        version="0.1.0",
        description="Video action recognition with spatio-temporal SoftPool",
        packages=find_packages(include=["vidpool", "vidpool.*"]),
        package_data={"vidpool.data": ["classes/*.txt"]},  # official class lists
        python_requires=">=3.10",
        ext_modules=_extensions(with_cuda),
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    )


if __name__ == "__main__":
    main()
