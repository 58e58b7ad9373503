"""The learning-rate range test (Smith, 2015; fastai's `lr_find`).

Train for a few dozen steps while the learning rate grows exponentially from `start_lr` to
`end_lr`, and watch the loss: too small a rate and it barely moves, a good one makes it fall
fast, too large and it explodes. A good rate to start from is where the loss falls fastest.

    result = lk.lr_find(trainer, data)
    lk.show(result.figure())
    trainer.lr = result.suggestion

The test trains the trainer's own model with its own optimizer and `train_step`, then puts
everything back: weights, optimizer state, learning rate, step counters, history and random
number generators. A fit after `lr_find` is the fit you would have had without it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from .checks import check_int, check_lr, check_number
from .models.utils import model_mode
from .train import Trainer, _check_not_empty, _loaders


@dataclass
class LRFinderResult:
    """What the range test saw: one row per step.

    lrs: the learning rate of each step. losses: the smoothed training loss (an exponential moving
    average, bias-corrected); raw_losses: the loss of each batch. suggestion: the rate where the
    smoothed loss falls fastest per decade of learning rate (steepest descent). min_loss_lr: a tenth
    of the rate at the lowest smoothed loss, the other common rule; usually the two are close.
    stop_reason: why the test ended before `num_steps`, or None.
    """
    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float
    min_loss_lr: float
    stop_reason: str | None = None
    settings: dict = field(default_factory=dict)

    def figure(self, title: str | None = "Learning-rate range test"):
        """Smoothed (and raw) loss against the learning rate on a log axis; the suggestion marked."""
        import plotly.graph_objects as go

        finite = [(lr, raw) for lr, raw in zip(self.lrs, self.raw_losses) if math.isfinite(raw)]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[p[0] for p in finite], y=[p[1] for p in finite], mode="lines",
                                 name="batch loss", line=dict(color="#1f77b4", width=1), opacity=0.3))
        fig.add_trace(go.Scatter(x=self.lrs, y=self.losses, mode="lines", name="smoothed loss",
                                 line=dict(color="#1f77b4", width=2)))
        for lr, name, color in ((self.suggestion, "steepest descent", "#d62728"),
                                (self.min_loss_lr, "min loss / 10", "#2ca02c")):
            y = float(np.interp(math.log10(lr), np.log10(self.lrs), self.losses))
            fig.add_trace(go.Scatter(x=[lr], y=[y], mode="markers", name=f"{name}: {lr:.2g}",
                                     marker=dict(color=color, size=11, symbol="circle-open",
                                                 line=dict(width=3))))
        fig.add_vline(x=self.suggestion, line=dict(color="#d62728", dash="dot", width=1))
        # The blow-up at the end would flatten everything else: cap the axis at a few times the start.
        finite_smooth = [v for v in self.losses if math.isfinite(v)]
        bottom, top = min(finite_smooth), max(finite_smooth)
        if finite_smooth[0] > 0:
            top = max(bottom, min(top, 2.5 * finite_smooth[0]))
        pad = 0.05 * (top - bottom or 1.0)
        fig.update_xaxes(type="log", title_text="learning rate")
        fig.update_yaxes(title_text="training loss", range=[bottom - pad, top + pad])
        fig.update_layout(title=title, height=360, template="plotly_white",
                          margin=dict(l=50, r=20, t=50 if title else 30, b=40),
                          legend=dict(orientation="h", y=-0.25))
        return fig

    def __repr__(self) -> str:
        stop = f", stopped early: {self.stop_reason}" if self.stop_reason else ""
        return (f"LRFinderResult(steps={len(self.lrs)}, lrs {self.lrs[0]:.2g}..{self.lrs[-1]:.2g}, "
                f"suggestion={self.suggestion:.3g}, min_loss_lr={self.min_loss_lr:.3g}{stop})")


def lr_find(trainer: Trainer, data, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
            smooth: float = 0.05, diverge_factor: float = 4.0) -> LRFinderResult:
    """Run the learning-rate range test on `trainer` with the training batches of `data`.

    data: a DataBundle (its train split is used) or a DataLoader; it is cycled if shorter than
    `num_steps`. The rate at step i is start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)).
    smooth: the weight of each new batch loss in the moving average (1 = no smoothing).
    diverge_factor: stop once the smoothed loss exceeds this many times its lowest value
    (or a loss is NaN/inf). The trainer is restored afterwards, even if the test fails.
    """
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be a labkit Trainer, got {type(trainer).__name__}")
    train_loader, _ = _loaders(data)
    start_lr, end_lr = check_lr(start_lr, "start_lr"), check_lr(end_lr, "end_lr")
    if not start_lr < end_lr:
        raise ValueError(f"start_lr must be smaller than end_lr, got start_lr={start_lr:g} and "
                         f"end_lr={end_lr:g}; e.g. start_lr=1e-7, end_lr=10")
    num_steps = check_int("num_steps", num_steps, minimum=2)
    smooth = check_number("smooth", smooth, minimum=0, maximum=1, min_inclusive=False,
                          hint="e.g. 0.05 (1 = no smoothing)")
    diverge_factor = check_number("diverge_factor", diverge_factor, minimum=1, min_inclusive=False,
                                  hint="e.g. 4.0")
    _check_not_empty(train_loader, "the training loader of data")

    with trainer._one_fit_at_a_time("lr_find()"), model_mode(trainer.model, True):
        lrs, raw, smoothed, stop_reason = _range_test(trainer, train_loader, start_lr, end_lr, num_steps,
                                                      smooth, diverge_factor)
    suggestion, min_loss_lr = _suggest(lrs, smoothed)
    return LRFinderResult(lrs=lrs, losses=smoothed, raw_losses=raw, suggestion=suggestion,
                          min_loss_lr=min_loss_lr, stop_reason=stop_reason,
                          settings=dict(start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                                        smooth=smooth, diverge_factor=diverge_factor))


def _range_test(trainer, train_loader, start_lr, end_lr, num_steps, smooth, diverge_factor):
    """Train `num_steps` steps at growing rates, then put the trainer back as it was: its whole
    state_dict (weights, optimizer, counters, history, random generators) and the loader's generator."""
    saved = copy.deepcopy(trainer.state_dict())
    generator = train_loader.generator
    loader_rng = None if generator is None else generator.get_state()
    lrs, raw, smoothed = [], [], []
    stop_reason, average, best = None, 0.0, math.inf
    try:
        trainer._micro_losses = []
        batches = _cycle(train_loader)
        for i in range(num_steps):
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            trainer.lr = lr
            logs = None
            for micro in range(trainer.accumulate):    # one optimizer step, as fit takes it
                logs = trainer.train_step(next(batches), update=micro == trainer.accumulate - 1)
                if logs is not None:                   # a non-finite loss ends the step early
                    break
            loss = logs["loss"]
            lrs.append(lr)
            raw.append(loss)
            if not math.isfinite(loss):
                smoothed.append(math.nan)
                stop_reason = f"the loss became {loss} at lr={lr:.3g}"
                break
            # exponential moving average, divided by (1 - (1 - smooth)^(i+1)) so it does not start at 0
            average = (1 - smooth) * average + smooth * loss
            value = average / (1 - (1 - smooth) ** (i + 1))
            smoothed.append(value)
            best = min(best, value)
            if value > diverge_factor * best:
                stop_reason = (f"the smoothed loss {value:.3g} exceeded {diverge_factor:g} x its lowest "
                               f"value {best:.3g} at lr={lr:.3g}")
                break
    finally:
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer._load_state_unlocked(saved)
        if loader_rng is not None:
            generator.set_state(loader_rng)
    return lrs, raw, smoothed, stop_reason


def _suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steepest descent, min-loss / 10) of the smoothed loss against log10(lr)."""
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if len(finite) < 2:
        raise ValueError(f"lr_find recorded {len(finite)} finite loss(es) before the loss diverged; "
                         f"lower start_lr (the test started at {lrs[0]:.2g})")
    log_lrs = np.log10(np.array(lrs)[finite])
    values = np.array(losses)[finite]
    i_min = int(np.argmin(values))
    min_loss_lr = float(10 ** log_lrs[i_min]) / 10
    # The steepest fall lies before the minimum; past it the loss only rises.
    if i_min < 2:
        return min_loss_lr, min_loss_lr        # no descent to measure: fall back to the other rule
    slopes = np.gradient(values[:i_min + 1], log_lrs[:i_min + 1])
    return float(10 ** log_lrs[int(np.argmin(slopes))]), min_loss_lr


def _cycle(loader):
    while True:
        yield from loader
