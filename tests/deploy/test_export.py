"""Weights out: SoftPool's standard-operation form against the float64 brute force, exported files run
by their own runtimes against PyTorch, and torch.export / torch.compile of the models with the op."""
import os

import pytest
import torch

from vidpool.deploy.export import check_export, export_model, run_exported
from vidpool.models import create_model, list_models
from vidpool.ops import _reference
from vidpool.ops.softpool import adaptive_soft_pool3d, decomposed, soft_pool1d, soft_pool2d, soft_pool3d

POOLS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}
SAME_AXES = [(3, 2, 1, False), (3, 2, 1, True), (2, 2, 0, True), (3, 1, 1, False), (2, 3, 0, True)]
PER_AXIS = [((1, 3, 2), (1, 2, 2), (0, 1, 1), True), ((3, 2, 3), (2, 1, 3), (1, 1, 0), False)]


@pytest.mark.parametrize("dim,geometry", [(d, g) for d in (1, 2, 3) for g in SAME_AXES] + [(3, g) for g in PER_AXIS])
def test_decomposed_softpool_matches_the_float64_brute_force(dim, geometry):
    k, s, p, ceil = geometry
    g = torch.Generator().manual_seed(dim)
    x = torch.randn((2, 3) + (7, 9, 8)[:dim], generator=g) * 30  # far beyond exp's float range unshifted
    kk, ss, pp = ((v,) * dim if isinstance(v, int) else v for v in (k, s, p))
    expected = _reference.soft_pool(x.double(), kk, ss, pp, ceil)
    with decomposed():
        got = POOLS[dim](x, k, s, p, ceil)
        half = POOLS[dim](x.bfloat16(), k, s, p, ceil)
    assert got.shape == expected.shape and got.dtype == x.dtype
    assert (got.double() - expected).abs().max() <= 1e-6 * expected.abs().max()
    assert half.dtype == torch.bfloat16 and (half.double() - expected).abs().max() <= 0.02 * expected.abs().max()


def test_decomposed_global_softpool_and_adaptive_sizes():
    x = torch.randn(2, 4, 5, 6, 7) * 30
    for size in (1, (2, 3, 4), (7, 1, 9)):
        expected = _reference.adaptive_soft_pool(x.double(), (size,) * 3 if isinstance(size, int) else size)
        with decomposed():
            got = adaptive_soft_pool3d(x, size)
        assert (got.double() - expected).abs().max() <= 1e-6 * expected.abs().max()


def _no_vidpool_ops(fmt, path):
    if fmt == "onnx":
        import onnx

        return all(n.domain in ("", "ai.onnx") and "vidpool" not in n.op_type.lower()
                   for n in onnx.load(path).graph.node)
    if fmt == "torchscript":
        return not any(n.kind().startswith("vidpool::") for n in torch.jit.load(path).inlined_graph.nodes())
    return all("vidpool" not in str(n.target) for n in torch.export.load(path).graph.nodes)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,dynamic", [("onnx", "all"), ("exported", "all"), ("torchscript", "batch")])
def test_exported_softpool_model_runs_in_its_runtime_like_pytorch(tmp_path, fmt, dynamic):
    torch.manual_seed(0)
    model = create_model("r3d_10", 5, pool="softpool", head_pool="softpool", base_width=8).eval()
    path = export_model(model, torch.randn(2, 3, 16, 64, 64), fmt, str(tmp_path / f"m.{fmt}"), dynamic)
    assert _no_vidpool_ops(fmt, path)  # runs where vidpool is not installed
    shapes = [(2, 3, 16, 64, 64), (3, 3, 16, 64, 64)]
    if dynamic == "all":
        shapes += [(1, 3, 24, 96, 80), (1, 3, 8, 48, 64)]
    diff = check_export(model, path, fmt, shapes)
    assert diff["max_rel_diff"] <= 1e-4
    # the check itself sees a wrong file: another model's weights
    other = create_model("r3d_10", 5, pool="softpool", head_pool="softpool", base_width=8).eval()
    assert check_export(other, path, fmt, shapes[:1])["max_rel_diff"] > 1e-2


def test_the_op_check_sees_the_compiled_op_in_a_plain_trace(tmp_path):
    model = create_model("r3d_10", 5, pool="softpool", base_width=8).eval()
    path = str(tmp_path / "plain.ts")
    torch.jit.trace(model, torch.randn(2, 3, 8, 32, 32), check_trace=False).save(path)
    assert not _no_vidpool_ops("torchscript", path)


def test_i3d_with_tf_same_padding_exports_to_torchscript(tmp_path):
    model = create_model("i3d", 4, pool="softpool", tf_same=True).eval()
    path = export_model(model, torch.randn(2, 3, 9, 40, 40), "torchscript", str(tmp_path / "i3d.ts"), "batch")
    assert check_export(model, path, "torchscript", [(2, 3, 9, 40, 40), (1, 3, 9, 40, 40)])["max_rel_diff"] <= 1e-4


def test_export_errors_are_clear(tmp_path):
    model = create_model("r3d_10", 5, base_width=8)
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(model, torch.randn(2, 3, 8, 32, 32), "tflite", str(tmp_path / "m"))
    with pytest.raises(ValueError, match="TorchScript tracing fixes the clip shape"):
        export_model(model, torch.randn(2, 3, 8, 32, 32), "torchscript", str(tmp_path / "m"), "all")
    with pytest.raises(ValueError, match="example batch of at least 2"):
        export_model(model, torch.randn(1, 3, 8, 32, 32), "exported", str(tmp_path / "m"), "batch")


def test_export_tool_writes_and_checks_a_file(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("r2plus1d_10", 6, pool="softpool", base_width=8)
    weights = str(tmp_path / "w.pyth")
    torch.save({"model": model.state_dict()}, weights)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("MODEL:\n  ARCH: r2plus1d_10\n  POOL: softpool\n  NUM_CLASSES: 6\n  BASE_WIDTH: 8\n")
    out = str(tmp_path / "m.ts")
    from vidpool.cli import export as tool

    assert tool.main(["--cfg", str(cfg), "--weights", weights, "--format", "torchscript", "--out", out,
                      "--frames", "8", "--size", "48"]) == 0
    printed = capsys.readouterr().out
    assert "max |logit difference|" in printed and os.path.exists(out)
    x = torch.randn(3, 3, 8, 48, 48)
    with torch.no_grad():
        assert torch.allclose(run_exported(out, "torchscript", x), model.eval()(x), rtol=1e-4, atol=1e-5)
    assert tool.main(["--cfg", str(cfg), "--weights", str(tmp_path / "gone.pyth"), "--format", "onnx",
                      "--out", out]) == 2


def _families():
    """One model of each kind of code: (2+1)D blocks (the r3d ones differ only in the conv), the
    torchvision stem without a stem pool, Inception, SR blocks with their LSTM."""
    return ["r2plus1d_18", "r3d_18_tv", "i3d", "srtg_r3d_18"]


def _repeats(name):
    """Models whose code another model in the test already runs: the 101/152/200-layer networks repeat
    the 50-layer ones' blocks (r3d_101 stands for them), and the official SRTG networks of 34 and 50
    layers repeat the 18-layer ones' block code."""
    depth = next(int(t) for t in name.split("_") if t.isdigit()) if name != "i3d" else 0
    if name.endswith("_official"):
        return depth != 18
    return depth in (101, 152, 200) and name != "r3d_101"


@pytest.mark.slow
def test_every_registered_model_exports_with_the_softpool_op():
    """torch.export (no graph breaks possible) of every registered model with pool=softpool and a
    SoftPool head; the graph holds the compiled op itself, and the program computes the model's
    logits. Models that only repeat code another one runs are left out (``_repeats``;
    tools/check_export.py --format exported covers them all)."""
    x = torch.randn(2, 3, 8, 48, 48)
    for name in (n for n in list_models() if not _repeats(n)):
        narrow = name.startswith(("r3d_", "r2plus1d_", "srtg_")) and not name.endswith(("_tv", "_official"))
        model = create_model(name, 3, pool="softpool", head_pool="softpool", **({"base_width": 8} if narrow else {})).eval()
        program = torch.export.export(model, (x,), strict=False)
        ops = {str(n.target) for n in program.graph.nodes}
        assert "vidpool.adaptive_soft_pool.default" in ops, name
        assert ("vidpool.soft_pool.default" in ops) == (not name.endswith("_tv")), name  # _tv: no stem pool
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x), rtol=1e-4, atol=1e-5), name


@pytest.mark.slow
@pytest.mark.parametrize("name", _families())
def test_compile_fullgraph_forward_and_backward(name):
    """torch.compile with fullgraph=True (any graph break is an error), forward and backward through
    the compiled op, against eager."""
    kw = {"base_width": 8} if not name.endswith("_tv") and name != "i3d" else {}
    torch.manual_seed(0)
    model = create_model(name, 3, pool="softpool", head_pool="softpool", dropout=0.0, **kw).train()
    x = torch.randn(2, 3, 8, 48, 48)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    model.zero_grad()
    torch.manual_seed(1)
    eager_out = model(x)
    eager_out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    torch.manual_seed(1)
    out = compiled(x)
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.allclose(out, eager_out, rtol=1e-4, atol=1e-5)
    assert len(grads) == len(eager_grads)
    worst = max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-6)) for a, b in zip(grads, eager_grads))
    assert worst < 1e-3, worst


@pytest.mark.parametrize("fmt,dynamic,hide,named", [
    ("onnx", "batch", "DYNAMIC", "torch.export.Dim.DYNAMIC"),
    ("exported", "all", "DYNAMIC", "torch.export.Dim.DYNAMIC"),
    ("onnx", "none", "dynamo", "torch.onnx.export(dynamo=True)"),
    ("torchscript", "batch", "backed_size_oblivious", "backed_size_oblivious"),
])
def test_an_older_torch_is_told_what_export_needs(tmp_path, monkeypatch, fmt, dynamic, hide, named):
    """On a torch without a feature the exporter uses: one message naming it and the torch version,
    before anything is traced or written."""
    import re

    from vidpool.deploy import export as ex

    if hide == "DYNAMIC":
        monkeypatch.delattr(torch.export.Dim, "DYNAMIC")
    elif hide == "dynamo":
        monkeypatch.setattr(torch.onnx, "export", lambda model, args, f=None, verbose=False: None)
    else:
        monkeypatch.setattr(ex, "fx_config", type("OldConfig", (), {})())
    model = create_model("r3d_10", 3, base_width=8)
    out = tmp_path / "m.file"
    with pytest.raises(ex.ExportNeedsNewerTorch, match=re.escape(named)) as error:
        export_model(model, torch.randn(2, 3, 8, 32, 32), fmt, str(out), dynamic)
    assert torch.__version__ in str(error.value) and not out.exists()
