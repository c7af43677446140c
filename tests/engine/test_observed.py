"""The engine observed from outside: the LR each optimizer step holds, the clips the model receives,
the bytes a failed checkpoint write leaves, the weights of a resumed run, the gradient the optimizer
sees. Every expected value is derived by hand in the test, never read back from what the engine logs."""
import math
import os

import pytest
import torch
import torch.nn.functional as F

from vidpool.config import load_cfg
from vidpool.engine import checkpoint as ckpt
from vidpool.engine import train
from vidpool.engine import trainer as trainer_module
from vidpool.engine.trainer import train_epoch
from vidpool.models import create_model

from .test_train import _stats, tiny_cfg

QUIET = ["TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0"]


class StepRecorder:
    """Patches SGD.step: before every step, the LR of each parameter group (with its lr_scale) and the
    total norm of the gradients the optimizer is about to apply."""

    def __init__(self, monkeypatch):
        self.lrs, self.scales, self.grad_norms = [], [], []
        original = torch.optim.SGD.step
        recorder = self

        def step(opt, *args, **kwargs):
            recorder.lrs.append([g["lr"] for g in opt.param_groups])
            recorder.scales.append([g.get("lr_scale", 1.0) for g in opt.param_groups])
            grads = [p.grad.detach().double().norm() for g in opt.param_groups for p in g["params"]
                     if p.grad is not None]
            recorder.grad_norms.append(float(torch.stack(grads).norm()))
            return original(opt, *args, **kwargs)

        monkeypatch.setattr(torch.optim.SGD, "step", step)


def watch_training_model(monkeypatch, hook) -> list:
    """Patches the engine's model builder: ``hook(model, inputs)`` runs before every call of each
    model the engine builds to train; returns the list those models are appended to."""
    built, build = [], trainer_module.build_training_model

    def wrapped(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(hook)
        built.append(model)
        return model

    monkeypatch.setattr(trainer_module, "build_training_model", wrapped)
    return built


class InputRecorder:
    """A forward pre-hook records (training?, input shape) of every call of the model the engine
    trains."""

    def __init__(self, monkeypatch):
        self.calls = []
        watch_training_model(monkeypatch, lambda m, args: self.calls.append((m.training, tuple(args[0].shape))))

    @property
    def training(self):
        return [shape for is_training, shape in self.calls if is_training]


# ------------------------------------------------------------------------------------------ LR
def _tiny_model():
    torch.manual_seed(0)
    return create_model("r3d_10", 3, base_width=4)


def _batches(n, seed=0, shape=(2, 3, 2, 16, 16)):
    g = torch.Generator().manual_seed(seed)
    return [{"clip": torch.randn(*shape, generator=g), "label": torch.randint(0, 3, shape[:1], generator=g),
             "skipped": []} for _ in range(n)]


def _run_epochs(cfg, epochs, iterations, backbone_scale=1.0):
    from vidpool.engine.optim import build_optimizer

    model = _tiny_model()
    opt = build_optimizer(model, cfg.SOLVER, backbone_scale)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for epoch in epochs:
        train_epoch(model, _batches(iterations, epoch), opt, scaler, cfg, epoch, torch.device("cpu"))
    return model, opt


def test_optimizer_holds_the_step_schedule_lr_every_iteration(monkeypatch):
    rec = StepRecorder(monkeypatch)
    cfg = load_cfg(None, ["SOLVER.BASE_LR", "0.1", "SOLVER.STEPS", "[0, 2, 3]", "SOLVER.LRS", "[1, 0.1, 0.01]",
                          "SOLVER.MAX_EPOCH", "4", "LOG_PERIOD", "0"])
    _run_epochs(cfg, range(4), 2)
    assert [lr for lrs in rec.lrs for lr in set(lrs)] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_optimizer_holds_warmup_then_cosine(monkeypatch):
    rec = StepRecorder(monkeypatch)
    cfg = load_cfg(None, ["SOLVER.LR_POLICY", "cosine", "SOLVER.BASE_LR", "0.1", "SOLVER.COSINE_END_LR", "0.0",
                          "SOLVER.MAX_EPOCH", "4", "SOLVER.WARMUP_EPOCHS", "1.0", "SOLVER.WARMUP_START_LR", "0.001",
                          "LOG_PERIOD", "0"])
    _run_epochs(cfg, [0, 2], 4)  # 4 iterations per epoch: fractional epochs 0, .25, .5, .75 and 2 .. 2.75
    end_of_warmup = 0.05 * (1 + math.cos(math.pi / 4))
    warm = [0.001 + (end_of_warmup - 0.001) * i / 4 for i in range(4)]
    cosine = [0.05 * (1 + math.cos(math.pi * (2 + i / 4) / 4)) for i in range(4)]
    assert [lrs[0] for lrs in rec.lrs] == pytest.approx(warm + cosine, rel=1e-9)


def test_backbone_groups_hold_the_scaled_lr(monkeypatch):
    rec = StepRecorder(monkeypatch)
    cfg = load_cfg(None, ["SOLVER.BASE_LR", "0.2", "SOLVER.STEPS", "[0, 1]", "SOLVER.LRS", "[1, 0.5]",
                          "LOG_PERIOD", "0"])
    model, opt = _run_epochs(cfg, [0, 1], 1, backbone_scale=0.1)
    head = {id(model.fc.weight), id(model.fc.bias)}
    is_head = [any(id(p) in head for p in g["params"]) for g in opt.param_groups]
    assert any(is_head) and not all(is_head)
    for lrs, base in zip(rec.lrs, (0.2, 0.1)):
        assert lrs == pytest.approx([base if h else base * 0.1 for h in is_head])


# -------------------------------------------------------------------------------- multigrid
def test_long_cycle_shapes_batches_and_lrs_reach_model_and_optimizer(synthetic_root, tmp_path, monkeypatch):
    """T=4, crop 32, batch 2, factors (0.5, 0.7071) and (1, 1), STEPS [0, 4], 5 epochs, EPOCH_FACTOR 1.
    By hand: shapes (2 frames, crop round(22.6) = 23) with batch factor round(4*32^2 / (2*23^2)) = 4, and
    (4, 32) with 1. Per 4-epoch step the phases get 4*4/5 = 3.2 and 0.8 epochs (equal iterations: 0.8
    each); fine-tuning 1 / (4/1.6) = 0.4 epochs; x 5/4.4: cumulative ends 3.64, 4.55, 5 -> 4, 5, 5.
    So epochs 1-4: batch 8 at (2, 23, 23), 26 // 8 = 3 steps each, LR 4 x 0.01; epoch 5: batch 2 at
    (4, 32, 32), 13 steps, LR 1 x 0.01."""
    shapes, steps = InputRecorder(monkeypatch), StepRecorder(monkeypatch)
    train(tiny_cfg(synthetic_root, tmp_path, *QUIET, "TRAIN.BATCH_SIZE", "2", "SOLVER.STEPS", "[0, 4]",
                   "SOLVER.LRS", "[1, 0.1]", "SOLVER.MAX_EPOCH", "5", "MULTIGRID.LONG_CYCLE", "True",
                   "MULTIGRID.EPOCH_FACTOR", "1.0", "MULTIGRID.LONG_CYCLE_FACTORS", "[[0.5, 0.7071], [1.0, 1.0]]"))
    assert shapes.training == [(8, 3, 2, 23, 23)] * 12 + [(2, 3, 4, 32, 32)] * 13
    assert [lrs[0] for lrs in steps.lrs] == pytest.approx([0.04] * 12 + [0.01] * 13)


def test_long_and_short_cycle_batches_reach_the_model(synthetic_root, tmp_path, monkeypatch):
    """The long cycle of the test above with the short cycle on. By hand: short crops 0.5 and 0.7071 of
    the default 32 = 16 and 23 (at most the current crop). Shape (2, 23), long factor 4: crops 16, 23,
    23 with factors 4 x round((23/16)^2) = 8, 4, 4 (mean 5.33); shape (4, 32): crops 16, 23, 32 with
    4, 2, 1 (mean 2.33). Per 4-epoch step 4 x 5.33/7.67 = 2.78 and 1.22 epochs (0.52 iterations-units
    each); fine-tuning 1 / (4/1.04) x 2.33 = 0.61; x 5/4.61: cumulative 3.02, 4.34, 5 -> 3, 4, 5.
    Batches (26 clips, a batch that does not fit ends the epoch): epochs 1-3 16 + 8 at LR 4 x 0.01;
    epoch 4 8, 4, 2, 8, 4 at 0.01; epoch 5 (second half of fine-tuning) the same at 0.001. Each
    iteration's batch x frames x crop^2 stays within rounding of the default 2 x 4 x 32^2."""
    shapes, steps = InputRecorder(monkeypatch), StepRecorder(monkeypatch)
    train(tiny_cfg(synthetic_root, tmp_path, *QUIET, "TRAIN.BATCH_SIZE", "2", "SOLVER.STEPS", "[0, 4]",
                   "SOLVER.LRS", "[1, 0.1]", "SOLVER.MAX_EPOCH", "5", "MULTIGRID.LONG_CYCLE", "True",
                   "MULTIGRID.SHORT_CYCLE", "True", "MULTIGRID.EPOCH_FACTOR", "1.0",
                   "MULTIGRID.LONG_CYCLE_FACTORS", "[[0.5, 0.7071], [1.0, 1.0]]"))
    small = [(16, 3, 2, 16, 16), (8, 3, 2, 23, 23)]
    full = [(8, 3, 4, 16, 16), (4, 3, 4, 23, 23), (2, 3, 4, 32, 32), (8, 3, 4, 16, 16), (4, 3, 4, 23, 23)]
    assert shapes.training == small * 3 + full * 2
    assert [lrs[0] for lrs in steps.lrs] == pytest.approx([0.04] * 6 + [0.01] * 5 + [0.001] * 5)
    for n, _, t, h, w in shapes.training:
        assert 0.75 < n * t * h * w / (2 * 4 * 32 * 32) < 1.25


def test_short_cycle_crops_and_batches_reach_the_model(synthetic_root, tmp_path, monkeypatch):
    """Crop 32, batch 2: the short cycle visits crop 16 with 4x the batch (8), crop round(0.7071*32) =
    23 with round((32/23)^2) = 2x (4), then 32 with 2; 26 clips, last partial batch dropped:
    8, 4, 2, 8, 4."""
    shapes = InputRecorder(monkeypatch)
    train(tiny_cfg(synthetic_root, tmp_path, *QUIET, "TRAIN.BATCH_SIZE", "2", "SOLVER.MAX_EPOCH", "1",
                   "SOLVER.STEPS", "[0]", "SOLVER.LRS", "[1]", "MULTIGRID.SHORT_CYCLE", "True"))
    assert shapes.training == [(8, 3, 4, 16, 16), (4, 3, 4, 23, 23), (2, 3, 4, 32, 32),
                               (8, 3, 4, 16, 16), (4, 3, 4, 23, 23)]


# ------------------------------------------------------------------------------ checkpoints
def _failing_save(monkeypatch, fail_from_call=1):
    """torch.save that writes 100 bytes and then fails (a full disk), from the given call on."""
    original, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) < fail_from_call:
            return original(obj, f, *args, **kwargs)
        handle = open(f, "wb") if isinstance(f, (str, os.PathLike)) else f
        handle.write(b"\x80" * 100)
        handle.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save)
    return calls


def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    out = str(tmp_path)
    first, second = ckpt.checkpoint_path(out, 1), ckpt.checkpoint_path(out, 2)
    ckpt.save_checkpoint(first, {"epoch": 1, "model": {"w": torch.ones(3)}})
    ckpt.save_checkpoint(second, {"epoch": 2, "model": {"w": torch.full((3,), 2.0)}})
    before = {p: open(p, "rb").read() for p in (first, second)}
    _failing_save(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(second, {"epoch": 2, "model": {"w": torch.zeros(3)}})  # overwrite fails
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(ckpt.checkpoint_path(out, 3), {"epoch": 3, "model": {}})
    assert sorted(os.listdir(ckpt.checkpoint_dir(out))) == ["checkpoint_epoch_00001.pyth",
                                                             "checkpoint_epoch_00002.pyth"]
    assert {p: open(p, "rb").read() for p in (first, second)} == before


def test_run_whose_checkpoint_write_fails_resumes_from_the_last_good_one(synthetic_root, tmp_path, monkeypatch):
    cfg = tiny_cfg(synthetic_root, tmp_path, *QUIET)
    calls = _failing_save(monkeypatch, fail_from_call=2)  # epoch 1 saves, epoch 2 fails
    with pytest.raises(OSError, match="No space"):
        train(cfg)
    assert len(calls) == 2
    assert os.listdir(ckpt.checkpoint_dir(str(tmp_path))) == ["checkpoint_epoch_00001.pyth"]
    assert ckpt.load_checkpoint(ckpt.checkpoint_path(str(tmp_path), 1))["epoch"] == 1
    monkeypatch.undo()
    shapes = InputRecorder(monkeypatch)
    train(cfg)
    assert len(shapes.training) == 26 // 4  # only epoch 2 trained again
    assert ckpt.load_checkpoint(ckpt.checkpoint_path(str(tmp_path), 2))["epoch"] == 2


def test_checkpoint_period_and_auto_resume_off(synthetic_root, tmp_path):
    extra = QUIET + ["SOLVER.MAX_EPOCH", "3", "SOLVER.STEPS", "[0]", "SOLVER.LRS", "[1]"]
    train(tiny_cfg(synthetic_root, tmp_path / "period", *extra, "TRAIN.CHECKPOINT_PERIOD", "2"))
    assert sorted(os.listdir(tmp_path / "period" / "checkpoints")) == ["checkpoint_epoch_00002.pyth",
                                                                      "checkpoint_epoch_00003.pyth"]
    # AUTO_RESUME False in a folder holding a later checkpoint: trains from scratch, as in a fresh folder
    fresh = tmp_path / "fresh"
    train(tiny_cfg(synthetic_root, fresh, *extra, "SOLVER.MAX_EPOCH", "1"))
    again = tmp_path / "again"
    os.makedirs(again / "checkpoints")
    os.link(tmp_path / "period" / "checkpoints" / "checkpoint_epoch_00002.pyth",
            again / "checkpoints" / "checkpoint_epoch_00002.pyth")
    train(tiny_cfg(synthetic_root, again, *extra, "SOLVER.MAX_EPOCH", "1", "TRAIN.AUTO_RESUME", "False"))
    a = ckpt.load_checkpoint(str(fresh / "checkpoints" / "checkpoint_epoch_00001.pyth"))["model"]
    b = ckpt.load_checkpoint(str(again / "checkpoints" / "checkpoint_epoch_00001.pyth"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- loss and grads
def test_clip_grad_norm_is_what_the_optimizer_applies(monkeypatch):
    rec = StepRecorder(monkeypatch)
    cfg = load_cfg(None, ["TRAIN.CLIP_GRAD_NORM", "0.001", "LOG_PERIOD", "0"])
    _run_epochs(cfg, [0], 3)
    assert rec.grad_norms == pytest.approx([0.001] * 3, rel=1e-4)
    rec.grad_norms.clear()
    _run_epochs(load_cfg(None, ["LOG_PERIOD", "0"]), [0], 3)
    assert min(rec.grad_norms) > 0.01  # unclipped, the same batches have far larger gradients


def test_label_smoothing_loss_by_hand(monkeypatch):
    """The gradient reaching the logits equals that of the smoothed cross-entropy written out:
    (softmax - ((1 - e) onehot + e / K)) / B; the reported loss is the formula's value."""
    eps, seen = 0.2, []
    model = _tiny_model()

    def keep_logits_and_their_gradient(module, args, out):
        seen.append(out)
        out.register_hook(lambda g: seen.append(g.detach().clone()))

    model.fc.register_forward_hook(keep_logits_and_their_gradient)
    cfg = load_cfg(None, ["TRAIN.LABEL_SMOOTHING", str(eps), "LOG_PERIOD", "0", "SOLVER.BASE_LR", "0.0"])
    batch = _batches(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    stats = train_epoch(model, batch, opt, torch.amp.GradScaler("cpu", enabled=False), cfg, 0, torch.device("cpu"))
    logits, grad = seen[0].detach().double(), seen[1].double()
    y = batch[0]["label"]
    target = (1 - eps) * F.one_hot(y, 3).double() + eps / 3
    torch.testing.assert_close(grad, (logits.softmax(1) - target) / len(y))
    by_hand = -(target * logits.log_softmax(1)).sum(1).mean()
    assert stats["loss"] == pytest.approx(float(by_hand), rel=1e-5)


def test_precise_bn_statistics_by_hand(synthetic_root, tmp_path, monkeypatch):
    """The running statistics after training are the mean and the (population) variance of every value
    each BatchNorm received over the precise-BN batches, recorded at its input."""
    import fvcore.nn.precise_bn as precise_bn

    inputs = {}
    original = precise_bn.update_bn_stats

    def recording(model, data, num_iters=200, **kw):
        hooks = [m.register_forward_pre_hook(lambda m, a, name=name: inputs.setdefault(name, []).append(
            a[0].detach().double())) for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm3d)]
        try:
            return original(model, data, num_iters, **kw)
        finally:
            for h in hooks:
                h.remove()

    monkeypatch.setattr(precise_bn, "update_bn_stats", recording)
    train(tiny_cfg(synthetic_root, tmp_path, *QUIET, "SOLVER.MAX_EPOCH", "1", "TRAIN.PRECISE_BN", "True",
                   "TRAIN.PRECISE_BN_BATCHES", "3"))
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(str(tmp_path), 1))["model"]
    assert inputs and all(len(v) == 3 for v in inputs.values())
    for name, xs in inputs.items():
        everything = torch.cat(xs)
        means, variances = everything.mean((0, 2, 3, 4)), everything.var((0, 2, 3, 4), unbiased=False)
        torch.testing.assert_close(state[name + ".running_mean"].double(), means, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(state[name + ".running_var"].double(), variances, rtol=1e-4, atol=1e-5)


def test_mixed_precision_losses_follow_fp32():
    """bf16 autocast on CPU trains like fp32 over a few steps: the same batches from the same weights
    give per-step losses within bf16 accuracy, computed by a model that really ran in bf16. (Clips
    large enough that no BatchNorm normalises a handful of values, where bf16 rounding is amplified.)"""
    from vidpool.engine.optim import build_optimizer

    losses, dtypes = {}, []
    batches = _batches(3, shape=(8, 3, 8, 48, 48))
    for amp in (False, True):
        cfg = load_cfg(None, ["TRAIN.MIXED_PRECISION", str(amp), "LOG_PERIOD", "0", "SOLVER.BASE_LR", "0.01"])
        torch.manual_seed(0)
        model = create_model("r3d_10", 3, base_width=8)
        model.fc.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
        opt = build_optimizer(model, cfg.SOLVER)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        losses[amp] = [train_epoch(model, [b], opt, scaler, cfg, 0, torch.device("cpu"))["loss"] for b in batches]
    assert dtypes == [torch.float32] * 3 + [torch.bfloat16] * 3
    assert losses[True] == pytest.approx(losses[False], rel=0.02)
    assert losses[True] != losses[False]


@pytest.mark.parametrize("name,dtype", [("auto", torch.bfloat16), ("bfloat16", torch.bfloat16),
                                        ("float16", torch.float16)])
def test_mixed_precision_dtype_is_what_the_model_runs_in(name, dtype):
    """TRAIN.MIXED_PRECISION_DTYPE is the dtype the classifier's output has during a training step
    (auto = bf16 on CPU), and only fp16 gets a gradient scaler."""
    from vidpool.engine.optim import build_optimizer
    from vidpool.engine.trainer import grad_scaler

    cfg = load_cfg(None, ["TRAIN.MIXED_PRECISION", "True", "TRAIN.MIXED_PRECISION_DTYPE", name, "LOG_PERIOD", "0"])
    torch.manual_seed(0)
    model = create_model("r3d_10", 3, base_width=4)
    seen = []
    model.fc.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    scaler = grad_scaler(cfg, torch.device("cpu"))
    assert scaler.is_enabled() == (dtype == torch.float16)
    train_epoch(model, _batches(1, shape=(2, 3, 4, 16, 16)), build_optimizer(model, cfg.SOLVER), scaler, cfg, 0,
                torch.device("cpu"))
    assert seen == [dtype]


def test_iteration_records_follow_the_steps(synthetic_root, tmp_path, monkeypatch):
    """Every LOG_PERIOD steps a record with the mean loss of those steps and the LR the optimizer held;
    their losses average to the epoch's loss (13 equal batches); TensorBoard gets them by step."""
    steps = StepRecorder(monkeypatch)
    train(tiny_cfg(synthetic_root, tmp_path, *QUIET, "TRAIN.BATCH_SIZE", "2", "LOG_PERIOD", "5",
                   "TENSORBOARD.ENABLE", "True"))
    records = _stats(tmp_path, "iteration")
    assert [(r["epoch"], r["iteration"], r["step"]) for r in records] == [
        (1, 5, 5), (1, 10, 10), (1, 13, 13), (2, 5, 18), (2, 10, 23), (2, 13, 26)]
    held = [lrs[0] for lrs in steps.lrs]
    assert [r["lr"] for r in records] == pytest.approx([held[r["step"] - 1] for r in records])
    for epoch, record in zip((1, 2), _stats(tmp_path)):
        mine = [r for r in records if r["epoch"] == epoch]
        assert (5 * mine[0]["loss"] + 5 * mine[1]["loss"] + 3 * mine[2]["loss"]) / 13 == pytest.approx(
            record["train_loss"], rel=1e-9)
        assert all(r["data_time_s"] >= 0 and r["step_time_s"] > 0 and r["clips_per_s"] > 0 for r in mine)
    assert records[2]["eta_s"] == 0 and records[0]["eta_s"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "runs" / "iterations"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [5, 10, 13, 18, 23, 26]


# ------------------------------------------------------------------------------------------ layout
def test_channels_last_reaches_the_model_and_trains_as_the_contiguous_layout(synthetic_root, tmp_path, monkeypatch):
    """MODEL.CHANNELS_LAST: every clip the model receives (training, validation, test) and every
    convolution weight it holds is channels_last_3d, and a one-step epoch ends at the weights and test
    predictions of the same run in the default layout (same seed, same batch). One step only: a few
    steps of this tiny batch-norm network amplify float32 rounding chaotically (two float32 runs
    differ from a float64 one by 1e-5 after two steps, 4e-3 after three, in either layout)."""
    from vidpool.engine import tester as tester_module
    from vidpool.engine.tester import test as run_test
    from vidpool.models import build_model

    seen = {}  # MODEL.CHANNELS_LAST -> (mode, input in layout?, all conv weights in layout?) per call

    def hooked(cfg):
        model = build_model(cfg)
        fmt = torch.channels_last_3d if cfg.MODEL.CHANNELS_LAST else torch.contiguous_format
        calls = seen.setdefault(cfg.MODEL.CHANNELS_LAST, [])
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
        model.register_forward_pre_hook(lambda m, args: calls.append((
            "train" if m.training else "eval", args[0].is_contiguous(memory_format=fmt),
            bool(convs) and all(c.weight.is_contiguous(memory_format=fmt) for c in convs))))
        return model

    monkeypatch.setattr(trainer_module, "build_model", hooked)
    monkeypatch.setattr(tester_module, "build_model", hooked)
    for layout in ("False", "True"):
        cfg = tiny_cfg(synthetic_root, tmp_path / layout, "SOLVER.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "26",
                       "TRAIN.EVAL_PERIOD", "1", "TENSORBOARD.ENABLE", "False", "MODEL.CHANNELS_LAST", layout)
        train(cfg)
        n = len(seen[cfg.MODEL.CHANNELS_LAST])
        run_test(cfg)  # a new model from the checkpoint, as vidpool test builds it
        assert len(seen[cfg.MODEL.CHANNELS_LAST]) > n
    for channels_last, calls in seen.items():
        assert {mode for mode, _, _ in calls} == {"train", "eval"}
        assert all(ok_input and ok_weights for _, ok_input, ok_weights in calls), (channels_last, calls)
    states = [ckpt.load_checkpoint(str(tmp_path / layout / "checkpoints/checkpoint_epoch_00001.pyth"))["model"]
              for layout in ("False", "True")]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        torch.testing.assert_close(states[1][key].contiguous(), states[0][key], rtol=1e-4, atol=1e-5, msg=key)
    predictions = [open(tmp_path / layout / "predictions.csv").read().splitlines() for layout in ("False", "True")]
    same = sum(a.split(",")[2] == b.split(",")[2] for a, b in zip(*predictions))
    assert len(predictions[0]) == len(predictions[1]) and same >= len(predictions[0]) - 1
