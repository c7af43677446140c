"""SoftPool API: modules, errors, torch.library integration (opcheck, torch.compile), backends."""
import pathlib
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from vidpool import ops

needs_c = pytest.mark.skipif(ops.backend("cpu") != "cpp", reason="vidpool._C not built")


@pytest.mark.parametrize("cls,torch_cls,dim", [
    (ops.SoftPool1d, nn.MaxPool1d, 1), (ops.SoftPool2d, nn.MaxPool2d, 2), (ops.SoftPool3d, nn.MaxPool3d, 3)])
def test_modules_mirror_max_pool(cls, torch_cls, dim):
    m, ref = cls(3, 2, 1, ceil_mode=True), torch_cls(3, 2, 1, ceil_mode=True)
    assert m.extra_repr() == ref.extra_repr().replace(", dilation=1", "")
    assert cls(2).stride == 2
    x = torch.randn((2, 3) + (9, 8, 7)[:dim])
    assert m(x).shape == ref(x).shape
    assert list(m.parameters()) == []


def test_adaptive_module():
    m = ops.AdaptiveSoftPool3d((1, 2, 2))
    assert m.extra_repr() == "output_size=(1, 2, 2)"
    assert m(torch.randn(2, 3, 4, 5, 6)).shape == (2, 3, 1, 2, 2)


@pytest.mark.parametrize("call,match", [
    (lambda: ops.soft_pool3d(torch.randn(3, 4, 4), 2), "4-d \\(C, ...\\) or 5-d.*got 3-d"),
    (lambda: ops.soft_pool2d(torch.randn(5), 2), "got 1-d input"),
    (lambda: ops.soft_pool3d(torch.ones(1, 1, 4, 4, 4, dtype=torch.int64), 2), "floating point.*torch.int64"),
    (lambda: ops.soft_pool3d(torch.ones(1, 1, 4, 4, 4, dtype=torch.bool), 2), "floating point.*torch.bool"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 4, 4, 4), 0), "kernel_size must be positive"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 4, 4, 4), (2, -1, 2)), "kernel_size must be positive.*-1"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 4, 4, 4), 2, 0), "stride must be positive"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 4, 4, 4), 2, 2, -1), "padding must be >= 0"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 4, 4, 4), 3, 1, 2), "padding=\\(2, 2, 2\\).*kernel_size=\\(3, 3, 3\\)"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 4, 2, 4), 3), "too small.*axis 1"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 4, 4, 4), (2, 2)), "kernel_size must be an int or a tuple of 3"),
    (lambda: ops.soft_pool2d(torch.randn(1, 1, 4, 4), 2, (1, 1, 1)), "stride must be an int or a tuple of 2"),
    (lambda: ops.soft_pool1d(torch.randn(1, 1, 4), 2.5), "kernel_size must be an int"),
    (lambda: ops.soft_pool3d(torch.randn(1, 1, 0, 4, 4), 2), "empty spatial axis"),
    (lambda: ops.adaptive_soft_pool3d(torch.randn(1, 1, 4, 4, 4), (0, 1, 1)), "output_size must be positive"),
    (lambda: ops.SoftPool3d(2, padding=5), "padding must be"),
    (lambda: ops.soft_pool3d([1, 2, 3], 2), "must be a torch.Tensor"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@needs_c
@pytest.mark.parametrize("args", [
    ([2, 2], [2, 2, 2], [0, 0, 0], False),      # mismatched lengths
    ([2, 2, 2], [2, 2, 2], [2, 0, 0], False),    # padding > kernel / 2
    ([0, 2, 2], [2, 2, 2], [0, 0, 0], False),
    ([9, 2, 2], [1, 1, 1], [0, 0, 0], False),    # output < 1
])
def test_raw_op_checks_arguments(args):
    with pytest.raises(ValueError, match="soft_pool"):
        torch.ops.vidpool.soft_pool(torch.randn(1, 1, 4, 4, 4), *args)


@needs_c
def test_raw_backward_checks_shapes():
    x = torch.randn(1, 1, 4, 4, 4)
    y = torch.ops.vidpool.soft_pool(x, [2] * 3, [2] * 3, [0] * 3, False)
    with pytest.raises(ValueError, match="must have shape"):
        torch.ops.vidpool.soft_pool_backward(torch.randn(1, 1, 3, 2, 2), x, y, [2] * 3, [2] * 3, [0] * 3, False)


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(dtype):
    x = torch.randn(2, 3, 5, 6, 7, dtype=dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.vidpool.soft_pool.default, (x, [3, 2, 2], [2, 1, 2], [1, 0, 1], True))
    torch.library.opcheck(torch.ops.vidpool.soft_pool.default, (x, [2, 2, 2], [2, 2, 2], [0, 0, 0], False))
    torch.library.opcheck(torch.ops.vidpool.adaptive_soft_pool.default, (x, [2, 3, 4]))
    xcl = x.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    torch.library.opcheck(torch.ops.vidpool.soft_pool.default, (xcl, [2, 2, 2], [2, 2, 2], [0, 0, 0], False))
    y = torch.ops.vidpool.soft_pool(x.detach(), [2, 2, 2], [2, 2, 2], [0, 0, 0], False)
    torch.library.opcheck(torch.ops.vidpool.soft_pool_backward.default,
                          (torch.randn_like(y), x.detach(), y, [2, 2, 2], [2, 2, 2], [0, 0, 0], False))


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_fused_zoo_ops(dtype):
    """The zoo's fused Lp, DPP lite and gated ops: schema and fake kernels (torch.compile), any layout."""
    x = torch.randn(2, 3, 5, 6, 7, dtype=dtype)
    alpha, lam = torch.rand(3, dtype=dtype) + 0.1, torch.rand(3, dtype=dtype) + 0.5
    for xi in (x, x.contiguous(memory_format=torch.channels_last_3d)):
        args = ([3, 2, 2], [2, 1, 2], [1, 0, 1], True, False, 1e-3)
        torch.library.opcheck(torch.ops.vidpool.dpp_pool.default, (xi, alpha, lam) + args)
        y = torch.ops.vidpool.dpp_pool(xi, alpha, lam, *args)
        torch.library.opcheck(torch.ops.vidpool.dpp_pool_backward.default,
                              (torch.randn_like(y), xi, alpha, lam) + args)
        p = torch.tensor([1.0, 2.5, 4.0], dtype=dtype)
        torch.library.opcheck(torch.ops.vidpool.lp_pool.default, (xi, p, [3, 2, 2], [2, 1, 2], [1, 0, 1], True))
        y = torch.ops.vidpool.lp_pool(xi, p, [3, 2, 2], [2, 1, 2], [1, 0, 1], True)
        torch.library.opcheck(torch.ops.vidpool.lp_pool_backward.default,
                              (torch.randn_like(y), xi, p, [3, 2, 2], [2, 1, 2], [1, 0, 1], True))
        mask = torch.randn(3, 12, dtype=dtype)
        geometry = ([3, 2, 2], [2, 1, 2], [1, 0, 1], True)
        torch.library.opcheck(torch.ops.vidpool.gated_pool.default, (xi, mask) + geometry)
        y = torch.ops.vidpool.gated_pool(xi, mask, *geometry)
        torch.library.opcheck(torch.ops.vidpool.gated_pool_backward.default, (torch.randn_like(y), xi, mask) + geometry)


@needs_c
def test_torch_compile_fullgraph_without_graph_breaks():
    model = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), ops.SoftPool3d(3, 2, 1), nn.ReLU(),
                          ops.AdaptiveSoftPool3d(1), nn.Flatten())
    x = torch.randn(2, 3, 4, 9, 9, requires_grad=True)
    expected = model(x)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, expected)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_backend_names():
    assert ops.backend("cpu") in ("cpp", "reference")
    # meta tensors go through the compiled op's registered fake kernels: shapes only, no data
    assert ops.backend(torch.device("meta")) == ops.backend("cpu")
    x = torch.empty(2, 3, 9, 16, 17, device="meta")
    assert ops.soft_pool3d(x, 3, 2, 1).shape == (2, 3, 5, 8, 9)
    assert ops.adaptive_soft_pool3d(x, (1, 2, 3)).shape == (2, 3, 1, 2, 3)


def test_fallback_without_extension_warns_once_and_is_correct():
    script = textwrap.dedent("""
        import sys, warnings
        sys.modules["vidpool._C"] = None  # as if the extension had not been built
        import torch
        from vidpool import ops
        from tests.ops import brute
        assert ops.backend("cpu") == "reference", ops.backend("cpu")
        x = torch.randn(2, 3, 5, 7, 6, dtype=torch.float64, requires_grad=True)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            y = ops.soft_pool3d(x, 3, 2, 1, True)
            ops.soft_pool3d(x, 2)
        assert len([m for m in w if "reference" in str(m.message)]) == 1, [str(m.message) for m in w]
        torch.testing.assert_close(y, brute.soft_pool(x, (3, 3, 3), (2, 2, 2), 1, True))
        assert torch.autograd.gradcheck(lambda t: ops.soft_pool3d(t, 3, 2, 1), (x[:1, :1],))
        print("ok")
    """)
    repo = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=repo)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_autograd_runs_in_cpp_and_matches_the_reference():
    """The forward ops' gradient node is the C++ autograd Function registered with the op (not a
    Python one), for the direct call path and for the module, and its gradient is the float64
    reference's (torch autograd through the pure-PyTorch formula)."""
    from vidpool.ops import _reference

    x = torch.randn(2, 3, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    for y in (ops.soft_pool3d(x, 3, 2, 1), ops.SoftPool3d(2)(x), ops.adaptive_soft_pool3d(x, (2, 3, 2))):
        assert y.grad_fn.name().startswith("torch::autograd::CppNode<vidpool::"), y.grad_fn.name()
    g = torch.randn_like(ops.soft_pool3d(x, 3, 2, 1))
    (got,) = torch.autograd.grad(ops.soft_pool3d(x, 3, 2, 1), x, g)
    (want,) = torch.autograd.grad(_reference.soft_pool(x, (3, 3, 3), (2, 2, 2), (1, 1, 1), False), x, g)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_dispatch_benchmark_reports_both_pools():
    done = subprocess.run([sys.executable, str(pathlib.Path(__file__).parents[2] / "tools" / "benchmark_pooling.py"),
                           "--dispatch", "--threads", "1", "--repeats", "3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    for name, form in (("SoftPool3d module", "module"), ("MaxPool3d module", "module"),
                       ("soft_pool3d function", "function"), ("max_pool3d function", "function")):
        assert any(line.strip().startswith(name) and line.rstrip().endswith(f"x max pooling's {form})")
                   for line in lines), name
    assert "tiny fwd+bwd host time <= 1.5x max pooling's (module and function)" in lines[-1]


@pytest.mark.parametrize("pool", [lambda x: ops.soft_pool3d(x, 2), lambda x: ops.adaptive_soft_pool3d(x, 1)],
                         ids=["soft_pool3d", "adaptive_soft_pool3d"])
def test_a_plain_backward_stays_in_cpp(pool):
    """The backward of a plain .backward() calls the backward kernel without entering Python (the
    backward op's own autograd is registered from Python); a create_graph backward goes through it,
    which is what makes it differentiable. Observed with a profile hook on Python calls."""
    import os

    import torch._library
    import vidpool

    # the backward op's Python autograd (torch._library) and vidpool's own code; by directory, since a
    # checkout named vidpool may hold the environment (and so torch) too
    watched = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch._library, vidpool))

    def python_calls(create_graph):
        x = torch.randn(1, 2, 4, 4, 4, dtype=torch.float64, requires_grad=True)
        y = pool(x).sum()
        seen = []

        def hook(frame, event, arg):
            if event == "call" and frame.f_code.co_filename.startswith(watched):
                seen.append(frame.f_code.co_name)

        sys.setprofile(hook)
        try:
            (g,) = torch.autograd.grad(y, x, create_graph=create_graph)
        finally:
            sys.setprofile(None)
        return seen, g

    plain, g = python_calls(False)
    graph, g2 = python_calls(True)
    assert plain == [] and g.grad_fn is None
    assert graph and g2.grad_fn is not None  # the probe sees the Python autograd when it runs
