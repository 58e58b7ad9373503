"""The training loop: `Trainer` and `History`.

Read `Trainer.fit` and `Trainer.train_step` top to bottom: that is the whole loop. Everything
optional (plots, progress bars, early stopping, schedules, checkpoints) is a callback.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .callbacks import Callback, DivergenceGuard
from .device import pick_device
from .hparams import (LOSSES, OPTIMIZERS, check_int, check_lr, make_loss, make_metrics,
                      make_optimizer)

CHECKPOINT_FORMAT = "labkit-checkpoint-1"


class History:
    """What a trainer has seen: one `logs` dict per optimizer step and one per epoch.

    `epochs` rows hold the epoch's mean training loss and the validation scores
    (`val_loss`, `val_accuracy`, ...). `best` is the row with the lowest `monitor` value.
    """

    def __init__(self, monitor: str | None = None):
        self.steps: list[dict] = []
        self.epochs: list[dict] = []
        self.monitor = monitor

    @property
    def best(self) -> dict | None:
        key = self.monitor or ("val_loss" if any("val_loss" in r for r in self.epochs) else "loss")
        rows = [r for r in self.epochs if math.isfinite(r.get(key, math.nan))]
        return min(rows, key=lambda r: r[key]) if rows else None

    def last(self, key: str, default=None):
        """The latest value of `key` in the epoch rows (falling back to the step rows)."""
        for rows in (self.epochs, self.steps):
            for row in reversed(rows):
                if key in row:
                    return row[key]
        return default

    def plot(self, title: str | None = None):
        """The same plotly figure LivePlot draws, after the fact."""
        from .plots import history_figure
        return history_figure(self, title=title)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs, "monitor": self.monitor}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.epochs = list(state["steps"]), list(state["epochs"])
        self.monitor = state.get("monitor")

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        best = self.best
        best_txt = "" if best is None else f", best={ {k: round(v, 4) for k, v in best.items()} }"
        return f"History(steps={len(self.steps)}, epochs={len(self.epochs)}{best_txt})"


class Trainer:
    """Train a model with a readable loop and a few callbacks.

    >>> trainer = Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-3, metrics=["accuracy"])
    >>> history = trainer.fit(data, epochs=10)      # fit again to continue for 10 more
    >>> trainer.evaluate(data.test)                 # {"loss": ..., "accuracy": ...}

    loss: a name from LOSSES ("mse", "cross_entropy", "bce", ...) or any callable(output, target).
    optimizer: a name from OPTIMIZERS ("sgd", "momentum", "adam", ...), a torch.optim.Optimizer
      instance, or an Optimizer class (called as cls(params, lr=lr)).
    metrics: names ("accuracy", "f1", "mae", ...), torchmetrics.Metric instances, or a {name: metric} dict.
    amp: False, True (bf16 on CPU, fp16 + GradScaler on CUDA), "bf16" or "fp16".
    accumulate: micro-batches per optimizer step (gradient accumulation; effective batch = accumulate x batch).

    Under `torchrun --nproc_per_node=N` the same code trains data-parallel: the trainer joins the
    process group (gloo on CPU, nccl on GPU), wraps the model in DistributedDataParallel, gives each
    process its shard of the training data (a loader's batch_size is per process), averages the
    logged loss over processes, and runs plots, progress bars and checkpoints on rank 0 only.
    """

    def __init__(self, model: nn.Module, loss="mse", optimizer="adam", lr: float = 1e-3, metrics=(),
                 device="auto", callbacks=(), grad_clip: float | None = None, amp=False,
                 weight_decay: float = 0.0, accumulate: int = 1, guard: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.device = pick_device(device)
        self.rank, self.world_size = _init_distributed(self)
        self._place(model)
        self._lr = check_lr(lr)
        self.weight_decay = _check_nonneg("weight_decay", weight_decay)
        self.grad_clip = None if grad_clip is None else _check_positive("grad_clip", grad_clip)
        self.accumulate = check_int("accumulate", accumulate, minimum=1)
        self.loss_name, self.loss_fn = make_loss(loss)
        self.metrics = make_metrics(metrics)
        self.optimizer_spec = optimizer
        self.optimizer = make_optimizer(optimizer, self.model.parameters(), self._lr, self.weight_decay)
        if isinstance(optimizer, torch.optim.Optimizer):   # its rate is the one in force
            self._lr = check_lr(self.optimizer.param_groups[0]["lr"])
        self.amp_dtype = _amp_dtype(amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.callbacks = list(callbacks)
        if guard and not any(isinstance(c, DivergenceGuard) for c in self.callbacks):
            self.callbacks.append(DivergenceGuard())
        for cb in self.callbacks:
            _check_callback(cb)
        self.history = History()
        self.step = 0              # optimizer steps taken, over all calls to fit
        self.epoch = 0             # epochs completed, over all calls to fit
        self.stop_reason: str | None = None
        self._stop_requested = False
        self._pending_loader_rng = None
        self._micro_losses: list[float] = []
        self._initial_state = copy.deepcopy(self.model.state_dict())

    # -- hyperparameters that may change between (or during) runs -------------------------------
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        """Set the learning rate; a running fit uses it from the next step on."""
        self._lr = check_lr(value)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr
            group["initial_lr"] = self._lr

    def set_optimizer(self, optimizer, lr: float | None = None) -> None:
        """Switch optimizer (by name, class or instance); its state starts fresh."""
        if lr is not None:
            self._lr = check_lr(lr)
        self.optimizer_spec = optimizer
        self.optimizer = make_optimizer(optimizer, self.model.parameters(), self._lr, self.weight_decay)

    def reset(self) -> None:
        """Back to the initial weights, a fresh optimizer, an empty history."""
        self.model.load_state_dict(self._initial_state)
        self.set_optimizer(self.optimizer_spec)
        self.history = History(self.history.monitor)
        self.step = self.epoch = 0
        self.stop_reason = None

    def set_model(self, model: nn.Module) -> None:
        """Train a new model from scratch with the same settings (a fresh optimizer and history)."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self._place(model)
        self._initial_state = copy.deepcopy(self.model.state_dict())
        self.reset()

    def _place(self, model: nn.Module) -> None:
        """The model on this trainer's device; `net` is what the loop calls (DDP-wrapped under torchrun)."""
        self.model = model.to(self.device)
        self.net = _wrap_ddp(self.model, self.device) if self.world_size > 1 else self.model

    def stop(self, reason: str = "stopped") -> None:
        """Ask a running fit to end at the next batch boundary (safe from any thread)."""
        self.stop_reason = reason
        self._stop_requested = True

    @property
    def stopped(self) -> bool:
        return self._stop_requested

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, data, epochs: int | None = None, steps: int | None = None,
            eval_every: int | None = None, callbacks=()) -> History:
        """Train for `epochs` more epochs or `steps` more optimizer steps; returns the History.

        data: a DataBundle (its val split is evaluated after each epoch) or a DataLoader.
        eval_every: also evaluate every N steps (useful with `steps=` when an epoch is long).
        callbacks: extra callbacks for this call only.
        """
        train_loader, val_loader = _loaders(data)
        if self.world_size > 1:
            train_loader = _shard(train_loader, self.rank, self.world_size)
        if (epochs is None) == (steps is None):
            raise ValueError("pass exactly one of epochs=N or steps=N to fit "
                             f"(got epochs={epochs!r}, steps={steps!r})")
        n_batches = len(train_loader)
        if epochs is not None:
            check_int("epochs", epochs, minimum=0)
            steps_per_epoch = math.ceil(n_batches / self.accumulate)
            self.planned_steps = epochs * steps_per_epoch
        else:
            self.planned_steps = check_int("steps", steps, minimum=0)
        if eval_every is not None:
            check_int("eval_every", eval_every, minimum=1)
        callbacks = self.callbacks + [_check_callback(cb) for cb in callbacks]
        self._train_loader = train_loader
        if self._pending_loader_rng is not None and getattr(train_loader, "generator", None) is not None:
            train_loader.generator.set_state(self._pending_loader_rng)
            self._pending_loader_rng = None
        self._stop_requested, self.stop_reason = False, None
        start_step, start_epoch = self.step, self.epoch
        end_step = start_step + self.planned_steps
        end_epoch = None if epochs is None else start_epoch + epochs

        def done() -> bool:
            return self._stop_requested or (self.step >= end_step if end_epoch is None
                                            else self.epoch >= end_epoch)

        self._call(callbacks, "on_fit_start", {"step": self.step, "epoch": self.epoch})
        with _stop_on_ctrl_c(self):
            self._fit_t0 = time.perf_counter()
            while not done():
                self._call(callbacks, "on_epoch_start", {"epoch": self.epoch})
                if hasattr(train_loader.sampler, "set_epoch"):
                    train_loader.sampler.set_epoch(self.epoch)      # a new shuffle each epoch
                losses, micro = [], 0
                self.model.train()
                for batch in train_loader:
                    # step every `accumulate` micro-batches, and on the last one of the epoch, so
                    # no leftover gradient leaks into the next epoch
                    micro += 1
                    logs = self.train_step(batch, update=micro % self.accumulate == 0
                                           or micro == n_batches)
                    if logs is None:            # a micro-batch of an accumulated step
                        continue
                    losses.append(logs["loss"])
                    self.history.steps.append(logs)
                    self._call(callbacks, "on_batch_end", logs)
                    if eval_every and self.step % eval_every == 0 and not done():
                        self._end_period(callbacks, val_loader, losses, completed_epoch=False)
                        losses = []
                    if done():
                        break
                else:                           # the loader ran out: a whole epoch
                    self.epoch += 1
                    self._end_period(callbacks, val_loader, losses, completed_epoch=True)
                    continue
                break                           # stopped or reached `steps` inside the epoch
            if end_epoch is None and not self._stop_requested and self.step > start_step and \
                    (not self.history.epochs or self.history.epochs[-1]["step"] != self.step):
                self._end_period(callbacks, val_loader, losses, completed_epoch=False)
        self._call(callbacks, "on_fit_end", {"step": self.step, "epoch": self.epoch,
                                             "stop_reason": self.stop_reason})
        if self.world_size > 1:
            torch.distributed.barrier()     # every process returns once rank 0 has saved its files
        return self.history

    def train_step(self, batch, update: bool = True) -> dict | None:
        """One forward/backward pass; an optimizer step when `update` (see `accumulate`)."""
        x, y = self._to_device(batch)
        with self._autocast():
            loss = self.compute_loss(self.net(x), y)
        loss_value = self._mean_over_processes(loss)
        if not math.isfinite(loss_value):       # never step on a NaN: the DivergenceGuard decides
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            return {"step": self.step, "epoch": self.epoch, "loss": loss_value, "lr": self.lr_now}
        self.scaler.scale(loss / self.accumulate if self.accumulate > 1 else loss).backward()
        if not update:
            self._micro_losses.append(loss_value)
            return None
        logs = {}
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            logs["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self._micro_losses:                  # report the mean over the accumulated micro-batches
            loss_value = (sum(self._micro_losses) + loss_value) / (len(self._micro_losses) + 1)
            self._micro_losses = []
        return {"step": self.step, "epoch": self.epoch, "loss": loss_value, "lr": self.lr_now, **logs}

    def _mean_over_processes(self, loss: torch.Tensor) -> float:
        if self.world_size == 1:
            return loss.item()
        total = loss.detach().clone()
        torch.distributed.all_reduce(total)
        return total.item() / self.world_size

    def compute_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of a batch; sequence logits [B, T, V] are flattened for cross-entropy."""
        return self.loss_fn(*_align(self.loss_name, output, target))

    @torch.no_grad()
    def evaluate(self, loader) -> dict:
        """Mean loss and each metric over a loader, in eval mode: {"loss": ..., "accuracy": ...}."""
        if loader is None:
            raise ValueError("evaluate() needs a DataLoader; this DataBundle split is None")
        loader = loader if isinstance(loader, DataLoader) else _loaders(loader)[1]
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        for metric in self.metrics.values():
            metric.reset()
            metric.to(self.device)
        for batch in loader:
            x, y = self._to_device(batch)
            with self._autocast():
                output = self.model(x)
                loss = self.compute_loss(output, y)
            total += loss.item() * len(y)
            count += len(y)
            for metric in self.metrics.values():
                metric.update(*_metric_inputs(self.loss_name, output.float(), y))
        self.model.train(was_training)
        scores = {"loss": total / max(count, 1)}
        scores.update({name: float(m.compute()) for name, m in self.metrics.items()})
        return scores

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Model outputs for a batch of inputs, in eval mode, on the CPU."""
        was_training = self.model.training
        self.model.eval()
        out = self.model(x.to(self.device)).cpu()
        self.model.train(was_training)
        return out

    @property
    def lr_now(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, path) -> Path:
        """Write model, optimizer, callbacks' state (e.g. the LR schedule), counters, history and
        every RNG state, atomically (a temp file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        loader_gen = getattr(getattr(self, "_train_loader", None), "generator", None)
        state = {
            "format": CHECKPOINT_FORMAT,
            "model_class": type(_unwrap(self.model)).__name__,
            "model": _unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks
                          if hasattr(cb, "state_dict")},
            "step": self.step, "epoch": self.epoch, "lr": self._lr,
            "history": self.history.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "numpy": _numpy_state_to_torch(np.random.get_state()),
                    "random": random.getstate(),
                    "loader": None if loader_gen is None else loader_gen.get_state()},
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
            os.replace(tmp, path)                # atomic: a crash never leaves half a checkpoint
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def load_checkpoint(self, path) -> dict:
        """Restore everything `save_checkpoint` wrote; the next fit continues bit-identically."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"checkpoint file {str(path)!r} is not a readable labkit checkpoint "
                             f"(corrupt, truncated or not a torch file): {e}") from e
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint file {str(path)!r} was not written by "
                             "Trainer.save_checkpoint (no labkit checkpoint format marker)")
        model = _unwrap(self.model)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ValueError(f"checkpoint file {str(path)!r} holds weights of a different model "
                             f"({state.get('model_class')}) than this trainer's "
                             f"({type(model).__name__}): {str(e).splitlines()[0]} ...") from e
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        for cb in self.callbacks:
            if hasattr(cb, "load_state_dict") and type(cb).__name__ in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][type(cb).__name__])
        self.step, self.epoch, self._lr = state["step"], state["epoch"], state["lr"]
        self.history.load_state_dict(state["history"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(_numpy_state_from_torch(rng["numpy"]))
        random.setstate(_as_tuple(rng["random"]))
        self._pending_loader_rng = rng["loader"]
        return state

    # -- helpers ---------------------------------------------------------------------------------
    def _end_period(self, callbacks, val_loader, losses, completed_epoch: bool) -> None:
        logs = {"step": self.step, "epoch": self.epoch, "completed_epoch": completed_epoch,
                "loss": float(np.mean(losses)) if losses else math.nan, "lr": self.lr_now,
                "time": time.perf_counter() - self._fit_t0}
        if val_loader is not None and not self._stop_requested:
            logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
        self.history.epochs.append(logs)
        self._call(callbacks, "on_epoch_end", logs)

    def _autocast(self):
        """Mixed precision when amp is on; otherwise nothing (not even a disabled autocast)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _call(self, callbacks, hook: str, logs: dict) -> None:
        for cb in callbacks:
            if self.rank == 0 or not cb.main_process_only:
                getattr(cb, hook)(self, logs)

    def _to_device(self, batch):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise TypeError("each batch must be an (inputs, targets) pair; got "
                            f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                         if isinstance(batch, (list, tuple)) else ""))
        nb = self.device.type == "cuda"
        return batch[0].to(self.device, non_blocking=nb), batch[1].to(self.device, non_blocking=nb)

    def __repr__(self) -> str:
        return (f"Trainer(model={type(self.model).__name__}, loss={self.loss_name!r}, "
                f"optimizer={self.optimizer.__class__.__name__}, lr={self._lr:g}, device={self.device}, "
                f"step={self.step}, epoch={self.epoch})")


# -- small pieces the loop uses ---------------------------------------------------------------------
def _loaders(data):
    """(train, val) loaders from a DataBundle or a DataLoader."""
    if isinstance(data, DataLoader):
        return data, None
    if hasattr(data, "train") and isinstance(data.train, DataLoader):
        return data.train, getattr(data, "val", None)
    raise TypeError(f"data must be a labkit DataBundle or a torch DataLoader, got {type(data).__name__}")


def _align(loss_name, output, target):
    """Shapes the built-in losses expect: [B,T,V] logits -> [B*T, V]; [B,1] vs [B] squeezed."""
    if loss_name in ("cross_entropy", "nll") and output.dim() == 3:
        return output.reshape(-1, output.size(-1)), target.reshape(-1)
    if loss_name in ("mse", "l1", "mae", "huber", "bce") and output.shape != target.shape:
        if output.numel() == target.numel():
            target = target.reshape(output.shape)
    if loss_name == "bce":
        target = target.to(output.dtype)
    return output, target


def _metric_inputs(loss_name, output, target):
    if output.dim() == 3:                                  # sequence logits
        return output.reshape(-1, output.size(-1)), target.reshape(-1)
    if loss_name == "bce":                                 # binary: probabilities
        return torch.sigmoid(output).reshape(-1), target.reshape(-1).long()
    if output.dim() == 2 and output.size(1) == 1 and target.dim() == 1:
        return output.reshape(-1), target
    return output, target


def _amp_dtype(amp, device: torch.device):
    if amp is False or amp is None:
        return None
    if amp is True:
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if amp not in table:
        raise ValueError(f"amp must be False, True, 'bf16' or 'fp16', got {amp!r}")
    if table[amp] == torch.float16 and device.type == "cpu":
        raise ValueError("amp='fp16' needs a GPU; on the CPU use amp='bf16' (or amp=True)")
    return table[amp]


def _init_distributed(trainer) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun with WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist
    if trainer.device.type == "cuda":
        trainer.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(trainer.device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if trainer.device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _shard(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    """The same loader over this process's shard of the dataset (the batch size is per process)."""
    from torch.utils.data import DistributedSampler, RandomSampler
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    shuffle = isinstance(loader.sampler, RandomSampler)
    seed = int(loader.generator.initial_seed()) if loader.generator is not None else 0
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                 seed=seed, drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      drop_last=loader.drop_last, pin_memory=loader.pin_memory)


def _check_callback(cb):
    if not isinstance(cb, Callback):
        raise TypeError(f"callbacks must be labkit.Callback instances, got {type(cb).__name__}; "
                        "subclass lk.Callback and override the hooks you need")
    return cb


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _check_nonneg(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / torch.compile wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _numpy_state_to_torch(state):
    kind, keys, pos, has_gauss, cached = state
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_torch(s):
    return (s["kind"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached"])


def _as_tuple(x):
    return tuple(_as_tuple(i) for i in x) if isinstance(x, (list, tuple)) else x


@contextlib.contextmanager
def _stop_on_ctrl_c(trainer: Trainer):
    """Ctrl-C (or a Jupyter kernel interrupt) ends the fit at the next batch boundary, keeping the
    history and weights; a second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if trainer.stopped:                      # second press: the usual KeyboardInterrupt
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        trainer.stop("interrupted")
        print(f"Interrupted: stopping after step {trainer.step}; history and weights are kept "
              "(press again to abort at once).", flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
