"""ControlPanel: sliders and buttons bound to a Trainer, with a live plot and a status line.

The panel holds no training logic: it sets hyperparameters on the trainer and calls `fit` / `stop`.
Clicking Train (someone is watching) trains in a background thread, so Stop and the sliders respond
while it runs; `panel.train()` from code trains synchronously, so papermill captures the result.
"""
from __future__ import annotations

import html
import math
import threading
import time

import ipywidgets as W

from .callbacks import Callback
from .frontend import frontend
from .hparams import OPTIMIZERS, check_int, check_lr
from .plots import LivePlot, history_figure


def _control(name: str, spec):
    """A widget from a compact spec: [choices] -> dropdown, (lo, hi[, step]) -> slider,
    ("log", lo, hi) -> log slider, bool -> checkbox; a widget is used as given."""
    if isinstance(spec, W.ValueWidget):
        return spec
    style, layout = {"description_width": "110px"}, W.Layout(width="340px")
    if isinstance(spec, bool):
        return W.Checkbox(value=spec, description=name, style=style, layout=layout)
    if isinstance(spec, list) and spec:
        return W.Dropdown(options=spec, value=spec[0], description=name, style=style, layout=layout)
    if isinstance(spec, tuple) and len(spec) == 3 and spec[0] == "log":
        lo, hi = math.log10(spec[1]), math.log10(spec[2])
        return W.FloatLogSlider(value=10 ** ((lo + hi) / 2), min=lo, max=hi, step=0.1, description=name,
                                style=style, layout=layout, readout_format=".2g")
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(v, (int, float)) for v in spec):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
            step = spec[2] if len(spec) == 3 else 1
            return W.IntSlider(value=spec[0], min=spec[0], max=spec[1], step=step, description=name,
                               style=style, layout=layout)
        step = spec[2] if len(spec) == 3 else (spec[1] - spec[0]) / 20
        return W.FloatSlider(value=spec[0], min=spec[0], max=spec[1], step=step, description=name,
                             style=style, layout=layout)
    raise TypeError(f"control {name!r}: use [choices], (min, max[, step]), ('log', min, max), a bool, "
                    f"or an ipywidgets widget; got {spec!r}")


def _range(widget) -> tuple:
    """(min, max) of a slider's values, or (None, None) for other controls."""
    if isinstance(widget, W.FloatLogSlider):
        return widget.base ** widget.min, widget.base ** widget.max
    if isinstance(widget, (W.FloatSlider, W.IntSlider)):
        return widget.min, widget.max
    return None, None


class _Status(Callback):
    """Writes progress into the panel's status line, at most 4 times a second."""

    def __init__(self, panel: "ControlPanel"):
        self.panel, self._last, self._end_step = panel, 0.0, 0

    def on_fit_start(self, trainer, logs):
        self._end_step = trainer.step + trainer.planned_steps

    def on_batch_end(self, trainer, logs):
        now = time.perf_counter()
        if now - self._last >= 0.25:
            self._last = now
            self.panel._say(f"Training… step {logs['step']}/{self._end_step} · "
                            f"loss {logs['loss']:.4g} · lr {trainer.lr_now:.3g}")


class ControlPanel:
    """Sliders for learning rate, batch size, epochs and optimizer (plus any `params`), Train /
    Stop / Reset buttons, a live loss plot and a status line, all bound to one Trainer.

    >>> panel = lk.ControlPanel(trainer, data, epochs=20)
    >>> panel                                   # shows the panel in a notebook
    >>> panel.set(lr=0.1); panel.train()        # the same from code (synchronous)

    params: extra controls, e.g. {"hidden": [16, 64, 256], "dropout": (0.0, 0.5, 0.05)}; they are
      passed to `build(**params)`, which returns a new model, on Reset and on Train when they changed.
    """

    def __init__(self, trainer, data, epochs: int = 10, params: dict | None = None, build=None,
                 lr_range: tuple = (1e-5, 10.0), batch_sizes=None, optimizers=None,
                 title: str | None = None, mode: str | None = None):
        if params and build is None:
            raise ValueError("params need a build(**params) function that returns a new model")
        self.trainer, self.data, self.build = trainer, data, build
        self.mode = mode or frontend()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._built_with: dict | None = None
        style, layout = {"description_width": "110px"}, W.Layout(width="340px")

        lo, hi = (math.log10(check_lr(v, "lr_range")) for v in lr_range)
        self.lr = W.FloatLogSlider(value=trainer.lr, min=lo, max=hi, step=0.05, base=10,
                                   description="learning rate", readout_format=".2g",
                                   style=style, layout=layout)
        self.epochs = W.IntSlider(value=check_int("epochs", epochs, minimum=1), min=1,
                                  max=max(100, epochs), description="epochs", style=style, layout=layout)
        names = list(optimizers or ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
        for name in names:
            if name not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {name!r} in optimizers; use names from {sorted(OPTIMIZERS)}")
        current = trainer.optimizer_spec if isinstance(trainer.optimizer_spec, str) else None
        if current and current not in names:
            names.insert(0, current)
        self.optimizer = W.Dropdown(options=names, value=current or names[0], description="optimizer",
                                    style=style, layout=layout, disabled=current is None)
        self.batch_size = None
        if hasattr(data, "with_batch_size"):
            n_train = len(data.train.dataset)
            sizes = sorted(set(batch_sizes or [s for s in (1, 8, 16, 32, 64, 128, 256, 512, 1024)
                                               if s <= n_train] + [data.batch_size]))
            self.batch_size = W.Dropdown(options=sizes, value=data.batch_size, description="batch size",
                                         style=style, layout=layout)
        self.params = {name: _control(name, spec) for name, spec in (params or {}).items()}

        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.status = W.HTML(value="<b>Ready.</b> Set the controls, then press Train.")
        self.train_button.on_click(lambda _: self.train_in_background())
        self.stop_button.on_click(lambda _: self.stop("Stop button"))
        self.reset_button.on_click(lambda _: self.reset())
        self.lr.observe(self._on_lr, names="value")

        # live: the panel shows the plot's widget itself; headless: the plot shows its final figure
        # (live, the panel's heading already names it; headless, the figure stands alone)
        self.plot = LivePlot(title=None if self.mode == "live" else title, mode=self.mode,
                             display=self.mode != "live")
        self.plot._trainer = trainer
        controls = [self.lr, self.epochs, self.optimizer] + ([self.batch_size] if self.batch_size else [])
        controls += list(self.params.values())
        buttons = W.HBox([self.train_button, self.stop_button, self.reset_button])
        children = [W.HTML(f"<h4 style='margin:4px 0'>{html.escape(title)}</h4>")] if title else []
        children += [W.HBox([W.VBox(controls[::2]), W.VBox(controls[1::2])]), buttons, self.status]
        if self.mode == "live":
            children.append(self.plot._ensure_widget())
        self.box = W.VBox(children)

    # -- what the buttons do -----------------------------------------------------------------------
    def set(self, **values) -> "ControlPanel":
        """Set controls from code: panel.set(lr=0.1, epochs=5, hidden=64)."""
        for name, value in values.items():
            widget = {"lr": self.lr, "epochs": self.epochs, "optimizer": self.optimizer,
                      "batch_size": self.batch_size}.get(name) or self.params.get(name)
            if widget is None:
                raise ValueError(f"no control named {name!r}; this panel has "
                                 f"{['lr', 'epochs', 'optimizer', 'batch_size'] + list(self.params)}")
            if name == "lr":
                check_lr(value)
            lo, hi = _range(widget)
            if lo is not None and not lo <= value <= hi:   # a slider would silently clamp it
                hint = " (build the panel with a wider lr_range)" if name == "lr" else ""
                raise ValueError(f"{name}={value!r} is outside the control's range [{lo:g}, {hi:g}]{hint}")
            widget.value = value
        return self

    def train(self):
        """Train with the current control values, synchronously; returns the History."""
        self._prepare()
        return self._run()

    def train_in_background(self) -> threading.Thread | None:
        """Train in a thread (what the Train button does), so Stop and sliders stay live."""
        if self.running:
            return None
        self._prepare()
        self._thread = threading.Thread(target=self._run, name="labkit-train", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, why: str = "stop()") -> None:
        """End the current run at the next batch boundary (what the Stop button does)."""
        self.trainer.stop(f"stopped ({why})")

    def reset(self) -> None:
        """Back to fresh weights (rebuilt with the current params) and an empty history."""
        if self.running:
            self.stop("Reset")
            self._thread.join()
        if self.build is not None:
            self._rebuild()
        else:
            self.trainer.reset()
        self.trainer.lr = self.lr.value
        self.plot.refresh(self.trainer.history)
        self._say("Reset: fresh weights, empty history.")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background run ends."""
        if self._thread is not None:
            self._thread.join(timeout)

    # -- internals ---------------------------------------------------------------------------------
    def _values(self) -> dict:
        return {name: w.value for name, w in self.params.items()}

    def _rebuild(self) -> None:
        self.trainer.set_model(self.build(**self._values()))
        self._built_with = self._values()

    def _prepare(self) -> None:
        """Apply the controls to the trainer and data before a run."""
        if self.build is not None and self._built_with != self._values():
            self._rebuild()
        if isinstance(self.trainer.optimizer_spec, str) and self.optimizer.value != self.trainer.optimizer_spec:
            self.trainer.set_optimizer(self.optimizer.value)
        self.trainer.lr = self.lr.value
        if self.batch_size is not None and self.batch_size.value != self.data.batch_size:
            self.data = self.data.with_batch_size(self.batch_size.value)

    def _on_lr(self, change) -> None:
        self.trainer.lr = change["new"]      # a running fit uses it from its next step

    def _say(self, text: str, color: str = "inherit") -> None:
        self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def _run(self):
        epochs = self.epochs.value
        self._set_running(True)
        self.error = None
        self._say(f"Training… {epochs} epochs with {self.trainer.optimizer.__class__.__name__}, "
                  f"lr {self.trainer.lr:.3g}")
        try:
            history = self.trainer.fit(self.data, epochs=epochs, callbacks=[self.plot, _Status(self)])
        except Exception as e:          # shown in the panel: a background thread has nowhere else
            self.error = e
            self._say(f"Error: {type(e).__name__}: {e}", color="#c00")
            if self._thread is None or threading.current_thread() is not self._thread:
                raise
            return None
        finally:
            self._set_running(False)
        self._say(self._summary(), color="#c00" if "diverged" in (self.trainer.stop_reason or "") else "inherit")
        return history

    def _summary(self) -> str:
        t = self.trainer
        row = t.history.epochs[-1] if t.history.epochs else (t.history.steps[-1] if t.history.steps else {})
        scores = " · ".join(f"{k} {v:.4g}" for k, v in row.items() if k == "loss" or k.startswith("val_"))
        head = f"Stopped at step {t.step}: {t.stop_reason}." if t.stop_reason else f"Done: step {t.step}."
        return f"{head} lr {t.lr:.3g} · {scores}"

    def _set_running(self, running: bool) -> None:
        self.train_button.disabled = running
        self.stop_button.disabled = not running
        for w in (self.epochs, self.batch_size, *self.params.values()):
            if w is not None:
                w.disabled = running

    def figure(self):
        """The current curves as a static plotly figure."""
        return history_figure(self.trainer.history)

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)
