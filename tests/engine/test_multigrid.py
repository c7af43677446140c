"""Multigrid schedules against schedules derived by hand from the rules of Wu et al. / PySlowFast:
per LR step, each long-cycle shape gets epochs in proportion to its mean batch factor; the
fine-tuning phase saves iterations at the same rate; everything is stretched to EPOCH_FACTOR x
MAX_EPOCH and the cumulative ends are rounded."""
import pytest
import torch

from vidpool.config import load_cfg
from vidpool.data import ClipShape
from vidpool.engine.multigrid import epoch_shape, long_cycle_schedule, multigrid_solver, shape_at, short_cycle
from vidpool.engine.optim import lr_at

PAPER = ["DATA.NUM_FRAMES", "16", "DATA.TRAIN_CROP_SIZE", "224", "SOLVER.LR_POLICY", "steps_with_relative_lrs",
         "SOLVER.STEPS", "[0, 40, 80]", "SOLVER.LRS", "[1, 0.1, 0.01]", "SOLVER.MAX_EPOCH", "100",
         "SOLVER.BASE_LR", "0.1", "SOLVER.WARMUP_EPOCHS", "0.0"]


def test_paper_long_cycle_without_short_cycle():
    # shapes (T, S) = (4, 158), (8, 158), (8, 224), (16, 224): batch factors 16*224^2/(T*S^2) rounded = 8, 4, 2, 1;
    # per 40-epoch step 40*8/15, 40*4/15, 40*2/15, 40/15 epochs (2.667 iterations-units each, 10.667 per step);
    # saving 80/21.333 = 3.75, fine-tuning 20/3.75 = 5.333 epochs; total 85.333 stretched to 150 (x1.7578):
    # cumulative 37.5, 56.25, 65.63, 70.31, 107.81, 126.56, 135.94, 140.63, 150.
    cfg = load_cfg(None, PAPER + ["MULTIGRID.LONG_CYCLE", "True"])
    assert long_cycle_schedule(cfg) == [
        (0, (8, 4, 158), 38), (0, (4, 8, 158), 56), (0, (2, 8, 224), 66), (0, (1, 16, 224), 70),
        (1, (8, 4, 158), 108), (1, (4, 8, 158), 127), (1, (2, 8, 224), 136), (1, (1, 16, 224), 141),
        (2, (1, 16, 224), 150)]  # PySlowFast raises IndexError here (the fine-tuning shape)
    solver = multigrid_solver(cfg)
    assert list(solver.STEPS) == [0, 38, 56, 66, 70, 108, 127, 136, 141, 145]
    assert list(solver.LRS) == pytest.approx([8, 4, 2, 1, 0.8, 0.4, 0.2, 0.1, 0.1, 0.01])
    assert solver.MAX_EPOCH == 150
    assert lr_at(solver, 0) == pytest.approx(0.8) and lr_at(solver, 142) == pytest.approx(0.01)
    assert lr_at(solver, 144) == pytest.approx(0.01) and lr_at(solver, 145) == pytest.approx(0.001)
    assert cfg.SOLVER.MAX_EPOCH == 100 and list(cfg.SOLVER.STEPS) == [0, 40, 80]  # the config is untouched


def test_paper_long_and_short_cycle():
    # with the short cycle each long cycle also visits crops 112 and 158.39 (0.5 and 0.707 of 224):
    # mean batch factors (16+8+8)/3, (8+4+4)/3, (8+4+2)/3, (4+2+1)/3 = 10.67, 5.33, 4.67, 2.33 (sum 23);
    # per step 18.55, 9.28, 8.12, 4.06 epochs; saving 5.75; fine-tuning 8.12; x 150/88.12:
    # cumulative 31.58, 47.37, 61.18, 68.09, 99.67, 115.46, 129.28, 136.18, 150.
    cfg = load_cfg(None, PAPER + ["MULTIGRID.LONG_CYCLE", "True", "MULTIGRID.SHORT_CYCLE", "True"])
    assert [(s, shape, e) for s, shape, e in long_cycle_schedule(cfg)] == [
        (0, (8, 4, 158), 32), (0, (4, 8, 158), 47), (0, (2, 8, 224), 61), (0, (1, 16, 224), 68),
        (1, (8, 4, 158), 100), (1, (4, 8, 158), 115), (1, (2, 8, 224), 129), (1, (1, 16, 224), 136),
        (2, (1, 16, 224), 150)]


def test_small_custom_schedule():
    # T=8, S=64, factors (0.5, 0.5) and (1, 1): batch factors 8 and 1; 10-epoch step: 80/9 and 10/9 epochs;
    # saving 10/2.222 = 4.5; fine-tuning 2/4.5 = 0.444; x 12/10.444: cumulative 10.21, 11.49, 12.
    cfg = load_cfg(None, ["DATA.NUM_FRAMES", "8", "DATA.TRAIN_CROP_SIZE", "64", "SOLVER.STEPS", "[0, 10]",
                          "SOLVER.LRS", "[1, 0.1]", "SOLVER.MAX_EPOCH", "12", "MULTIGRID.LONG_CYCLE", "True",
                          "MULTIGRID.EPOCH_FACTOR", "1.0", "MULTIGRID.LONG_CYCLE_FACTORS", "[[0.5, 0.5], [1.0, 1.0]]"])
    schedule = long_cycle_schedule(cfg)
    assert schedule == [(0, (8, 4, 32), 10), (0, (1, 8, 64), 11), (1, (1, 8, 64), 12)]
    solver = multigrid_solver(cfg)
    # the fine-tuning phase (11-12) is one epoch: half of it rounds to none, so no held phase
    assert list(solver.STEPS) == [0, 10, 11] and list(solver.LRS) == pytest.approx([8, 1, 0.1])
    assert [shape_at(schedule, e) for e in (0, 9, 10, 11, 12, 30)] == [
        (8, 4, 32), (8, 4, 32), (1, 8, 64), (1, 8, 64), (1, 8, 64), (1, 8, 64)]


@pytest.mark.parametrize("hold,steps,lrs", [
    (0.5, [0, 4, 8, 10], [2, 1, 1, 0.1]),   # PySlowFast: epochs 8-9 keep LR 1, only 10-11 train at 0.1
    (0.0, [0, 4, 8], [2, 1, 0.1]),          # the whole fine-tuning phase (8-11) at the last step's LR
    (0.25, [0, 4, 8, 9], [2, 1, 1, 0.1]),   # 8 + 0.25 x 4 = 9
])
def test_finetune_hold(hold, steps, lrs):
    # the benchmark's schedule: 16 x 96^2, STEPS [0, 8] of 12, long-cycle factors (1, 0.7071) and (1, 1):
    # crop 68 at batch factor round(96^2 / 68^2) = 2, then 96 at 1; mean batch factors with the short
    # cycle (48 and 68 px crops): (2x2 + 2 + 2) / 3 = 2.67 and (4 + 2 + 1) / 3 = 2.33, so the 8-epoch
    # step splits 4.27 + 3.73 epochs (1.6 iteration-units each); saving 8 / 3.2 = 2.5, fine-tuning
    # 4 / 2.5 x 2.33 = 3.73; total 11.73 stretched to 12: cumulative ends 4.36, 8.18, 12 -> 4, 8, 12
    cfg = load_cfg(None, ["DATA.NUM_FRAMES", "16", "DATA.TRAIN_CROP_SIZE", "96", "SOLVER.LR_POLICY",
                          "steps_with_relative_lrs", "SOLVER.STEPS", "[0, 8]", "SOLVER.LRS", "[1, 0.1]",
                          "SOLVER.MAX_EPOCH", "12", "MULTIGRID.LONG_CYCLE", "True", "MULTIGRID.SHORT_CYCLE", "True",
                          "MULTIGRID.EPOCH_FACTOR", "1.0", "MULTIGRID.LONG_CYCLE_FACTORS", "[[1.0, 0.7071], [1.0, 1.0]]",
                          "MULTIGRID.FINETUNE_HOLD", str(hold)])
    assert [e for _, _, e in long_cycle_schedule(cfg)] == [4, 8, 12]
    solver = multigrid_solver(cfg)
    assert list(solver.STEPS) == steps and list(solver.LRS) == pytest.approx(lrs)


def test_short_cycle_only_stretches_the_epochs():
    cfg = load_cfg(None, PAPER + ["MULTIGRID.SHORT_CYCLE", "True"])
    solver = multigrid_solver(cfg)
    assert list(solver.STEPS) == [0, 60, 120] and solver.MAX_EPOCH == 150
    assert list(solver.LRS) == [1, 0.1, 0.01]
    off = multigrid_solver(load_cfg(None, PAPER))
    assert list(off.STEPS) == [0, 40, 80] and off.MAX_EPOCH == 100


@pytest.mark.parametrize("extra,match", [
    (["SOLVER.LR_POLICY", "cosine"], "steps_with_relative_lrs"),
    (["SOLVER.MAX_EPOCH", "80"], "fine-tuning"),
    (["SOLVER.STEPS", "[0, 40, 40]", "SOLVER.LRS", "[1, 0.1, 0.01]"], "strictly increasing"),
    (["MULTIGRID.EPOCH_FACTOR", "0.0"], "EPOCH_FACTOR"),
    (["MULTIGRID.LONG_CYCLE_FACTORS", "[[0.5, 0.0]]"], "LONG_CYCLE_FACTORS"),
    (["MULTIGRID.FINETUNE_HOLD", "1.0"], "FINETUNE_HOLD"),
    (["MULTIGRID.FINETUNE_HOLD", "-0.5"], "FINETUNE_HOLD"),
])
def test_unusable_settings_are_errors(extra, match):
    cfg = load_cfg(None, PAPER + ["MULTIGRID.LONG_CYCLE", "True"] + extra)
    with pytest.raises(ValueError, match=match):
        multigrid_solver(cfg)


def test_long_cycle_training_follows_the_schedule_and_resumes_mid_way(synthetic_root, tmp_path):
    """Each epoch trains at its phase's frames, crop and batch, with the derived LR; a run resumed in
    the middle of the schedule continues with the same shapes and LRs."""
    import os

    from vidpool.engine import train

    from .test_train import _stats, tiny_cfg

    extra = ["TRAIN.BATCH_SIZE", "2", "SOLVER.STEPS", "[0, 2]", "SOLVER.LRS", "[1, 0.1]", "SOLVER.MAX_EPOCH", "3",
             "MULTIGRID.LONG_CYCLE", "True", "MULTIGRID.EPOCH_FACTOR", "2.0",
             "MULTIGRID.LONG_CYCLE_FACTORS", "[[0.5, 0.5], [1.0, 1.0]]", "TEST.ENABLE", "False",
             "TRAIN.EVAL_PERIOD", "0", "TENSORBOARD.ENABLE", "False"]
    cfg = tiny_cfg(synthetic_root, tmp_path, *extra)
    schedule, solver = long_cycle_schedule(cfg), multigrid_solver(cfg)
    assert {shape for _, shape, _ in schedule} == {(8, 2, 16), (1, 4, 32)} and solver.MAX_EPOCH == 6
    train(cfg)
    stats = _stats(tmp_path)
    assert [s["epoch"] for s in stats] == list(range(1, 7))
    for s in stats:
        factor, frames, crop = shape_at(schedule, s["epoch"] - 1)
        assert (s["num_frames"], s["crop_size"], s["batch_size"]) == (frames, crop, 2 * factor)
        assert s["lr"] == pytest.approx(lr_at(solver, s["epoch"] - 1))
    assert {s["crop_size"] for s in stats} == {16, 32}  # both shapes were trained
    with open(tmp_path / "log.txt") as f:
        assert "long cycle from epoch 1: 2 frames (sampling rate 8-16), crop 16, jitter [16, 18], batch 16" in f.read()
    # resume from the checkpoint after epoch 2 in a fresh output folder
    resumed = tmp_path / "resumed"
    os.makedirs(resumed / "checkpoints")
    os.link(tmp_path / "checkpoints" / "checkpoint_epoch_00002.pyth", resumed / "checkpoints" / "checkpoint_epoch_00002.pyth")
    train(tiny_cfg(synthetic_root, resumed, *extra))
    again = _stats(resumed)
    keys = ("epoch", "lr", "num_frames", "crop_size", "batch_size")
    # the checkpoint's own epoch record comes back first (this folder never had it), then epochs 3-6
    assert [{k: s[k] for k in keys} for s in again] == [{k: s[k] for k in keys} for s in stats[1:]]
    # a different schedule cannot silently continue from it
    with pytest.raises(ValueError, match="multigrid schedule"):
        train(tiny_cfg(synthetic_root, resumed, *extra, "MULTIGRID.EPOCH_FACTOR", "3.0"))


def test_short_cycle_crops_come_from_the_default_crop():
    cfg = load_cfg(None, PAPER + ["DATA.TRAIN_JITTER_SCALES", "[256, 320]", "MULTIGRID.LONG_CYCLE", "True",
                                  "MULTIGRID.SHORT_CYCLE", "True", "TRAIN.BATCH_SIZE", "8"])
    full = ClipShape(16, 4, 224, (256, 320))
    # crops 0.5 and 0.707 of 224 = 112 and 158; batches x (224/112)^2 = 4 and x round((224/158)^2) = 2;
    # jitter [256, 320] scaled by 112/224 and 158/224
    assert short_cycle(cfg, full, 8) == [(ClipShape(16, 4, 112, (128, 160)), 32),
                                         (ClipShape(16, 4, 158, (181, 226)), 16), (full, 8)]
    # first long-cycle phase (8 x batch, 4 frames, crop 158): the same crops 112 and 158 of the default
    # 224, batches x round((158/112)^2) = 2 and x 1 (as PySlowFast, and as the epoch split assumes:
    # 16 x 224^2 / (4 x 112^2) = 16 = 8 x 2), jitter (181, 226) x 112/158
    shape, batch = epoch_shape(cfg, long_cycle_schedule(cfg), 0)
    assert (shape.num_frames, shape.crop_size, shape.jitter_scales, batch) == (4, 158, (181, 226), 64)
    assert (shape.sampling_rate, shape.max_sampling_rate) == (4, 16)  # 4 x 16 // 4
    assert [(s.crop_size, s.jitter_scales, b) for s, b in short_cycle(cfg, shape, batch)] == [
        (112, (128, 160), 128), (158, (181, 226), 64), (158, (181, 226), 64)]
    # a long-cycle crop below a short-cycle crop (spatial factor 0.4: 90): both short crops are 90, batch x 1
    small = load_cfg(None, PAPER + ["MULTIGRID.LONG_CYCLE", "True", "MULTIGRID.SHORT_CYCLE", "True",
                                    "MULTIGRID.LONG_CYCLE_FACTORS", "[[0.5, 0.4], [1.0, 1.0]]"])
    shape, batch = epoch_shape(small, long_cycle_schedule(small), 0)
    assert shape.crop_size == 90 and [(s.crop_size, b) for s, b in short_cycle(small, shape, batch)] == [
        (90, batch), (90, batch), (90, batch)]


def test_short_cycle_training_runs_the_cycled_crops(synthetic_root, tmp_path):
    from vidpool.engine import train

    from .test_train import _stats, tiny_cfg

    cfg = tiny_cfg(synthetic_root, tmp_path, "TRAIN.BATCH_SIZE", "2", "SOLVER.STEPS", "[0]", "SOLVER.LRS", "[1]",
                   "SOLVER.MAX_EPOCH", "2", "MULTIGRID.SHORT_CYCLE", "True", "TEST.ENABLE", "False",
                   "TRAIN.EVAL_PERIOD", "0", "TENSORBOARD.ENABLE", "False")
    train(cfg)
    assert [s["epoch"] for s in _stats(tmp_path)] == [1, 2, 3]  # 2 epochs x EPOCH_FACTOR 1.5
    with open(tmp_path / "log.txt") as f:
        # crops 0.5 and 0.707 of 32 with 4x and 2x the batch, then the full crop
        assert "short cycle from epoch 1: crops [16, 23, 32], batches per process [8, 4, 2]" in f.read()


def test_split_batchnorm_matches_batchnorm_per_group():
    """Training output and gradients equal a float64 BatchNorm3d applied to each group of clips on its
    own; running statistics equal those of one BatchNorm3d over the whole batch; eval and state_dict
    are plain BatchNorm3d."""
    import torch
    from torch import nn

    from vidpool.engine.multigrid import SplitBatchNorm3d, set_batchnorm_group, use_split_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(2, 3, 1), nn.BatchNorm3d(3), nn.Sequential(nn.BatchNorm3d(3)))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2)
        model[1].bias.uniform_(-1, 1)
    reference = [model[1].state_dict()]
    assert use_split_batchnorm(model) == 2 and isinstance(model[2][0], SplitBatchNorm3d)
    assert model[1].state_dict().keys() == reference[0].keys()
    assert all(torch.equal(model[1].state_dict()[k], v) for k, v in reference[0].items())
    set_batchnorm_group(model, 4)
    bn = model[1]
    x = (torch.randn(12, 3, 2, 3, 3) * torch.arange(1, 13).view(12, 1, 1, 1, 1)).requires_grad_()
    y = bn(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    # reference: each group of 4 clips through its own float64 BatchNorm3d with the same affine
    x64 = x.detach().double().requires_grad_()
    parts = []
    for i in range(3):
        ref = nn.BatchNorm3d(3).double()
        ref.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in reference[0].items()})
        parts.append(ref(x64[4 * i:4 * i + 4]))
    y64 = torch.cat(parts)
    (y64 * g.double()).sum().backward()
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-5)
    whole = nn.BatchNorm3d(3).double()
    whole.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in reference[0].items()})
    whole(x64.detach())
    torch.testing.assert_close(bn.running_mean.double(), whole.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var.double(), whole.running_var, rtol=1e-5, atol=1e-6)
    # a batch of 10 with groups of 4: the most equal groups of at least 4 clips (2 x 5); 3 clips: one group
    x10 = torch.randn(10, 3, 2, 3, 3)
    ref = nn.BatchNorm3d(3)
    ref.load_state_dict(bn.state_dict())
    torch.testing.assert_close(bn(x10)[:5], ref(x10[:5]), rtol=1e-5, atol=1e-5)
    ref.load_state_dict(bn.state_dict())
    x3 = torch.randn(3, 3, 2, 3, 3)
    torch.testing.assert_close(bn(x3), ref(x3), rtol=1e-5, atol=1e-5)
    bn.eval()
    ref.load_state_dict(bn.state_dict())
    ref.eval()
    torch.testing.assert_close(bn(x10), ref(x10))


def test_multigrid_batch_norm_groups_and_precise_bn_at_the_full_shape(synthetic_root, tmp_path, monkeypatch):
    """Short cycle with precise BN: the batches precise BN feeds the model (training mode, no
    gradients) are all at the full crop with TRAIN.BATCH_SIZE clips, never the cycle's small
    crops; and batch norm groups TRAIN.BATCH_SIZE clips by default, as the run without multigrid."""
    from vidpool.engine import train
    from vidpool.engine.multigrid import SplitBatchNorm3d

    from .test_observed import watch_training_model
    from .test_train import tiny_cfg

    seen = []

    def hook(module, inputs):
        if module.training and not torch.is_grad_enabled():
            seen.append(tuple(inputs[0].shape))

    built = watch_training_model(monkeypatch, hook)

    def groups():
        return {m.group_size for m in built.pop().modules() if isinstance(m, SplitBatchNorm3d)}
    cfg = tiny_cfg(synthetic_root, tmp_path, "TRAIN.BATCH_SIZE", "2", "SOLVER.STEPS", "[0]", "SOLVER.LRS", "[1]",
                   "SOLVER.MAX_EPOCH", "1", "MULTIGRID.SHORT_CYCLE", "True", "TEST.ENABLE", "False",
                   "TRAIN.PRECISE_BN", "True", "TRAIN.PRECISE_BN_BATCHES", "4", "TENSORBOARD.ENABLE", "False")
    train(cfg)
    assert groups() == {2}  # MULTIGRID.BN_BASE_SIZE 0: the per-process TRAIN.BATCH_SIZE
    # precise BN before each validation (2 epochs with EPOCH_FACTOR 1.5, the last one always)
    assert seen and all(s == (2, 3, 4, 32, 32) for s in seen), seen
    train(tiny_cfg(synthetic_root, tmp_path / "explicit", "MULTIGRID.SHORT_CYCLE", "True", "MULTIGRID.BN_BASE_SIZE",
                   "2", "TRAIN.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "1", "TEST.ENABLE", "False",
                   "TRAIN.EVAL_PERIOD", "0", "TENSORBOARD.ENABLE", "False"))
    assert groups() == {2}  # as set, not the batch of 4


@pytest.mark.parametrize("scaled", [False, True])
def test_short_cycle_lr_follows_each_batch_when_scaled(synthetic_root, tmp_path, monkeypatch, scaled):
    """MULTIGRID.SHORT_CYCLE_LR_SCALE: the LR the optimizer holds at each step is the phase's LR times
    the clips the model received over the phase's batch (8, 4 and 2 clips: x4, x2, x1); off, it is the
    phase's LR for every batch (PySlowFast)."""
    from vidpool.engine import train, trainer

    from .test_train import tiny_cfg

    seen = []  # (clips the model receives, LR the optimizer holds when it steps), in step order
    model_input = trainer.model_input

    def observed_input(clip, device, cfg):
        x = model_input(clip, device, cfg)
        seen.append([x.shape[0], None])
        return x

    sgd_step = torch.optim.SGD.step

    def observed_step(self, *args, **kwargs):
        seen[-1][1] = self.param_groups[0]["lr"]
        return sgd_step(self, *args, **kwargs)

    monkeypatch.setattr(trainer, "model_input", observed_input)
    monkeypatch.setattr(torch.optim.SGD, "step", observed_step)
    cfg = tiny_cfg(synthetic_root, tmp_path, "TRAIN.BATCH_SIZE", "2", "SOLVER.LR_POLICY", "steps_with_relative_lrs",
                   "SOLVER.STEPS", "[0]", "SOLVER.LRS", "[1]", "SOLVER.BASE_LR", "0.05", "SOLVER.WARMUP_EPOCHS", "0.0",
                   "SOLVER.MAX_EPOCH", "1", "MULTIGRID.SHORT_CYCLE", "True",
                   "MULTIGRID.SHORT_CYCLE_LR_SCALE", str(scaled), "TEST.ENABLE", "False",
                   "TRAIN.EVAL_PERIOD", "0", "TENSORBOARD.ENABLE", "False")
    train(cfg)
    assert {clips for clips, _ in seen} == {8, 4, 2} and all(lr is not None for _, lr in seen)
    for clips, lr in seen:
        assert lr == pytest.approx(0.05 * clips / 2 if scaled else 0.05), (clips, lr)
