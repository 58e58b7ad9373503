"""The training loop: `Trainer` and `History`.

Read `Trainer.fit`, `Trainer._run_epoch` and `Trainer.train_step` top to bottom: that is the whole
loop. Everything optional (plots, progress bars, early stopping, schedules, checkpoints) is a
callback. Everything a run is (weights, optimizer, callbacks' state, counters, history, random
generators, the position inside the current epoch) goes through one pair of methods,
`state_dict()` / `load_state_dict()`: checkpoints, `lr_find` and `reset()` are built on them.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .callbacks import Callback, DivergenceGuard
from .checks import check_bool, check_instance, check_int, check_lr, check_number, check_positive
from .device import pick_device
from .factories import make_loss, make_metrics, make_optimizer, rebuild_optimizer
from .models.utils import eval_mode
from .trainstate import (FORMAT, EpochCursor, check_state, plain_numbers, rng_kept, rng_states,
                         set_rng_states, unwrap)

CHECKPOINT_FORMAT = FORMAT


class History:
    """What a trainer has seen: one `logs` dict per optimizer step and one per epoch.

    `epochs` rows hold the epoch's mean training loss and the validation scores
    (`val_loss`, `val_accuracy`, ...). `best` is the row with the lowest `monitor` value.
    Every value is a plain Python number (so a checkpoint holding the history always loads).
    """

    def __init__(self, monitor: str | None = None):
        self.steps: list[dict] = []
        self.epochs: list[dict] = []
        self.monitor = monitor

    @property
    def best(self) -> dict | None:
        key = self.monitor or ("val_loss" if any("val_loss" in r for r in self.epochs) else "loss")
        rows = [r for r in self.epochs if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
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
        self.steps, self.epochs = [dict(r) for r in state["steps"]], [dict(r) for r in state["epochs"]]
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
      instance built on this model's parameters, or an Optimizer class (called as cls(params, lr=lr)).
      `reset()` and `set_model()` build a fresh one of the same class and options in every case.
    metrics: names ("accuracy", "f1", "mae", ...), torchmetrics.Metric instances, or a {name: metric} dict.
    amp: False, True (bf16 on CPU, fp16 + GradScaler on CUDA), "bf16" or "fp16".
    accumulate: micro-batches per optimizer step (gradient accumulation; effective batch = accumulate x batch).

    A trainer runs one fit at a time: a second `fit` while one runs (from another thread, or a
    callback) raises at once. A fit that ends inside an epoch (steps=, stop(), Ctrl-C) keeps the
    epoch's place: the next fit continues it, so fit(steps=4) twice trains exactly as fit(steps=8).

    Under `torchrun --nproc_per_node=N` the same code trains data-parallel: the trainer joins the
    process group (gloo on CPU, nccl on GPU), wraps the model in DistributedDataParallel, gives each
    process its shard of the training data (a loader's batch_size is per process), averages the
    logged loss over processes, and runs plots, progress bars and checkpoints on rank 0 only.
    """

    def __init__(self, model: nn.Module, loss="mse", optimizer="adam", lr: float = 1e-3, metrics=(),
                 device="auto", callbacks=(), grad_clip: float | None = None, amp=False,
                 weight_decay: float = 0.0, accumulate: int = 1, guard: bool = True):
        check_instance("model", model, nn.Module, "a torch.nn.Module")
        self._lr = check_lr(lr)
        self.weight_decay = check_number("weight_decay", weight_decay, minimum=0,
                                         hint="e.g. 1e-4; 0 turns it off")
        self.grad_clip = None if grad_clip is None else check_positive(
            "grad_clip", grad_clip, hint="the largest gradient norm, e.g. 1.0; None turns clipping off")
        self.accumulate = check_int("accumulate", accumulate, minimum=1)
        check_bool("guard", guard)
        self.loss_name, self.loss_fn = make_loss(loss)
        self.metrics = make_metrics(metrics)
        self.callbacks = _check_callbacks(callbacks)
        if guard and not any(isinstance(c, DivergenceGuard) for c in self.callbacks):
            self.callbacks.append(DivergenceGuard())
        self.device = pick_device(device)
        self.amp_dtype = _amp_dtype(amp, self.device)
        self.rank, self.world_size = _init_distributed(self)
        self._place(model)
        self._use_optimizer(optimizer)
        self.scaler = self._fresh_scaler()
        self.history = History()
        self.step = 0              # optimizer steps taken, over all calls to fit
        self.epoch = 0             # epochs completed, over all calls to fit
        self.planned_steps = 0     # optimizer steps the current (or last) fit set out to take
        self.stop_reason: str | None = None
        self._stop_requested = False
        self._micro_losses: list[float] = []
        self._cursor: EpochCursor | None = None   # the epoch in progress (see _run_epoch)
        self._resume: dict | None = None           # an epoch position to re-create at the next fit
        self._pending_loader_rng = None            # a loader generator state for the next fit
        self._loader: DataLoader | None = None     # the training loader of the last fit
        self._fit_lock = threading.Lock()
        self._running: str | None = None           # which fit holds the lock, for the message
        self._fit_thread: threading.Thread | None = None

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
        for options in self._group_options:      # what a fresh optimizer (reset) starts from
            options["lr"] = self._lr

    def set_optimizer(self, optimizer, lr: float | None = None) -> None:
        """Switch optimizer (by name, class or instance); its state starts fresh."""
        self._refuse_while_fitting("set_optimizer()")
        if lr is not None:
            self._lr = check_lr(lr)
        self._use_optimizer(optimizer)

    def _use_optimizer(self, spec) -> None:
        """Build (or check and adopt) the optimizer, and remember its class and options so that
        reset() and set_model() can build a fresh one alike."""
        if isinstance(spec, torch.optim.Optimizer):
            _check_optimizer_instance(spec, self.model, self.weight_decay)
        self.optimizer = make_optimizer(spec, self.model.parameters(), self._lr, self.weight_decay)
        if isinstance(spec, torch.optim.Optimizer):       # its rate is the one in force
            self._lr = check_lr(spec.param_groups[0]["lr"])
        self.optimizer_spec = spec
        self._group_options = [{k: v for k, v in g.items() if k not in ("params", "initial_lr")}
                               for g in self.optimizer.param_groups]

    def _fresh_optimizer(self, same_parameters: bool) -> torch.optim.Optimizer:
        """A new optimizer of the same class and options: over the same parameter groups, or over
        a new model's trainable parameters (one group; per-group rates cannot be carried over)."""
        if same_parameters:
            groups = [{**opts, "params": g["params"]}
                      for g, opts in zip(self.optimizer.param_groups, self._group_options)]
            if len(groups) == 1:
                groups[0]["lr"] = self._lr
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
            if len(self._group_options) > 1:
                warnings.warn(f"the optimizer had {len(self._group_options)} parameter groups; the new "
                              f"model gets one group with lr={self._lr:g} (pass a new optimizer with "
                              "set_optimizer() for per-group rates)", stacklevel=3)
            groups = [{**self._group_options[0], "lr": self._lr, "params": params}]
        optimizer = rebuild_optimizer(self.optimizer, groups)
        self._group_options = [{k: v for k, v in g.items() if k not in ("params", "initial_lr")}
                               for g in optimizer.param_groups]
        return optimizer

    def _fresh_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def reset(self) -> None:
        """Back to the initial weights, a fresh optimizer (same class, rate and options), an empty
        history and every callback afresh (EarlyStopping forgets its best, schedules restart)."""
        self._refuse_while_fitting("reset()")
        unwrap(self.model).load_state_dict(self._initial_state)
        self.optimizer = self._fresh_optimizer(same_parameters=True)
        self._forget_run()

    def set_model(self, model: nn.Module) -> None:
        """Train a new model from scratch with the same settings (a fresh optimizer of the same
        class and options, an empty history, every callback afresh)."""
        self._refuse_while_fitting("set_model()")
        check_instance("model", model, nn.Module, "a torch.nn.Module")
        self._place(model)
        self.optimizer = self._fresh_optimizer(same_parameters=False)
        self._forget_run()

    def _forget_run(self) -> None:
        self.scaler = self._fresh_scaler()
        for cb in self.callbacks:
            cb.reset()
        self.history = History(self.history.monitor)
        self.step = self.epoch = 0
        self.stop_reason, self._stop_requested = None, False
        self._micro_losses = []
        self._cursor = self._resume = self._pending_loader_rng = None

    def _place(self, model: nn.Module) -> None:
        """The model on this trainer's device; `net` is what the loop calls (DDP-wrapped under torchrun)."""
        self.model = model.to(self.device)
        self.net = _wrap_ddp(self.model, self.device) if self.world_size > 1 else self.model
        self._initial_state = copy.deepcopy(unwrap(self.model).state_dict())

    def stop(self, reason: str = "stopped") -> None:
        """Ask a running fit to end at the next batch boundary (safe from any thread)."""
        self.stop_reason = str(reason)
        self._stop_requested = True

    @property
    def stopped(self) -> bool:
        return self._stop_requested

    @property
    def diverged(self) -> bool:
        """True when the last fit was ended by the DivergenceGuard (its message is the stop reason)."""
        return any(isinstance(cb, DivergenceGuard) and cb.message is not None and cb.message == self.stop_reason
                   for cb in self.callbacks)

    @property
    def is_fitting(self) -> bool:
        """True while a fit runs (in any thread)."""
        return self._fit_lock.locked()

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, data, epochs: int | None = None, steps: int | None = None,
            eval_every: int | None = None, callbacks=()) -> History:
        """Train for `epochs` more epochs or `steps` more optimizer steps; returns the History.

        data: a DataBundle (its val split is evaluated after each epoch) or a DataLoader.
        epochs: whole epochs; if the last fit ended inside an epoch, its rest counts as the first.
        eval_every: also evaluate every N steps (useful with `steps=` when an epoch is long).
        callbacks: extra callbacks for this call only.
        """
        if (epochs is None) == (steps is None):
            raise ValueError("pass exactly one of epochs=N or steps=N to fit "
                             f"(got epochs={epochs!r}, steps={steps!r})")
        if epochs is not None:
            epochs = check_int("epochs", epochs, minimum=0)
        else:
            steps = check_int("steps", steps, minimum=0)
        if eval_every is not None:
            check_int("eval_every", eval_every, minimum=1)
        callbacks = self.callbacks + _check_callbacks(callbacks)
        what = f"fit(epochs={epochs})" if steps is None else f"fit(steps={steps})"
        with self._one_fit_at_a_time(what):
            train_loader, val_loader = self._fit_loaders(data)
            steps_per_epoch = math.ceil(len(train_loader) / self.accumulate)
            cursor = self._continue_epoch(train_loader)
            if epochs is not None:      # whole epochs, converted once to a step target; the rest
                done = 0 if cursor is None or not epochs else math.ceil(cursor.consumed / self.accumulate)
                steps = epochs * steps_per_epoch - done    # of an unfinished epoch counts as one
            self.planned_steps = steps
            target = self.step + steps
            self._stop_requested, self.stop_reason = False, None
            self._micro_losses = []
            self.optimizer.zero_grad(set_to_none=True)
            self._fit_t0 = time.perf_counter()
            self._call(callbacks, "on_fit_start", {"step": self.step, "epoch": self.epoch,
                                                   "planned_steps": self.planned_steps,
                                                   "steps_per_epoch": steps_per_epoch})
            with _stop_on_ctrl_c(self):
                while self.step < target and not self._stop_requested:
                    self._run_epoch(train_loader, val_loader, callbacks, target, eval_every)
            self._call(callbacks, "on_fit_end", {"step": self.step, "epoch": self.epoch,
                                                 "stop_reason": self.stop_reason})
        if self.world_size > 1:
            torch.distributed.barrier()     # every process returns once rank 0 has saved its files
        return self.history

    def _run_epoch(self, loader, val_loader, callbacks, target: int, eval_every: int | None) -> None:
        """Train until the epoch ends, the fit reaches `target` steps, or a stop is requested.

        An epoch that ends early stays in `self._cursor`, and the next call continues it.
        A row goes into history.epochs at the end of the epoch, every `eval_every` steps and
        where the fit reaches its target.
        """
        if self._cursor is None:                         # a new epoch
            self._call(callbacks, "on_epoch_start", {"epoch": self.epoch})
            self._cursor = EpochCursor(loader, self.epoch)
        cursor = self._cursor
        self.model.train()
        for batch in cursor:
            # step every `accumulate` micro-batches, and on the last one of the epoch, so no
            # leftover gradient leaks into the next epoch
            last = cursor.consumed == cursor.n_batches
            logs = self.train_step(batch, update=last or cursor.consumed % self.accumulate == 0)
            if logs is None:                             # a micro-batch of an accumulated step
                continue
            cursor.losses.append(logs["loss"])
            self.history.steps.append(logs)
            self._call(callbacks, "on_batch_end", logs)
            plain_numbers(logs)
            if last:
                break
            if self._stop_requested:
                return
            if self.step >= target or (eval_every and self.step % eval_every == 0):
                losses, cursor.losses = cursor.losses, []    # (a checkpoint taken now starts afresh)
                self._end_period(callbacks, val_loader, losses, completed_epoch=False)
            if self.step >= target:
                return
        if cursor.consumed == 0:
            raise RuntimeError(f"the training loader yielded no batch in epoch {self.epoch} although "
                               f"its length is {cursor.n_batches}; check its dataset and sampler")
        self._cursor = None                              # the loader ran out: a whole epoch
        self.epoch += 1
        self._end_period(callbacks, val_loader, cursor.losses, completed_epoch=True)

    def train_step(self, batch, update: bool = True) -> dict | None:
        """One forward/backward pass; an optimizer step when `update` (see `accumulate`)."""
        x, y = self._to_device(batch)
        with self._autocast():
            loss = self.compute_loss(self.net(x), y)
        loss_value = self._mean_over_processes(loss)
        if not math.isfinite(loss_value):       # never step on a NaN: the DivergenceGuard decides
            self.optimizer.zero_grad(set_to_none=True)
            self._micro_losses = []
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
        loss = self.loss_fn(*_align(self.loss_name, output, target))
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            got = f"shape {list(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"the loss must be one number per batch (a 0-d tensor), got {got}; "
                             "use reduction='mean' (the default) in the loss")
        return loss

    @torch.no_grad()
    def evaluate(self, loader) -> dict:
        """Mean loss and each metric over a loader, in eval mode: {"loss": ..., "accuracy": ...}.

        Evaluating draws no random numbers that training would see, so an evaluation never
        changes the course of a run."""
        self._refuse_from_another_thread("evaluate()")
        if loader is None:
            raise ValueError("evaluate() needs a DataLoader; this DataBundle split is None")
        loader = loader if isinstance(loader, DataLoader) else _loaders(loader, "loader")[1]
        if loader is None:
            raise ValueError("evaluate() was given a DataBundle without a validation split; "
                             "pass a loader, e.g. trainer.evaluate(data.test)")
        _check_not_empty(loader, "the evaluation loader")
        total, count = 0.0, 0
        for metric in self.metrics.values():
            metric.reset()
            metric.to(self.device)
        with eval_mode(self.model), rng_kept():
            for batch in loader:
                x, y = self._to_device(batch)
                with self._autocast():
                    output = self.model(x)
                    loss = self.compute_loss(output, y)
                total += loss.item() * len(y)
                count += len(y)
                for metric in self.metrics.values():
                    metric.update(*_metric_inputs(self.loss_name, output.float(), y))
        if count == 0:
            raise ValueError("the evaluation loader yielded no sample; a loss over nothing is undefined")
        scores = {"loss": total / count}
        scores.update({name: float(m.compute()) for name, m in self.metrics.items()})
        return scores

    @torch.no_grad()
    def predict(self, x) -> torch.Tensor:
        """Model outputs for a batch of inputs (a tensor, numpy array or nested list), in eval
        mode, on the CPU."""
        self._refuse_from_another_thread("predict()")
        if not isinstance(x, torch.Tensor):
            if not isinstance(x, (np.ndarray, list, tuple)):
                raise TypeError(f"predict() takes a torch.Tensor (or a numpy array) of inputs, got "
                                f"{type(x).__name__}; for a DataLoader use evaluate() or loop over it")
            x = torch.as_tensor(np.asarray(x))
        if x.is_floating_point():          # numpy gives float64; the model computes in its own dtype
            dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), x.dtype)
            x = x.to(dtype)
        with eval_mode(self.model):
            return self.model(x.to(self.device)).cpu()

    @property
    def lr_now(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- the state of a run: checkpoints, lr_find and reset go through these ------------------------
    def state_dict(self) -> dict:
        """Everything a run is: weights, optimizer (class, options, state), scaler, every
        callback's state, counters, history, random generators and the place in the current
        epoch. Tensors are shared with the live objects: copy.deepcopy it to keep a snapshot."""
        model = unwrap(self.model)
        return {
            "format": CHECKPOINT_FORMAT,
            "model_class": type(model).__name__,
            "model": model.state_dict(),
            "optimizer_class": type(self.optimizer).__name__,
            "optimizer_defaults": {k: v for k, v in self.optimizer.defaults.items()
                                   if isinstance(v, (bool, int, float, str, tuple, type(None)))},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "callbacks": {key: cb.state_dict() for key, cb in self._stateful_callbacks()},
            "step": self.step, "epoch": self.epoch, "lr": self._lr,
            "history": self.history.state_dict(),
            "rng": rng_states(),
            "loader": {"generator": self._loader_generator_state(),
                       "position": self._cursor.position() if self._cursor is not None else self._resume},
        }

    def _loader_generator_state(self):
        """The shuffle generator of the training loader now (or the one waiting for the next fit)."""
        if self._pending_loader_rng is not None or self._loader is None or self._loader.generator is None:
            return self._pending_loader_rng
        return self._loader.generator.get_state()

    def load_state_dict(self, state: dict, source: str = "the state") -> None:
        """Restore what `state_dict()` returned. Every part is checked against this trainer
        first (model shapes, optimizer class and groups, callbacks, amp); on a mismatch nothing
        changes. The next fit continues exactly where the saved run was."""
        self._refuse_while_fitting("load_state_dict()")
        self._load_state_unlocked(state, source)

    def _load_state_unlocked(self, state: dict, source: str = "the state") -> None:
        check_state(self, state, source)
        backup = copy.deepcopy(self.state_dict())
        try:
            self._apply_state(state)
        except BaseException:
            self._apply_state(backup)
            raise

    def _apply_state(self, state: dict) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        for key, cb in self._stateful_callbacks():
            cb.load_state_dict(state["callbacks"][key])
        self.step, self.epoch, self._lr = int(state["step"]), int(state["epoch"]), float(state["lr"])
        self.history.load_state_dict(state["history"])
        set_rng_states(state["rng"])
        self._cursor, self._resume = None, state["loader"]["position"]
        self._pending_loader_rng = state["loader"]["generator"]
        self._micro_losses = []
        self.stop_reason, self._stop_requested = None, False
        for options, group in zip(self._group_options, self.optimizer.param_groups):
            options["lr"] = group.get("initial_lr", group["lr"])

    def _stateful_callbacks(self):
        """(key, callback) for each callback with a state_dict; the key is the class name and its
        count among callbacks of that class ("EarlyStopping#0"), stable when others are added."""
        seen: dict[str, int] = {}
        for cb in self.callbacks:
            if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
                name = type(cb).__name__
                yield f"{name}#{seen.get(name, 0)}", cb
                seen[name] = seen.get(name, 0) + 1

    def save_checkpoint(self, path) -> Path:
        """Write `state_dict()` atomically (a temp file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
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
        """Restore everything `save_checkpoint` wrote; the next fit continues bit-identically.
        The file is checked against this trainer before anything changes."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"checkpoint file {str(path)!r} is not a readable labkit checkpoint "
                             f"(corrupt, truncated or not a torch file): {e}") from e
        self.load_state_dict(state, source=f"checkpoint file {str(path)!r}")
        return state

    # -- helpers ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _one_fit_at_a_time(self, what: str):
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(f"this trainer is already running {self._running}; wait for it to end "
                               "or call trainer.stop()")
        self._running, self._fit_thread = f"{what} started at step {self.step}", threading.current_thread()
        try:
            yield
        finally:
            self._running = self._fit_thread = None
            self._fit_lock.release()

    def _refuse_while_fitting(self, what: str) -> None:
        if self.is_fitting:
            raise RuntimeError(f"{what} cannot run while this trainer is running {self._running}; "
                               "call trainer.stop() and wait for the fit to end")

    def _refuse_from_another_thread(self, what: str) -> None:
        thread = self._fit_thread
        if thread is not None and thread is not threading.current_thread():
            raise RuntimeError(f"{what} from another thread would switch the model to eval mode under "
                               f"the running {self._running}; call it when the fit has ended "
                               "(or from a callback)")

    def _fit_loaders(self, data):
        """(train, val) loaders of `data`, checked: each must have at least one batch."""
        train_loader, val_loader = _loaders(data, "data")
        _check_not_empty(train_loader, "the training loader")
        if val_loader is not None:
            _check_not_empty(val_loader, "the validation loader")
        if self.world_size > 1:
            train_loader = _shard(train_loader, self.rank, self.world_size)
        return train_loader, val_loader

    def _continue_epoch(self, loader) -> "EpochCursor | None":
        """The epoch this fit continues: the one in progress on this loader, one re-created from a
        saved position (a checkpoint, or another loader of the same length), or None: a new epoch."""
        if self._cursor is not None and self._cursor.loader is not loader:
            self._resume, self._cursor = self._cursor.position(), None
        if self._resume is not None:
            position, self._resume = self._resume, None
            if position["n_batches"] != len(loader):
                warnings.warn(f"training had stopped after batch {position['consumed']} of "
                              f"{position['n_batches']} in epoch {position['epoch']}, but this loader "
                              f"has {len(loader)} batches per epoch; the epoch starts again from its "
                              "first batch", RuntimeWarning, stacklevel=3)
            elif position["consumed"] > 0:
                self._cursor = EpochCursor(loader, position["epoch"], position)
        if self._pending_loader_rng is not None and loader.generator is not None:
            loader.generator.set_state(self._pending_loader_rng)
        self._pending_loader_rng = None
        self._loader = loader
        return self._cursor

    def _end_period(self, callbacks, val_loader, losses, completed_epoch: bool) -> None:
        logs = {"step": self.step, "epoch": self.epoch, "completed_epoch": completed_epoch,
                "loss": float(np.mean(losses)) if losses else math.nan, "lr": self.lr_now,
                "time": time.perf_counter() - self._fit_t0}
        if val_loader is not None and not self._stop_requested:   # Stop answers now, not after an evaluation
            logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
        self.history.epochs.append(logs)
        self._call(callbacks, "on_epoch_end", logs)
        plain_numbers(logs)

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


def _check_not_empty(loader: DataLoader, what: str) -> None:
    try:
        n = len(loader)
    except TypeError:
        raise TypeError(f"{what} has no length (an IterableDataset without __len__); the trainer "
                        "needs to know how many batches an epoch has: give the dataset a __len__") from None
    if n == 0:
        try:
            size = f"{len(loader.dataset)} samples"
        except TypeError:
            size = "an unknown number of samples"
        raise ValueError(f"{what} has no batch: its dataset has {size}, batch_size={loader.batch_size}, "
                         f"drop_last={loader.drop_last}; use more data, a smaller batch_size or "
                         "drop_last=False")


def _check_callbacks(callbacks) -> list:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or (isinstance(callbacks, type) and issubclass(callbacks, Callback)):
        name = callbacks.__name__ if isinstance(callbacks, type) else type(callbacks).__name__
        raise TypeError(f"callbacks must be a list, got a single {name}: write callbacks=[{name}(...)]")
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of labkit.Callback instances, got "
                        f"{type(callbacks).__name__} {callbacks!r:.60}")
    for cb in callbacks:
        if isinstance(cb, type) and issubclass(cb, Callback):
            raise TypeError(f"callbacks must be instances, got the class {cb.__name__}: "
                            f"write {cb.__name__}() with parentheses")
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be labkit.Callback instances, got {type(cb).__name__}; "
                            "subclass lk.Callback and override the hooks you need")
    return list(callbacks)


def _check_optimizer_instance(optimizer: torch.optim.Optimizer, model: nn.Module, weight_decay: float):
    """An optimizer instance must train this model's parameters; weight_decay is applied to it."""
    mine = {id(p) for p in model.parameters()}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    foreign = sum(id(p) not in mine for p in params)
    if foreign:
        raise ValueError(f"the optimizer was built on {foreign} of {len(params)} parameter tensors that "
                         f"are not this model's ({type(model).__name__}); build it from the model you "
                         "pass, e.g. torch.optim.Adam(model.parameters(), lr=1e-3), or pass "
                         "optimizer='adam'")
    if weight_decay:
        if "weight_decay" not in optimizer.defaults:
            raise ValueError(f"weight_decay={weight_decay:g} was given but {type(optimizer).__name__} has "
                             "no weight_decay option; pass weight_decay=0 or another optimizer")
        for group in optimizer.param_groups:
            if group["weight_decay"] not in (0, weight_decay):
                raise ValueError(f"weight_decay={weight_decay:g} was given to the Trainer but the "
                                 f"optimizer instance already has weight_decay={group['weight_decay']:g}; "
                                 "set it in one place")
            group["weight_decay"] = weight_decay
        optimizer.defaults["weight_decay"] = weight_decay


# -- small pieces the loop uses ---------------------------------------------------------------------
def _loaders(data, name: str = "data"):
    """(train, val) loaders from a DataBundle or a DataLoader."""
    if isinstance(data, DataLoader):
        return data, None
    if hasattr(data, "train") and isinstance(data.train, DataLoader):
        val = getattr(data, "val", None)
        if val is not None and not isinstance(val, DataLoader):
            raise TypeError(f"{name}.val must be a DataLoader or None, got {type(val).__name__}")
        return data.train, val
    hint = " (wrap tensors in a DataLoader(TensorDataset(x, y), batch_size=...))" \
        if isinstance(data, (torch.Tensor, np.ndarray, list, tuple)) else ""
    raise TypeError(f"{name} must be a labkit DataBundle or a torch DataLoader, got "
                    f"{type(data).__name__}{hint}")


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
    if not isinstance(amp, str):
        raise ValueError(f"amp must be False, True, 'bf16' or 'fp16', got {type(amp).__name__} {amp!r}")
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if amp not in table:
        raise ValueError(f"amp must be False, True, 'bf16' or 'fp16', got {amp!r}")
    if table[amp] == torch.float16 and device.type == "cpu":
        raise ValueError("amp='fp16' needs a GPU; on the CPU use amp='bf16' (or amp=True)")
    return table[amp]


def _init_distributed(trainer) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun with WORLD_SIZE > 1."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        world_size = int(raw)
    except ValueError:
        raise ValueError(f"the environment variable WORLD_SIZE={raw!r} is not an int; unset it "
                         "(torchrun sets it for each process)") from None
    if world_size <= 1:
        return 0, 1
    import torch.distributed as dist
    if not dist.is_initialized():
        # torchrun sets all of these; a WORLD_SIZE set by hand would otherwise wait for peers
        # that never come
        missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
        if missing:
            raise RuntimeError(f"WORLD_SIZE={world_size} is set but {', '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} not: launch with "
                               "`torchrun --nproc_per_node=N script.py`, or unset WORLD_SIZE to train "
                               "in one process")
        rank = os.environ["RANK"]
        if not rank.isdigit() or int(rank) >= world_size:
            raise RuntimeError(f"RANK={rank!r} must be an int in [0, {world_size - 1}] "
                               f"(WORLD_SIZE={world_size}); launch with torchrun")
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
