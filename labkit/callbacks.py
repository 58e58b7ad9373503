"""Callbacks: small objects the Trainer calls at a few moments of the loop.

Each hook gets the trainer and a `logs` dict of plain floats. A callback may read anything on the
trainer and may call `trainer.stop(reason)`; it never runs the loop itself. Write your own:

    class PrintEvery(lk.Callback):
        def on_epoch_end(self, trainer, logs):
            print(logs["epoch"], logs["loss"])
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path

import torch

from .i18n import _
from .checks import (check_bool, check_fraction, check_int, check_lr, check_number, check_str,
                     suggest)


class Callback:
    """Override any of these; each is called with (trainer, logs).

    Under torchrun, a callback with `main_process_only = True` (plots, progress bars, checkpoints)
    runs on rank 0 alone; the others run on every process so that all of them stop together.

    A callback that keeps state across fits (a best value, a schedule) also defines
    `state_dict()` / `load_state_dict(state)`, which checkpoints save and restore, and `reset()`,
    which `trainer.reset()` and `trainer.set_model()` call to start it afresh.
    `on_fit_start`'s logs hold `planned_steps` (the optimizer steps this fit will take) and
    `steps_per_epoch`.
    """
    main_process_only = False

    def reset(self):
        """Forget everything learned from earlier fits (called by trainer.reset() and set_model())."""

    def on_fit_start(self, trainer, logs): pass
    def on_epoch_start(self, trainer, logs): pass
    def on_batch_end(self, trainer, logs): pass     # after each optimizer step
    def on_epoch_end(self, trainer, logs): pass     # after each epoch (or each eval_every steps)
    def on_fit_end(self, trainer, logs): pass


def _mode_of(monitor: str, mode: str) -> str:
    check_str("monitor", monitor)
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "min" if "loss" in monitor or monitor.endswith(("mse", "mae", "rmse")) else "max"
    return mode


def _require(logs: dict, monitor: str, who: str):
    if monitor not in logs:
        available = sorted(k for k in logs if k not in ("step", "epoch", "completed_epoch", "time"))
        hint = " (pass a DataBundle with a validation split to fit, or monitor='loss')" \
            if monitor.startswith("val_") else ""
        raise ValueError(f"{who} monitors {monitor!r} but the epoch logs only have {available}{hint}")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs; restore the best weights."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True):
        self.patience = check_int("patience", patience, minimum=0)
        self.min_delta = check_number("min_delta", min_delta, minimum=0)
        self.restore_best = check_bool("restore_best", restore_best)
        self.monitor = monitor
        self.mode = _mode_of(monitor, mode)
        self.reset()

    def reset(self):
        self.best, self.best_step, self.best_state, self.wait = None, None, None, 0

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_epoch_end(self, trainer, logs):
        value = _require(logs, self.monitor, "EarlyStopping")
        if self._improved(value):
            self.best, self.best_step, self.wait = value, logs["step"], 0
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            if self.best is None:
                trainer.stop(f"early stopping: {self.monitor} was never a finite number in "
                             f"{self.wait} evaluations (last value {value}); the run is diverging or "
                             "the data holds NaN/inf: lower the learning rate or check the data")
            else:
                trainer.stop(f"early stopping: {self.monitor} has not improved for {self.patience} "
                             f"evaluations (best {self.best:.4g} at step {self.best_step})")

    def on_fit_end(self, trainer, logs):
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state_dict(self):
        return {"best": self.best, "best_step": self.best_step, "wait": self.wait,
                "best_state": self.best_state}

    def load_state_dict(self, state):
        self.best, self.best_step, self.wait = state["best"], state["best_step"], state["wait"]
        self.best_state = state.get("best_state")


class Checkpoint(Callback):
    """Save `last.pt` after every epoch and `best.pt` when `monitor` improves (atomic writes).

    Under torchrun only rank 0 writes. Resume with `trainer.load_checkpoint(path)`.
    """

    main_process_only = True

    def __init__(self, dirpath="checkpoints", monitor: str = "val_loss", mode: str = "auto",
                 save_last: bool = True, save_best: bool = True):
        if not isinstance(dirpath, (str, Path)) or not str(dirpath):
            raise TypeError(f"dirpath must be a folder path (str or pathlib.Path), got "
                            f"{type(dirpath).__name__} {dirpath!r}")
        self.dirpath, self.monitor = Path(dirpath), monitor
        self.mode = _mode_of(monitor, mode)
        self.save_last, self.save_best = check_bool("save_last", save_last), check_bool("save_best", save_best)
        if not (save_last or save_best):
            raise ValueError("Checkpoint(save_last=False, save_best=False) would save nothing; "
                             "keep at least one True")
        self.best = None

    def reset(self):
        self.best = None

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.dirpath / "best.pt"

    def on_epoch_end(self, trainer, logs):
        if self.save_best:
            value = _require(logs, self.monitor, "Checkpoint")
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if math.isfinite(value) and better:
                self.best = value
                trainer.save_checkpoint(self.best_path)
        if self.save_last:
            trainer.save_checkpoint(self.last_path)

    def on_fit_end(self, trainer, logs):
        # an interrupted or stopped run keeps its latest weights on disk too
        if self.save_last and trainer.step > 0:
            trainer.save_checkpoint(self.last_path)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]


class LRSchedule(Callback):
    """A learning-rate schedule, stepped after every optimizer step (or every epoch).

    schedule: "constant", "step" (step_size, gamma), "exponential" (gamma), "cosine" (warmup, min_lr),
    "linear" (warmup, min_lr), "onecycle" (max_lr, pct_start); any torch LRScheduler; or a
    function optimizer -> scheduler. Per-step by default; "step" and "exponential" count epochs
    unless interval="step". The horizon of "cosine", "linear" and "onecycle" is the length of the
    fit that starts them: each fit starts the schedule afresh, except one resumed from a checkpoint,
    which continues the saved schedule. A resumed schedule that had already finished starts afresh
    over the new fit, with a warning (it never trains on at its final rate, e.g. 0, unannounced).
    """
    NAMES = ("constant", "step", "exponential", "cosine", "linear", "onecycle")
    OPTIONS = {"constant": set(), "step": {"step_size", "gamma"}, "exponential": {"gamma"},
               "cosine": {"warmup", "min_lr"}, "linear": {"warmup", "min_lr"},
               "onecycle": {"max_lr", "pct_start"}}

    def __init__(self, schedule="cosine", interval: str | None = None, **kwargs):
        if isinstance(schedule, str) and schedule not in self.NAMES:
            raise ValueError(f"unknown schedule {schedule!r}{suggest(schedule, self.NAMES)}; use one of "
                             f"{self.NAMES}, a torch.optim.lr_scheduler instance, or a function "
                             "optimizer -> scheduler")
        elif not isinstance(schedule, str) and not (hasattr(schedule, "step") or callable(schedule)):
            raise TypeError(f"schedule must be one of {self.NAMES}, a torch.optim.lr_scheduler instance, "
                            f"or a function optimizer -> scheduler; got {type(schedule).__name__} {schedule!r:.60}")
        if interval not in (None, "step", "epoch"):
            raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
        allowed = self.OPTIONS.get(schedule) if isinstance(schedule, str) else set()
        if set(kwargs) - allowed:
            what = f"LRSchedule({schedule!r})" if isinstance(schedule, str) else "LRSchedule(<your scheduler>)"
            raise TypeError(f"{what} takes {sorted(allowed) or 'no options'}, "
                            f"got {sorted(set(kwargs) - allowed)}")
        for name, value in kwargs.items():
            if name == "gamma":
                check_number("gamma", value, minimum=0, min_inclusive=False,
                             hint="the rate is multiplied by gamma, e.g. 0.1 or 0.9")
            elif name in ("step_size",):
                check_int(name, value, minimum=1)
            elif name == "warmup":
                check_int("warmup", value, minimum=0)
            elif name == "min_lr":
                check_number("min_lr", value, minimum=0, hint="it must also be below the trainer's lr")
            elif name == "max_lr":
                check_lr(value, "max_lr")
            elif name == "pct_start":
                check_fraction("pct_start", value, low_inclusive=False, high_inclusive=False)
        self.schedule, self.kwargs = schedule, kwargs
        self.interval = interval or ("epoch" if schedule in ("step", "exponential") else "step")
        self.reset()

    def reset(self):
        self.scheduler, self.total, self._state = None, None, None

    def _build(self, trainer):
        opt, kw = trainer.optimizer, self.kwargs
        for group in opt.param_groups:
            # each group starts from its own base rate (trainer.lr, or its own for discriminative
            # rates), not from where a previous fit's schedule left it
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"]
        if not isinstance(self.schedule, str):
            made = self.schedule if hasattr(self.schedule, "step") else self.schedule(opt)
            if not hasattr(made, "step"):
                raise TypeError("LRSchedule needs a torch LRScheduler or a function returning one")
            return made
        s = torch.optim.lr_scheduler
        total = self.total
        if self.schedule == "constant":
            return s.LambdaLR(opt, lambda t: 1.0)
        if self.schedule == "step":
            return s.StepLR(opt, step_size=kw.get("step_size", 10), gamma=kw.get("gamma", 0.1))
        if self.schedule == "exponential":
            return s.ExponentialLR(opt, gamma=kw.get("gamma", 0.9))
        if self.schedule == "onecycle":
            return s.OneCycleLR(opt, max_lr=kw.get("max_lr", trainer.lr), total_steps=max(2, total),
                                pct_start=kw.get("pct_start", 0.3))
        warmup, min_lr = int(kw.get("warmup", 0)), float(kw.get("min_lr", 0.0))
        if min_lr >= trainer.lr:
            raise ValueError(f"LRSchedule({self.schedule!r}): min_lr={min_lr:g} must be below the "
                             f"trainer's lr={trainer.lr:g} (the schedule decays from lr to min_lr)")
        floor = min_lr / trainer.lr
        cosine = self.schedule == "cosine"

        def factor(t: int) -> float:        # multiplies the base learning rate at step t
            if t < warmup:
                return (t + 1) / warmup     # linear warm-up from lr/warmup to lr
            progress = min(1.0, (t - warmup) / max(1, total - warmup - 1))  # min_lr on the last step
            decay = 0.5 * (1 + math.cos(math.pi * progress)) if cosine else 1 - progress
            return floor + (1 - floor) * decay
        return s.LambdaLR(opt, factor)

    def _horizon(self, logs) -> int:
        """Scheduler steps in a fit: its optimizer steps, or its epochs for interval="epoch"."""
        steps = logs["planned_steps"]
        return max(1, steps if self.interval == "step" else math.ceil(steps / max(1, logs["steps_per_epoch"])))

    def on_fit_start(self, trainer, logs):
        if self._state is not None:           # resumed from a checkpoint: continue its schedule
            state, self._state = self._state, None
            done = state["scheduler"].get("last_epoch", 0)
            if isinstance(self.schedule, str) and self.schedule not in ("constant", "step", "exponential") \
                    and done >= state["total"]:
                warnings.warn(f"LRSchedule({self.schedule!r}): the schedule resumed from the checkpoint "
                              f"had finished ({done} of {state['total']} steps); restarting it afresh "
                              f"over this fit's {self._horizon(logs)} steps instead of training on at "
                              "its final rate", RuntimeWarning, stacklevel=2)
            else:
                self.total = state["total"]
                self.scheduler = self._build(trainer)
                self.scheduler.load_state_dict(state["scheduler"])
                for group, lr in zip(trainer.optimizer.param_groups, self.scheduler.get_last_lr()):
                    group["lr"] = lr           # a scheduler's state does not include the rate in force
                left = self.total - done
                if isinstance(self.schedule, str) and self.schedule not in ("constant", "step", "exponential") \
                        and self._horizon(logs) > left:
                    warnings.warn(f"LRSchedule({self.schedule!r}): the resumed schedule has {left} of its "
                                  f"{self.total} steps left but this fit plans {self._horizon(logs)}; "
                                  f"after them the rate stays at its final value "
                                  f"{self.kwargs.get('min_lr', 0.0):g} x lr", RuntimeWarning, stacklevel=2)
                return
        self.total = self._horizon(logs)
        warmup = self.kwargs.get("warmup", 0)
        if warmup >= self.total and logs["planned_steps"] > 0:
            warnings.warn(f"LRSchedule({self.schedule!r}, warmup={warmup}): the warm-up is longer than "
                          f"this fit's {self.total} steps, so the rate never reaches lr and never decays; "
                          "use a smaller warmup or a longer fit", RuntimeWarning, stacklevel=2)
        self.scheduler = self._build(trainer)

    def on_batch_end(self, trainer, logs):
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer, logs):
        if self.interval == "epoch" and logs.get("completed_epoch", True):
            self.scheduler.step()

    def state_dict(self):
        if self.scheduler is None:
            return self._state               # loaded but not started yet: still the saved one
        return {"scheduler": self.scheduler.state_dict(), "total": self.total}

    def load_state_dict(self, state):
        if state is not None and not (isinstance(state, dict) and "scheduler" in state and "total" in state):
            raise ValueError(f"not an LRSchedule state: {state!r:.80}")
        if self.scheduler is not None and _same(state, self.state_dict()):
            return                           # the state it has (lr_find putting things back): no resume
        self._state = state


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except (RuntimeError, ValueError):        # tensors inside: compared element-wise, ambiguous
        return False


class DivergenceWarning(RuntimeWarning):
    """Training stopped because the loss became NaN/inf or exploded."""


warnings.simplefilter("always", DivergenceWarning)


class DivergenceGuard(Callback):
    """Stop a run whose loss becomes NaN/inf or grows `max_ratio` times its first value, and put
    back the last weights that gave a finite loss. On by default in every Trainer."""

    def __init__(self, max_ratio: float = 1e4, snapshot_every: int = 20):
        self.max_ratio = check_number("max_ratio", max_ratio, minimum=1, min_inclusive=False,
                                      hint="the loss may grow to max_ratio x its first value, e.g. 1e4")
        self.snapshot_every = check_int("snapshot_every", snapshot_every, minimum=1)
        self.reset()

    def reset(self):
        self.first_loss, self.snapshot, self.snapshot_step = None, None, None
        self.message = None

    def _take_snapshot(self, trainer):
        self.snapshot = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        self.snapshot_step = trainer.step

    def on_fit_start(self, trainer, logs):
        self.message = None
        self._take_snapshot(trainer)
        # a fresh history (a new trainer, reset(), set_model()) starts a new reference loss
        self.first_loss = trainer.history.steps[0]["loss"] if trainer.history.steps else None

    def on_batch_end(self, trainer, logs):
        loss = logs["loss"]
        if self.first_loss is None and math.isfinite(loss):
            self.first_loss = loss
        exploded = math.isfinite(loss) and self.first_loss is not None and \
            abs(loss) > self.max_ratio * max(abs(self.first_loss), 1e-8)
        if math.isfinite(loss) and not exploded:
            if trainer.step - self.snapshot_step >= self.snapshot_every:
                self._take_snapshot(trainer)
            return
        params_finite = all(torch.isfinite(p).all() for p in trainer.model.parameters())
        if not params_finite or exploded:
            trainer.model.load_state_dict(self.snapshot)
            trainer.optimizer.state.clear()     # momentum/Adam moments may hold NaN/inf too
            restored = _("weights restored from step {step}").format(step=self.snapshot_step)
        else:
            restored = _("weights kept (they are still finite)")
        what = _("is NaN/inf") if not math.isfinite(loss) else \
            _("= {loss:.3g}, over {ratio:g}x its first value {first:.3g}").format(
                loss=loss, ratio=self.max_ratio, first=self.first_loss)
        self.message = _("Training diverged at step {step}: the loss {what} with lr={lr:g}. Stopped; {restored}. "
                         "Try a lower learning rate (e.g. lr={lower:g}).").format(
            step=logs["step"], what=what, lr=trainer.lr_now, restored=restored, lower=trainer.lr_now / 10)
        trainer.stop(self.message)
        warnings.warn(self.message, DivergenceWarning, stacklevel=2)


class ProgressBar(Callback):
    """A tqdm progress bar: live in JupyterLab, a normal bar in a terminal, and a single
    summary line in a notebook run headless (papermill), instead of one line per update."""
    main_process_only = True

    def __init__(self, every: int = 1):
        self.every, self.bar, self.mode = check_int("every", every, minimum=1), None, None

    def on_fit_start(self, trainer, logs):
        from .frontend import frontend
        self.mode = self.mode or frontend()
        self._t0 = time.perf_counter()
        if self.mode == "headless":
            return
        if self.mode == "live":
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
        self.bar = tqdm(total=logs["planned_steps"], unit="step", leave=True, file=sys.stderr,
                        disable=None if self.mode == "script" else False)

    def on_batch_end(self, trainer, logs):
        if self.bar is not None and logs["step"] % self.every == 0:
            self.bar.update(self.every)
            self.bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)

    def on_epoch_end(self, trainer, logs):
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()
                                  if k == "loss" or k.startswith("val_")}, refresh=False)

    def on_fit_end(self, trainer, logs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.mode == "headless":
            parts = [f"step {trainer.step}", f"epoch {trainer.epoch}"]
            last = trainer.history.epochs[-1] if trainer.history.epochs else \
                (trainer.history.steps[-1] if trainer.history.steps else {})
            parts += [f"{k} {v:.4g}" for k, v in last.items() if k == "loss" or k.startswith("val_")]
            parts.append(f"{time.perf_counter() - self._t0:.1f}s")
            if trainer.stop_reason:
                parts.append(f"({trainer.stop_reason})")
            print(" · ".join(parts), file=sys.stderr, flush=True)
