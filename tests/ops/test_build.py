"""How setup.py chooses what to build, and what the built extension reports it has.

The selection is exercised with fake toolkits: shell scripts named nvcc that print what a real
nvcc of some release prints, on PATH or under CUDA_HOME."""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup_py():
    spec = importlib.util.spec_from_file_location("vidpool_setup", REPO / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # main() only runs as a script
    return module


def _toolkit(root, release):
    """A fake CUDA toolkit at root whose bin/nvcc reports `release` and itself as TOP."""
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$1" in
          --version) echo "Cuda compilation tools, release {release}, V{release}.99";;
          --dryrun) echo "#$ TOP={root}/bin/.." >&2;;
        esac
        """))
    nvcc.chmod(0o755)
    return root


def test_matching_nvcc_on_path_is_used_with_its_own_toolkit(setup_py, tmp_path):
    kit = _toolkit(tmp_path / "cuda-13.0", "13.0")
    wrapper_dir = tmp_path / "wrappers"  # a wrapper script elsewhere on PATH, as module systems install
    wrapper_dir.mkdir()
    (wrapper_dir / "nvcc").write_text(f'#!/bin/sh\nexec {kit}/bin/nvcc "$@"\n')
    (wrapper_dir / "nvcc").chmod(0o755)
    got = setup_py.select_cuda({"PATH": f"{wrapper_dir}:/usr/bin:/bin"}, "13.0")
    assert got["build"] and got["home"] == str(kit) and got["release"] == "13.0"


def test_cuda_home_wins_over_path(setup_py, tmp_path):
    chosen = _toolkit(tmp_path / "chosen", "13.1")
    other = _toolkit(tmp_path / "other", "13.0")
    got = setup_py.select_cuda({"CUDA_HOME": str(chosen), "PATH": f"{other}/bin:/bin"}, "13.0")
    assert got["build"] and got["home"] == str(chosen) and got["release"] == "13.1"


def test_path_toolkit_is_not_replaced_by_usr_local_cuda(setup_py, tmp_path):
    kit = _toolkit(tmp_path / "user-kit", "13.0")
    got = setup_py.select_cuda({"PATH": f"{kit}/bin:/bin"}, "13.0")
    assert got["home"] == str(kit)


@pytest.mark.parametrize("env,torch_cuda,why", [
    ({"VIDPOOL_CUDA": "0"}, "13.0", "VIDPOOL_CUDA=0"),
    ({}, None, "CPU-only build"),
    ({"release": "12.4"}, "13.0", "nvcc 12.4"),
    ({"PATH": "/nonexistent"}, "13.0", "no nvcc"),
    ({"CUDA_HOME": "/nonexistent/cuda"}, "13.0", "has no bin/nvcc"),
])
def test_cpu_only_with_a_reason(setup_py, tmp_path, env, torch_cuda, why):
    kit = _toolkit(tmp_path / "kit", env.pop("release", "13.0"))
    environ = {"PATH": f"{kit}/bin:/bin", **env}
    nowhere = str(tmp_path / "no-default-toolkit")
    got = setup_py.select_cuda(environ, torch_cuda, fallback=nowhere)
    assert not got["build"] and why in got["reason"], got
    if env.get("VIDPOOL_CUDA") != "0":  # asking for CUDA turns the same reason into an error
        with pytest.raises(RuntimeError, match="VIDPOOL_CUDA=1 but the CUDA kernels cannot be built"):
            setup_py.select_cuda({**environ, "VIDPOOL_CUDA": "1"}, torch_cuda, fallback=nowhere)


def test_toolkit_headers_before_pip_headers(setup_py, tmp_path):
    torch_dir = tmp_path / "site" / "torch"
    pip_headers = tmp_path / "site" / "nvidia" / "cu13" / "include"
    torch_dir.mkdir(parents=True)
    pip_headers.mkdir(parents=True)
    dirs = setup_py.cuda_include_dirs("/opt/cuda-13.0", str(torch_dir), "13.0")
    assert dirs == ["/opt/cuda-13.0/include", str(pip_headers)]


def test_cpu_variants(setup_py):
    assert setup_py.cpu_variants({}, "x86_64") == ["default", "avx2", "avx512"]
    assert setup_py.cpu_variants({"VIDPOOL_CPU_ISA": "avx2"}, "x86_64") == ["default", "avx2"]
    assert setup_py.cpu_variants({}, "aarch64") == ["default"]
    with pytest.raises(RuntimeError, match="VIDPOOL_CPU_ISA"):
        setup_py.cpu_variants({"VIDPOOL_CPU_ISA": "sse9"}, "x86_64")


# --- what the built extension reports -----------------------------------------------------------

_C = pytest.importorskip("vidpool._C", reason="vidpool._C not built")


def test_backends_reported_by_the_extension_match_the_dispatcher():
    has_cuda = all(torch._C._dispatch_has_kernel_for_dispatch_key(f"vidpool::{name}", "CUDA")
                   for name in ("soft_pool", "soft_pool_backward", "adaptive_soft_pool",
                                "adaptive_soft_pool_backward"))
    assert ("cuda" in _C.backends()) == has_cuda == _C.cuda_compiled
    assert torch._C._dispatch_has_kernel_for_dispatch_key("vidpool::soft_pool", "CPU")
    decision = _C.build_info().get("cuda_build")
    if decision is not None:  # setup.py's decision and what was built agree
        assert decision["build"] == has_cuda, decision


def test_loaded_cpu_variant_follows_torch_capability():
    capability = torch.backends.cpu.get_cpu_capability().lower()
    expected = {"avx512": ("avx512",), "avx2": ("avx2",)}.get(capability, ("default",))
    assert _C.cpu_isa in expected


@pytest.mark.parametrize("level", ["default", "avx2"])
def test_lower_variant_is_loadable_and_correct(level):
    """A node without AVX2 (forced here through torch's own switch) loads the baseline variant."""
    if level == "avx2" and torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("this CPU has no AVX2")
    script = textwrap.dedent("""
        import torch, vidpool._C as c
        from vidpool import ops
        from tests.ops import brute
        x = torch.randn(2, 3, 5, 9, 21, dtype=torch.float64, requires_grad=True)
        y = ops.soft_pool3d(x, 3, 2, 1, True)
        ref = brute.soft_pool(x, (3, 3, 3), (2, 2, 2), 1, True)
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        g = torch.randn_like(y)
        torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(ref, x, g)[0])
        print(c.cpu_isa)
    """)
    env = dict(os.environ, ATEN_CPU_CAPABILITY=level)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == level


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump not installed")
def test_baseline_variant_has_no_avx_instructions():
    """What a node without AVX runs holds no AVX/AVX-512 register at all, and the AVX2 variant no
    AVX-512 one: a binary built on a new node cannot die with SIGILL on an older one."""
    import vidpool
    root = pathlib.Path(vidpool.__file__).parent
    for isa, banned in (("default", ("%ymm", "%zmm")), ("avx2", ("%zmm",))):
        (lib,) = root.glob(f"_kernels_{isa}.*.so")
        asm = subprocess.run(["objdump", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
        for reg in banned:
            assert reg not in asm, f"{lib.name} uses {reg}"


@pytest.mark.parametrize("failure", ["ImportError", "ModuleNotFoundError"])
def test_cuda_extension_that_does_not_load(failure):
    """A CUDA extension that was built but does not load (say libcudart missing on this node) is said
    out loud and kept in build_info(); one that was never built is no news."""
    script = textwrap.dedent(f"""
        import sys, warnings
        class Broken:
            def find_spec(self, name, path=None, target=None):
                if name == "vidpool._kernels_cuda":
                    raise {failure}("libcudart.so.13: cannot open shared object file")
        sys.meta_path.insert(0, Broken())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import vidpool._C as c
        print(c.backends(), c.build_info().get("cuda_load_error"), [str(w.message) for w in caught])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("['cpu'] ")
    if failure == "ImportError":
        assert "libcudart.so.13" in out.stdout.split("] ", 1)[1].split(" [", 1)[0]
        assert "built but do not load" in out.stdout
    else:
        assert out.stdout.strip() == "['cpu'] None []"
