"""The training engine: one loop for every nph model, which plugs in as a :class:`Task`.

The engine owns mixed precision, gradient accumulation and clipping, EMA, the LR schedule, DDP,
tracking and checkpoints (every N steps, and on SIGTERM/SIGUSR2). It is a callable with a
``checkpoint()`` method, the shape submitit's requeue expects. See docs/training.md.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from nph.errors import InputError
from nph.io.atomic import write_text
from nph.progress import progress
from nph.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, restore_rng, save_checkpoint
from nph.training.config import EngineConfig, Precision, resolve_precision
from nph.training.data import BatchOrder, MicroBatches, collate
from nph.training.distributed import DistEnv, init_distributed, local_device
from nph.training.optim import EMA, warmup_cosine
from nph.training.tracking import Tracker

__all__ = ["Engine", "Task", "TrainResult", "default_device"]

log = logging.getLogger(__name__)
Batch = dict[str, torch.Tensor]
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR2", None)) if s)


class Task(nn.Module):
    """A model as the engine sees it. Subclasses set ``self.net`` and implement :meth:`training_step`.

    ``net`` is the network that is trained, averaged (EMA) and exported to the bundle; a task may hold
    other, frozen modules (a diffusion model's autoencoder). ``forward`` is ``training_step`` so that
    DDP sees the whole step.
    """

    net: nn.Module

    def build_loss(self) -> Callable[..., torch.Tensor] | None:
        """Loss module(s) the task uses; called by subclasses in ``__init__``."""
        return None

    def configure_optimizers(self, cfg: EngineConfig) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters of ``net`` (override for several parameter groups)."""
        params = [p for p in self.net.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    def training_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one micro-batch (scalar tensor) and the numbers to log."""
        raise TypeError(f"{type(self).__name__} must implement training_step")

    def validation_step(self, batch: Batch) -> dict[str, float]:
        """Metrics of one validation batch (means are taken over batches)."""
        return {}

    def preview(self, batch: Batch) -> npt.NDArray | None:
        """A volume (X, Y, Z) to show as three planes in the tracker, or None."""
        return None

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self.training_step(batch)


@dataclass
class TrainResult:
    """What a finished (or interrupted) run hands back to its stage."""

    steps: int
    interrupted: bool
    losses: list[float] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)


def default_device(env: DistEnv) -> torch.device:
    """This rank's device from what the scheduler bound (:func:`nph.training.distributed.local_device`):
    ``cuda:<local rank>`` when the rank sees the node's GPUs, ``cuda:0`` when one GPU is bound per task, else
    the CPU."""
    return local_device(env)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


class Engine:
    """Train ``task`` on ``dataset`` into ``out_dir`` (checkpoint.pt, config.yaml); resume if interrupted.

    Args:
        task: the model (see :class:`Task`).
        dataset: indexable examples, each ``{name: tensor}``.
        cfg: engine hyper-parameters.
        out_dir: where checkpoints and the saved config go.
        run_config: the resolved config of the whole run, saved with every checkpoint.
        dist_env: this process's place in a distributed run.
        tracker: W&B run (rank 0 only); None = no tracking.
        weights: optional per-example sampling weights (oversampling).
        validation: optional validation examples.
        requeue: called by :meth:`checkpoint` to build the object a launcher resubmits (submitit's
            ``DelayedSubmission``); the library does not import submitit itself.
    """

    def __init__(self, task: Task, dataset: Sequence[Mapping[str, torch.Tensor]], cfg: EngineConfig, out_dir: Path,
                 *, run_config: Mapping[str, Any] | None = None, dist_env: DistEnv | None = None,
                 tracker: Tracker | None = None, weights: npt.NDArray | None = None,
                 validation: Sequence[Mapping[str, torch.Tensor]] | None = None,
                 requeue: Callable[[Engine], Any] | None = None, device: torch.device | None = None) -> None:
        self.env = dist_env or DistEnv()
        micro = cfg.batch_size // cfg.grad_accum
        if micro % self.env.world_size:
            raise InputError(f"train.batch_size: micro-batch {micro} is not divisible by {self.env.world_size} ranks")
        if len(dataset) == 0:
            raise InputError("training data: no examples")
        self.task, self.dataset, self.cfg, self.out_dir = task, dataset, cfg, Path(out_dir)
        self.validation, self.tracker, self.requeue = validation, tracker, requeue
        self.run_config = dict(run_config or {})
        self.device = device or default_device(self.env)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.order = BatchOrder(len(dataset), micro, cfg.grad_accum, cfg.seed, weights)
        self.step = 0
        self.losses: list[float] = []
        self._stop = False
        self._in_step = False
        self._built = False

    # -- set-up -------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def _build(self) -> None:
        if self._built:
            return
        init_distributed(self.env, self.device)
        self.task.to(self.device)
        self.optimizer = self.task.configure_optimizers(self.cfg)
        factor = warmup_cosine(self.cfg.warmup_steps, self.cfg.max_steps, self.cfg.schedule, self.cfg.min_lr_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision is Precision.FP16)
        self.ema = EMA(self.task.net, self.cfg.ema_decay) if self.cfg.ema_decay > 0 else None
        if self.checkpoint_path.is_file():
            self._resume(load_checkpoint(self.checkpoint_path, self.device))
        elif self.env.is_main:
            write_text(self.out_dir / "config.yaml", yaml.safe_dump(self.run_config, sort_keys=False))
        self.model: nn.Module = self.task
        if self.env.is_distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.task, device_ids=ids)
        self._built = True

    def _resume(self, state: dict[str, Any]) -> None:
        try:
            self.task.load_state_dict(state["task"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
        except (KeyError, RuntimeError, ValueError) as err:
            message = " ".join(str(err).split())[:300]
            raise InputError(f"{self.checkpoint_path}: does not fit this model/config ({message})") from err
        self.step, self.losses = int(state["step"]), list(state["losses"])
        restore_rng(state["rng"])
        log.info("resumed from %s at step %d", self.checkpoint_path, self.step)

    # -- the loop -----------------------------------------------------------------------------------------
    def __call__(self) -> TrainResult:
        """Train until ``max_steps`` or a stop signal; returns losses, validation metrics and weights."""
        self._build()
        with self._signals():
            bar = progress(total=self.cfg.max_steps, initial=self.step, disable=not self.env.is_main, desc="train",
                           unit="step")
            started, start_step = time.perf_counter(), self.step
            batches = self._batches()
            while self.step < self.cfg.max_steps and not self._stop:
                logs = self._train_step(batches)
                rate = (self.step - start_step) * self.cfg.batch_size / max(time.perf_counter() - started, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4g}", samples_per_s=f"{rate:.2f}")
                self._after_step(logs, rate)
            bar.close()
            del batches  # stops the loader's workers
            interrupted = self.step < self.cfg.max_steps
            self.save()
        validation = {} if interrupted else self.validate()
        if self.tracker is not None and not interrupted:
            self.tracker.log({f"val/{k}": v for k, v in validation.items()}, step=self.step)
            self.tracker.finish()
        return TrainResult(self.step, interrupted, list(self.losses), validation, self.export_weights())

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision is Precision.FP32:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision is Precision.BF16 else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _batch(self, indices: list[int]) -> Batch:
        return {k: v.to(self.device, non_blocking=True) for k, v in collate([self.dataset[i] for i in indices]).items()}

    def _batches(self) -> Iterator[Batch]:
        """This rank's micro-batches from the current step on, in :class:`BatchOrder`'s order.

        ``train.num_workers`` processes load ``train.prefetch`` batches ahead each (pinned on a GPU); which
        examples a step sees stays a pure function of (seed, step), so resuming is exact with any worker count.
        """
        plan = MicroBatches(self.order, self.step, self.cfg.max_steps, self.env.rank, self.env.world_size)
        workers = self.cfg.num_workers
        loader = DataLoader(cast(Any, self.dataset), batch_sampler=plan, collate_fn=collate, num_workers=workers,
                            prefetch_factor=self.cfg.prefetch if workers else None,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(self.cfg.seed))
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _train_step(self, batches: Iterator[Batch]) -> dict[str, float]:
        self._in_step = True
        torch.manual_seed(_step_seed(self.cfg.seed, self.step, self.env.rank))
        self.task.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for micro in range(self.cfg.grad_accum):
            batch = next(batches)
            sync = micro == self.cfg.grad_accum - 1 or not self.env.is_distributed
            no_sync = contextlib.nullcontext() if sync else cast(DistributedDataParallel, self.model).no_sync()
            with no_sync, self._autocast():
                loss, logs = self.model(batch)
            self.scaler.scale(loss / self.cfg.grad_accum).backward()
            for key, value in {"loss": float(loss.detach()), **logs}.items():
                totals[key] = totals.get(key, 0.0) + float(value) / self.cfg.grad_accum
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.task.net.parameters(), self.cfg.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        totals["lr"] = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.task.net)
        self.step += 1
        self.losses.append(totals["loss"])
        self._in_step = False
        return totals

    def _after_step(self, logs: dict[str, float], rate: float) -> None:
        cfg = self.cfg
        if self.tracker is not None and self.step % cfg.log_every == 0:
            self.tracker.log({**{f"train/{k}": v for k, v in logs.items()}, "train/samples_per_s": rate}, self.step)
        if self.step % cfg.checkpoint_every == 0 and self.step < cfg.max_steps:
            self.save()
        if cfg.validate_every and self.step % cfg.validate_every == 0 and self.tracker is not None:
            self.tracker.log({f"val/{k}": v for k, v in self.validate().items()}, step=self.step)
        if cfg.image_every and self.step % cfg.image_every == 0 and self.tracker is not None:
            self._log_preview()

    def _log_preview(self) -> None:
        with torch.inference_mode():
            volume = self.task.preview(self._batch([0]))
        if volume is not None and self.tracker is not None:
            self.tracker.log_volume("samples", volume, self.step)

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Mean of the task's validation metrics over the validation examples (one at a time)."""
        if not self.validation:
            return {}
        self.task.eval()
        sums: dict[str, float] = {}
        for example in self.validation:
            batch = {k: v[None].to(self.device) for k, v in example.items()}
            with self._autocast():
                for key, value in self.task.validation_step(batch).items():
                    sums[key] = sums.get(key, 0.0) + float(value)
        return {k: v / len(self.validation) for k, v in sums.items()}

    # -- state ----------------------------------------------------------------------------------------------
    def export_weights(self) -> dict[str, torch.Tensor]:
        """Weights of ``net`` for the bundle: the EMA where kept, on CPU, contiguous."""
        state = self.ema.state_dict() if self.ema is not None else self.task.net.state_dict()
        return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}

    def save(self) -> None:
        """Write the checkpoint now (rank 0 only), atomically."""
        if not self.env.is_main or not self._built:
            return
        save_checkpoint(self.checkpoint_path, {
            "step": self.step, "losses": list(self.losses), "task": self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else {},
            "config": yaml.safe_dump(self.run_config, sort_keys=False),
        })

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Save state (submitit calls this on timeout/preemption) and return what the launcher requeues.

        Called in the middle of a step (from a signal handler), it leaves the last complete checkpoint
        in place instead of saving a half-updated state.
        """
        if self._in_step:
            log.info("checkpoint requested mid-step: keeping %s", self.checkpoint_path)
        else:
            self.save()
        return self.requeue(self) if self.requeue is not None else None

    @contextlib.contextmanager
    def _signals(self) -> Any:
        """On SIGTERM/SIGUSR2 finish the current step, checkpoint, stop, then pass the signal on."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        received: list[int] = []
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

        def handler(signum: int, frame: Any) -> None:
            log.warning("signal %d: checkpointing after this step and stopping", signum)
            received.append(signum)
            self._stop = True

        for s in STOP_SIGNALS:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)
        for signum in received[:1]:
            old = previous[signum]
            if callable(old):
                old(signum, None)
