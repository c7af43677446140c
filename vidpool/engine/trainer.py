"""Training: ``train(cfg)`` runs epochs of ``train_epoch`` with validation, checkpoints, auto-resume,
fine-tuning, mixed precision and DDP; ``evaluate`` measures clip accuracy.

The config is read here and never changed; the engine keeps its own state (epoch, optimizer, ...)
and writes it to every checkpoint.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidpool.config.check import ConfigError, check_cfg
from vidpool.data import build_dataset, build_loader, iterate
from vidpool.models import build_model, model_input
from vidpool.models.heads import freeze_stages
from vidpool.models.srtg import gate_pass_rate
from vidpool.models.srtg import set_epoch as srtg_set_epoch
from vidpool.weights import load_weights

from . import checkpoint as ckpt
from . import distributed as dist
from . import resume
from .meters import EpochMeter
from .multigrid import (epoch_shape, format_schedule, long_cycle_schedule, multigrid_solver, set_batchnorm_group,
                        short_cycle, use_split_batchnorm)
from .optim import build_optimizer, lr_at, set_lr
from .run_log import BadVideoLog, IterationLog, StatsWriter, progress, setup_logging

log = logging.getLogger("vidpool.engine")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def amp_dtype(cfg, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of TRAIN.MIXED_PRECISION (None when off): TRAIN.MIXED_PRECISION_DTYPE, where
    auto means fp16 on CUDA and bf16 on CPU."""
    if not cfg.TRAIN.MIXED_PRECISION:
        return None
    name = cfg.TRAIN.MIXED_PRECISION_DTYPE
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def autocast(device: torch.device, cfg):
    """Autocast at amp_dtype(cfg, device), or nothing."""
    dtype = amp_dtype(cfg, device)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(cfg, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled for fp16 autocast (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(cfg, device) == torch.float16)


def save_config(cfg, output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "config.yaml"), "w") as f:
        f.write(cfg.dump())


def load_initial_weights(model: nn.Module, path: str, cfg, finetune: bool):
    """TRAIN.CHECKPOINT_FILE_PATH's weights, in any format ``load_weights`` reads (TRAIN.CHECKPOINT_TYPE).
    A vidpool checkpoint of another architecture is an error; other pooling is allowed (the
    pooling-swap experiment) and logged. With ``finetune`` the file's classifier is used only when its
    class count is the model's."""
    def same_model(state):
        ckpt.check_compatible(state, cfg, path, keys=("MODEL.ARCH",))
        try:
            ckpt.check_compatible(state, cfg, path, keys=("MODEL.POOL", "MODEL.POOL_COUNT_INCLUDE_PAD", "MODEL.HEAD_POOL"))
        except ValueError as e:
            log.warning("starting from weights trained with other pooling: %s", e)

    report = load_weights(model, path, cfg.TRAIN.CHECKPOINT_TYPE, finetune=finetune,
                          trusted=cfg.TRAIN.CHECKPOINT_TRUSTED, cfg_check=same_model)
    log.info("%s from %s", "fine-tuning" if finetune else "initialised", report)
    return report


def build_training_model(cfg, device: torch.device, initialise: bool = True) -> nn.Module:
    """The model to train, with TRAIN.CHECKPOINT_FILE_PATH's weights when ``initialise`` (a resumed
    run takes its own checkpoint's instead, so that file may be gone by then)."""
    model = build_model(cfg)
    t = cfg.TRAIN
    if initialise and t.CHECKPOINT_FILE_PATH:
        path = ckpt.resolve_weights_path(t.CHECKPOINT_FILE_PATH, "TRAIN.CHECKPOINT_FILE_PATH")
        load_initial_weights(model, path, cfg, t.FINETUNE)
    multigrid = cfg.MULTIGRID.LONG_CYCLE or cfg.MULTIGRID.SHORT_CYCLE
    if cfg.MODEL.SYNC_BN and multigrid:
        raise ConfigError("MODEL.SYNC_BN and multigrid do not combine: multigrid's batch norm already keeps its "
                         "statistics over MULTIGRID.BN_BASE_SIZE clips as the batch grows; turn one off")
    if cfg.MODEL.SYNC_BN and dist.world_size() > 1:
        if device.type != "cuda":
            raise ConfigError("MODEL.SYNC_BN needs GPUs (torch's SyncBatchNorm has no CPU implementation); "
                             "set MODEL.SYNC_BN False for CPU runs")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        log.info("batch norm synchronised over %d processes", dist.world_size())
    if multigrid:
        # multigrid multiplies the batch: keep BN statistics over MULTIGRID.BN_BASE_SIZE clips (by
        # default the per-process batch at the full shape, as the run without multigrid has them)
        use_split_batchnorm(model)
        set_batchnorm_group(model, cfg.MULTIGRID.BN_BASE_SIZE or cfg.TRAIN.BATCH_SIZE // dist.world_size())
    if t.FREEZE_STAGES:
        log.info("frozen stages: %s", freeze_stages(model, t.FREEZE_STAGES))
    model.to(device)
    if dist.world_size() > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def train_epoch(model, loader, optimizer, scaler, cfg, epoch: int, device: torch.device, solver=None,
                bad_videos: Optional[BadVideoLog] = None, start: int = 0, sums: Optional[dict] = None,
                on_step=None, writer: Optional[StatsWriter] = None, step: int = 0, resumed: bool = False,
                lr_batch: Optional[int] = None) -> dict:
    """One epoch; the LR is set every iteration from the fractional epoch of ``solver`` (default
    cfg.SOLVER; multigrid passes its own). Unreadable videos go to ``bad_videos``. A resumed epoch
    starts at iteration ``start`` with the running ``sums`` of the checkpoint (the loader must skip
    the batches before it); ``on_step(iterations_done, sums)`` runs after every step. Every
    LOG_PERIOD iterations the progress (loss, LR, data and step time, clips/s, ETA) is logged and,
    with ``writer``, recorded; ``step`` counts the run's iterations before this call. With
    ``lr_batch`` (MULTIGRID.SHORT_CYCLE_LR_SCALE) each batch trains at the LR times its clips over
    ``lr_batch``."""
    solver = cfg.SOLVER if solver is None else solver
    model.train()
    meter, extra = EpochMeter(), {"clips": 0, "skipped": 0}
    if sums:
        meter.loss, meter.top1, meter.top5, meter.n = sums["loss"], sums["top1"], sums["top5"], sums["n"]
        extra = {"clips": sums["clips"], "skipped": sums["skipped"]}
    n = len(loader)
    before = float((sums or {}).get("seconds", 0.0))  # the epoch's training time before a resume
    begin = time.time()
    progress_log = IterationLog(f"epoch {epoch + 1}", n, cfg.LOG_PERIOD, dist.is_main(), writer, step,
                                purge_step=step + 1 if resumed else None, window=(sums or {}).get("window"))
    ready = time.time()
    for i, batch in enumerate(iterate(loader), start=start):
        arrived = time.time()
        if bad_videos is not None:
            bad_videos.add(batch.get("bad", []))
        lr = lr_at(solver, epoch + i / max(n, 1))
        if lr_batch:
            lr *= len(batch["label"]) / lr_batch
        set_lr(optimizer, lr)
        x = model_input(batch["clip"], device, cfg)
        y = batch["label"].to(device, non_blocking=True)
        extra["skipped"] += len(batch["skipped"])
        with autocast(device, cfg):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.TRAIN.LABEL_SMOOTHING)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, iteration {i + 1}; "
                                     "lower SOLVER.BASE_LR or check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.TRAIN.CLIP_GRAD_NORM > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.TRAIN.CLIP_GRAD_NORM)
        scaler.step(optimizer)
        scaler.update()
        loss_value = loss.item()  # one device sync per step
        meter.update(loss_value, logits, y)
        extra["clips"] += y.shape[0]
        done = time.time()
        progress_log.update(i + 1, epoch, loss_value, lr, y.shape[0], arrived - ready, done - arrived)
        ready = done
        if on_step is not None:
            on_step(i + 1, {"loss": meter.loss, "top1": meter.top1, "top5": meter.top5, "n": meter.n, **extra,
                            "window": list(progress_log.window), "seconds": before + time.time() - begin})
    progress_log.close()
    stats = meter.reduce(lambda v: dist.all_reduce_sum(v, device))
    seconds = before + time.time() - begin
    total_clips, total_skipped = dist.all_reduce_sum([extra["clips"], extra["skipped"]], device)
    stats.update(seconds=seconds, clips_per_s=total_clips / max(seconds, 1e-9), skipped=int(total_skipped))
    return stats


@torch.no_grad()
def evaluate(model, loader, cfg, device: torch.device, bad_videos: Optional[BadVideoLog] = None,
             stop: Optional[resume.StopRequests] = None) -> dict:
    """Clip-level loss and top-1/top-5 (unreadable clips are counted and left out). With ``stop``,
    a stop request ends the pass after the current batch (``resume.StopNow``)."""
    model.eval()
    meter, unreadable = EpochMeter(), 0
    batches = resume.stoppable(iterate(loader), len(loader), stop, device)
    for batch in progress(batches, len(loader), "validation", cfg.LOG_PERIOD, dist.is_main()):
        if bad_videos is not None:
            bad_videos.add(batch.get("bad", []))
        valid = batch["valid"]
        unreadable += int((~valid).sum())
        if not valid.any():
            continue
        x, y = model_input(batch["clip"][valid], device, cfg), batch["label"][valid].to(device)
        with autocast(device, cfg):
            logits = model(x).float()
        meter.update(F.cross_entropy(logits, y).item(), logits, y)
    stats = meter.reduce(lambda v: dist.all_reduce_sum(v, device))
    stats["unreadable"] = int(dist.all_reduce_sum([unreadable], device)[0])
    return stats


def _precise_bn(model, loader, cfg, device, stop: Optional[resume.StopRequests] = None) -> None:
    """Batch-norm statistics averaged over TRAIN.PRECISE_BN_BATCHES training batches (fvcore). A stop
    request ends it after the current batch (``resume.StopNow``) with fvcore's settings undone; the
    caller puts back the statistics it started from."""
    from fvcore.nn.precise_bn import get_bn_modules, update_bn_stats

    count = min(cfg.TRAIN.PRECISE_BN_BATCHES, len(loader))
    layers = get_bn_modules(model)
    before = [(bn.momentum, set(bn._forward_pre_hooks)) for bn in layers]

    def inputs():
        for batch in resume.stoppable(itertools.islice(iterate(loader), count), count, stop, device):
            yield model_input(batch["clip"], device, cfg)

    try:
        update_bn_stats(model, inputs(), count)
    except resume.StopNow:
        for bn, (momentum, hooks) in zip(layers, before):
            bn.momentum = momentum
            for key in set(bn._forward_pre_hooks) - hooks:  # fvcore's batch-size hooks stay on an exception
                del bn._forward_pre_hooks[key]
        raise


def _multigrid_state(cfg, schedule, solver) -> Optional[dict]:
    """What a checkpoint records of multigrid (None when it is off): the long-cycle schedule and the LR
    schedule it implies."""
    if not (cfg.MULTIGRID.LONG_CYCLE or cfg.MULTIGRID.SHORT_CYCLE):
        return None
    return {"schedule": [[step, list(shape), end] for step, shape, end in (schedule or [])],
            "steps": list(solver.STEPS), "lrs": list(solver.LRS), "max_epoch": int(solver.MAX_EPOCH)}


def _use_shape(cfg, loader, schedule, solver, epoch, current):
    """Give the loader the epoch's clip shape and batch size (long cycle, short cycle or the config's)."""
    shape, batch_size = epoch_shape(cfg, schedule, epoch)
    if (shape, batch_size) == current:
        return current
    per_process = batch_size // dist.world_size()
    if cfg.MULTIGRID.SHORT_CYCLE:
        cycle = short_cycle(cfg, shape, per_process)
        loader.batch_sampler.set_cycle(cycle)
        log.info("short cycle from epoch %d: crops %s, batches per process %s", epoch + 1,
                 [s.crop_size for s, _ in cycle], [b for _, b in cycle])
    else:
        loader.batch_sampler.set_shape(shape, per_process)
    if schedule:
        log.info("long cycle from epoch %d: %d frames (sampling rate %d-%d), crop %d, jitter %s, batch %d, LR %.4g",
                 epoch + 1, shape.num_frames, shape.sampling_rate, max(shape.sampling_rate, shape.max_sampling_rate),
                 shape.crop_size, list(shape.jitter_scales), batch_size, lr_at(solver, epoch))
    if len(loader.batch_sampler) == 0:
        raise ConfigError(f"epoch {epoch + 1}: a batch of {per_process} clips per process is more than the "
                         f"{len(loader.batch_sampler.sampler)} training clips each process gets; lower TRAIN.BATCH_SIZE")
    return shape, batch_size


def train(cfg, output_dir: Optional[str] = None) -> dict:
    """Train as the config says; returns the last epoch's statistics. Raises ``Preempted`` after
    writing a checkpoint when SIGTERM or SIGUSR1 arrives."""
    out = output_dir or cfg.OUTPUT_DIR
    check_cfg(cfg, train=True)
    device = dist.choose_device(cfg.DEVICE)
    dist.init(device)
    main = dist.is_main()
    setup_logging(out, main)
    if main:
        save_config(cfg, out)
        if ckpt.remove_stale_temporaries(out):
            log.info("removed temporary files of checkpoint writes that were killed")
    seed_everything(cfg.RNG_SEED + dist.rank())
    log.info("device %s, %d process(es), output %s", device, dist.world_size(), out)
    dist.check_softpool_backend(cfg, device)
    state = resume.agreed_checkpoint(out, set_aside=True) if cfg.TRAIN.AUTO_RESUME else None

    train_set, val_set = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    if train_set.num_classes != cfg.MODEL.NUM_CLASSES:
        raise ConfigError(f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES} but {cfg.TRAIN.DATASET} has "
                         f"{train_set.num_classes} classes")
    train_loader = build_loader(cfg, "train", dataset=train_set)
    val_loader = build_loader(cfg, "val", dataset=val_set)
    # precise BN sees full-shape batches of TRAIN.BATCH_SIZE (the shape validation and testing use),
    # not multigrid's smaller clips or short-cycle crops
    multigrid_on = cfg.MULTIGRID.LONG_CYCLE or cfg.MULTIGRID.SHORT_CYCLE
    bn_loader = build_loader(cfg, "train", dataset=train_set) if cfg.TRAIN.PRECISE_BN and multigrid_on \
        else train_loader
    model = build_training_model(cfg, device, initialise=state is None)
    solver = multigrid_solver(cfg)  # cfg.SOLVER unless multigrid changes the schedule (a copy; cfg stays as is)
    schedule = long_cycle_schedule(cfg) if cfg.MULTIGRID.LONG_CYCLE else None
    if schedule:
        log.info("multigrid long cycle, %d epochs (batch x: factor of TRAIN.BATCH_SIZE):\n%s", solver.MAX_EPOCH,
                 format_schedule(schedule))
    elif cfg.MULTIGRID.SHORT_CYCLE:
        log.info("multigrid short cycle: %d epochs, LR steps %s", solver.MAX_EPOCH, list(solver.STEPS))
    optimizer = build_optimizer(model, solver, cfg.TRAIN.BACKBONE_LR_SCALE if cfg.TRAIN.FINETUNE else 1.0)
    scaler = grad_scaler(cfg, device)
    multigrid = _multigrid_state(cfg, schedule, solver)

    start_epoch, start_iter, sums, steps_done = 0, 0, None, 0
    if state is not None:
        ckpt.check_compatible(state, cfg, state["path"])
        if (state.get("engine") or {}).get("multigrid") != multigrid:
            raise ValueError(f"{state['path']} was trained with another multigrid schedule than this config gives; "
                             "resume with the config it was trained with (its copy is in OUTPUT_DIR/config.yaml)")
        ckpt.unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        resume.restore_rng(state)
        start_epoch, start_iter = int(state["epoch"]), int(state.get("iteration", 0))
        sums = resume.own_entry(state, "sums_per_rank")
        steps_done = int(state.get("step", 0))
        log.info("resumed from %s: %d epochs%s done", state["path"], start_epoch,
                 f" and {start_iter} iterations" if start_iter else "")
        if main:
            resume.repair_outputs(out, start_epoch, state.get("stats"), steps_done)

    def save(epoch_done: int, iteration: int = 0, rng: Optional[dict] = None, **extra) -> str:
        """A checkpoint after ``epoch_done`` epochs and ``iteration`` more steps (collective: every
        process sends its RNG states, those of now or ``rng``)."""
        rngs = resume.rng_states(rng)
        path = ckpt.checkpoint_path(out, epoch_done, iteration)
        if main:
            ckpt.save_checkpoint(path, {
                "epoch": epoch_done, "iteration": iteration, "model": ckpt.unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": rngs[0], "rng_per_rank": rngs, "cfg": cfg.dump(), "engine": {"multigrid": multigrid}, **extra})
            ckpt.prune_checkpoints(out, cfg.TRAIN.KEEP_CHECKPOINTS, cfg.TRAIN.KEEP_PERIOD, written=path)
        return path

    writer = StatsWriter(out, main, cfg.TENSORBOARD.ENABLE, purge_step=start_epoch + 1 if state else None)
    bad_videos = BadVideoLog(out, main, dist.gather_to_main)
    stats, current = {}, None
    lr_scaled = cfg.MULTIGRID.SHORT_CYCLE and cfg.MULTIGRID.SHORT_CYCLE_LR_SCALE
    with resume.StopRequests() as stop:
        try:
            for epoch in range(start_epoch, solver.MAX_EPOCH):
                current = _use_shape(cfg, train_loader, schedule, solver, epoch, current)
                shape, batch_size = current
                first = start_iter if epoch == start_epoch else 0
                train_loader.batch_sampler.set_epoch(epoch)
                train_loader.batch_sampler.skip(first)
                srtg_set_epoch(model, epoch)
                gate_pass_rate(model, reset=True)

                latest = {"sums": sums if first else None}  # the epoch's running sums, for a stop after its steps

                def on_step(done: int, running: dict, epoch=epoch) -> None:
                    latest["sums"] = running
                    signum = stop.requested(device)
                    every = cfg.TRAIN.CHECKPOINT_ITERS
                    if signum or (every and done % every == 0 and done < len(train_loader)):
                        bad_videos.flush()
                        path = save(epoch, done, sums_per_rank=dist.gather_to_main(running),
                                    step=steps_done + done - first)
                        if signum:
                            # no rank exits while rank 0 is still writing: torchrun ends the others
                            # 30 s after the first one exits, and a half-written file is lost
                            dist.barrier()
                            raise resume.Preempted(path, signum)

                tr = train_epoch(model, train_loader, optimizer, scaler, cfg, epoch, device, solver, bad_videos,
                                 start=first, sums=sums if first else None, on_step=on_step, writer=writer,
                                 step=steps_done, resumed=state is not None and epoch == start_epoch,
                                 lr_batch=batch_size // dist.world_size() if lr_scaled else None)
                steps_done += len(train_loader) - first
                stats = {"epoch": epoch + 1, "lr": lr_at(solver, epoch), "train_loss": tr["loss"],
                         "train_top1": tr["top1"], "epoch_time_s": tr["seconds"], "clips_per_s": tr["clips_per_s"],
                         "skipped_videos": tr["skipped"], "num_frames": shape.num_frames,
                         "crop_size": shape.crop_size, "batch_size": batch_size}
                tested, passed = dist.all_reduce_sum(list(gate_pass_rate(model)), device)
                if tested:  # SRTG temporal gates: share of training samples they let through this epoch
                    stats["srtg_gate_pass_rate"] = passed / tested
                last = epoch + 1 == solver.MAX_EPOCH
                validate = cfg.TRAIN.EVAL_PERIOD > 0 and (last or (epoch + 1) % cfg.TRAIN.EVAL_PERIOD == 0)
                # the state a stop before the end of validation saves, which a resume completes: the
                # RNG (precise BN's dropout draws from it) and the buffers (precise BN's statistics)
                precise = cfg.TRAIN.PRECISE_BN and (validate or last)
                trained = ckpt.rng_state()
                buffers = {k: b.clone() for k, b in ckpt.unwrap(model).named_buffers()} if precise else {}
                try:
                    if precise:
                        if bn_loader is not train_loader:
                            bn_loader.batch_sampler.set_epoch(epoch)
                        _precise_bn(model, bn_loader, cfg, device, stop)
                    if validate:
                        va = evaluate(model, val_loader, cfg, device, bad_videos, stop)
                        stats.update(val_loss=va["loss"], val_top1=va["top1"], val_top5=va["top5"],
                                     val_unreadable=va["unreadable"])
                except resume.StopNow as e:
                    # the epoch's steps are done, its precise BN and validation are not: a checkpoint
                    # after its last step (the model as training left it), which a resume completes
                    with torch.no_grad():
                        for k, b in ckpt.unwrap(model).named_buffers():
                            b.copy_(buffers.get(k, b))
                    bad_videos.flush()
                    n = len(train_loader)
                    path = save(epoch, n, rng=trained, sums_per_rank=dist.gather_to_main(latest["sums"]),
                                step=steps_done)
                    dist.barrier()
                    raise resume.Preempted(path, e.signum) from None
                bad_videos.flush()
                log.info("epoch %d/%d: %s", epoch + 1, solver.MAX_EPOCH,
                         ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in stats.items() if k != "epoch"))
                signum = stop.requested(device)
                if last or signum or (epoch + 1) % cfg.TRAIN.CHECKPOINT_PERIOD == 0:
                    path = save(epoch + 1, stats=stats, step=steps_done)
                writer.write(stats)
                dist.barrier()
                if signum and not last:
                    raise resume.Preempted(path, signum)
        finally:
            writer.close()
    return stats
