"""ControlPanel: sliders and buttons bound to a Trainer, with a live chart of every run and a status line.

The panel holds no training logic: it sets hyperparameters on the trainer and calls `fit` / `stop`.
Clicking Train (someone is watching) trains in a background thread, so Stop and the sliders respond
while it runs; `panel.train()` from code trains synchronously, so papermill captures the result.
Every Train is a run, kept with its settings and history, and drawn over the earlier ones.
"""
from __future__ import annotations

import html
import inspect
import math
import numbers
import threading
import time
from dataclasses import dataclass, field

import ipywidgets as W

from .callbacks import Callback
from .frontend import frontend
from .i18n import _
from .hparams import OPTIMIZERS, check_int, check_lr
from .plots import (CONFIG, METRIC_COLORS, PLOTLY_MIME, LiveFigure, _decimate, log_or_linear,
                    x_axis, y_axis)

STYLE = {"description_width": "110px"}
RUN_POINTS = 600       # per run's train curve: a smoothed curve needs no more on a 900-pixel chart
RUN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#17becf", "#bcbd22", "#7f7f7f"]


def _layout():
    return W.Layout(width="340px")


def _control(name: str, spec):
    """A widget from a compact spec: [choices] -> dropdown, (lo, hi[, step]) -> slider,
    ("log", lo, hi) -> log slider, bool -> checkbox; a widget is used as given."""
    if isinstance(spec, W.ValueWidget):
        return spec
    style, layout = STYLE, _layout()
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


def check_control(name: str, widget, value):
    """The value a control may take, or a ValueError/TypeError naming the control and what it allows."""
    if isinstance(widget, (W.Dropdown, W.RadioButtons, W.ToggleButtons, W.Select)):
        options = [o[1] if isinstance(o, tuple) else o for o in widget.options]
        if value not in options:
            raise ValueError(f"{name}={value!r} is not one of the options of the {name!r} control: {options}")
        return value
    if isinstance(widget, (W.Checkbox, W.ToggleButton)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
        return value
    if isinstance(widget, W.IntSlider):
        value = check_int(name, value)
    elif isinstance(widget, (W.FloatSlider, W.FloatLogSlider)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise TypeError(f"{name} must be a finite number, got {type(value).__name__} {value!r}")
    lo, hi = _range(widget)
    if lo is not None and not lo <= value <= hi:     # a slider would silently clamp it
        raise ValueError(f"{name}={value!r} is outside the control's range [{lo:g}, {hi:g}]")
    return value


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# -- runs ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One press of Train: the settings it ran with and what it saw."""
    number: int
    settings: dict
    history: object                                   # a labkit History of this run's rows only
    start_step: int = 0                               # the trainer's step when the run began
    seconds: float = 0.0
    stop_reason: str | None = None
    label: str = ""
    step_times: list = field(default_factory=list)    # seconds since the run began, per step row
    samples: list = field(default_factory=list)       # (step, text) from the panel's sample hook
    running: bool = False

    def best(self, key: str, mode: str = "auto"):
        """(best value, step) of `key` over the run's evaluations, or (None, None)."""
        rows = [r for r in self.history.epochs if math.isfinite(r.get(key, math.nan))]
        if not rows:
            return None, None
        low = "loss" in key if mode == "auto" else mode == "min"
        row = (min if low else max)(rows, key=lambda r: r[key])
        return row[key], row["step"]

    @property
    def steps(self) -> int:
        return len(self.history.steps)

    def __repr__(self) -> str:
        return f"Run({self.label or self.number}, steps={self.steps}, settings={self.settings})"


def label_runs(runs: list) -> None:
    """Label each run by what differs between the runs: 'lr 0.1', 'lr 0.001 · adam'."""
    keys = [k for k in dict.fromkeys(k for r in runs for k in r.settings)
            if k != "from step" and len({repr(r.settings.get(k)) for r in runs}) > 1]
    for r in runs:
        parts = [_fmt(r.settings.get(k)) if k == "optimizer" else f"{k} {_fmt(r.settings.get(k))}"
                 for k in keys]
        r.label = f"#{r.number} " + (" · ".join(parts) if parts else "")
        r.label = r.label.strip()


def _metric_key(runs) -> str | None:
    keys = [k for r in runs for row in r.history.epochs for k in row
            if k.startswith("val_") and k != "val_loss"]
    return keys[0] if keys else None


def runs_figure(runs: list, x: str = "step", title: str | None = None, height: int = 380) -> dict:
    """Every run's curves on one chart (plain plotly JSON): train loss (solid) and validation loss
    (dashed) on the left, the validation metric on the right; the last run bold, earlier ones faded;
    one legend entry per run, which toggles all of its curves. x: "step" or "time" (seconds)."""
    if x not in ("step", "time"):
        raise ValueError(f"x must be 'step' or 'time', got {x!r}")
    metric = _metric_key(runs)
    left = [0, 0.55] if metric else [0, 1]
    data, losses = [], []
    for i, run in enumerate(runs):
        current = i == len(runs) - 1
        color = RUN_COLORS[(run.number - 1) % len(RUN_COLORS)]
        width, opacity = (2.5, 1.0) if current else (1.5, 0.45)
        group = {"legendgroup": f"run{run.number}", "name": run.label or f"#{run.number}"}
        steps = run.history.steps
        pts = [(row["step"] if x == "step" else t, row["loss"])
               for row, t in zip(steps, run.step_times or [math.nan] * len(steps))
               if math.isfinite(row.get("loss", math.nan)) and (x == "step" or math.isfinite(t))]
        xs, ys = _decimate([p[0] for p in pts], _smooth([p[1] for p in pts]), RUN_POINTS)
        losses += ys
        few = len(xs) < 30
        data.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines+markers" if few else "lines",
                     "line": {"color": color, "width": width}, "opacity": opacity, "showlegend": True,
                     "hovertemplate": "%{y:.4g}<extra>" + html.escape(group["name"]) + " train</extra>",
                     **group})
        evals = run.history.epochs
        for key, dash, axis in (("val_loss", "dash", "1"), (metric, "solid", "2")):
            if key is None:
                continue
            rows = [r for r in evals if math.isfinite(r.get(key, math.nan))]
            if not rows:
                continue
            if key == "val_loss":
                losses += [r[key] for r in rows]
            data.append({"type": "scatter", "x": [r["step"] if x == "step" else r.get("time", math.nan)
                                                  for r in rows],
                         "y": [r[key] for r in rows], "mode": "lines+markers" if len(rows) <= 40 else "lines",
                         "line": {"color": color, "width": width, "dash": dash}, "marker": {"size": 5},
                         "opacity": opacity, "showlegend": False,
                         "xaxis": "x" if axis == "1" else "x2", "yaxis": "y" if axis == "1" else "y2",
                         "hovertemplate": "%{y:.4g}<extra>" + html.escape(group["name"]) + f" {key}</extra>",
                         **group})
    xtitle = _("step") if x == "step" else _("seconds")
    layout = {
        "height": height, "plot_bgcolor": "white", "paper_bgcolor": "white", "showlegend": True,
        "margin": {"l": 60, "r": 40, "t": 60 if title else 34, "b": 90},
        "legend": {"orientation": "h", "y": -0.2, "yanchor": "top", "groupclick": "togglegroup",
                   "title": {"text": _("runs (click to hide):")}},
        "xaxis": x_axis(xtitle, domain=left, anchor="y"),
        "yaxis": {"anchor": "x", **y_axis(log_or_linear(losses), _("loss"))},
        "annotations": [_note(_("loss: train (solid, smoothed), validation (dashed)"), left)],
    }
    if title:
        layout["title"] = {"text": title, "x": 0, "xanchor": "left", "xref": "paper"}
    if metric:
        layout.update(xaxis2=x_axis(xtitle, domain=[0.65, 1], anchor="y2"),
                      yaxis2={"anchor": "x2", **y_axis("linear", metric)})
        layout["annotations"].append(_note(metric.replace("_", " "), [0.65, 1]))
    if not runs:
        layout["annotations"].append({"text": _("no runs yet: press Train"), "showarrow": False,
                                      "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
                                      "font": {"color": "#888"}})
    return {"data": data, "layout": layout}


def _smooth(values: list) -> list:
    """An exponential moving average over about 1 % of the run (at least 1 step): a noisy mini-batch
    loss reads as a curve, so runs can be compared at a glance."""
    span = max(1.0, len(values) / 100)
    alpha, out, avg = 2 / (span + 1), [], None
    for v in values:
        avg = v if avg is None else avg + alpha * (v - avg)
        out.append(avg)
    return out


def _note(text: str, domain: list) -> dict:
    return {"text": text, "x": sum(domain) / 2, "y": 1.0, "xref": "paper", "yref": "paper",
            "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 13}}


def runs_table(runs: list, sort: str = "run") -> str:
    """The runs as an HTML table: settings, best validation loss / metric and when, steps, seconds,
    stop reason; sorted by `sort` ("run", "best val loss", "best <metric>", "seconds")."""
    if not runs:
        return ""
    metric = _metric_key(runs)
    keys = list(dict.fromkeys(k for r in runs for k in r.settings))
    rows = []
    for r in runs:
        vl, vl_step = r.best("val_loss")
        mv, mv_step = r.best(metric) if metric else (None, None)
        rows.append((r, vl, vl_step, mv, mv_step))
    order = {"run": lambda t: t[0].number, "seconds": lambda t: t[0].seconds,
             "best val loss": lambda t: math.inf if t[1] is None else t[1]}
    if metric:
        order[f"best {metric}"] = lambda t: math.inf if t[3] is None else -t[3]
    rows.sort(key=order.get(sort, order["run"]))
    head = ["run"] + keys + ["best val loss (step)"] + ([f"best {metric} (step)"] if metric else []) + \
        ["steps", "seconds", "ended"]
    cell = "padding:1px 8px;text-align:right;border-bottom:1px solid #eee"
    out = ["<table style='border-collapse:collapse;font-size:12px'><tr>"
           + "".join(f"<th style='{cell}'>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r, vl, vl_step, mv, mv_step in rows:
        color = RUN_COLORS[(r.number - 1) % len(RUN_COLORS)]
        vals = [f"<b style='color:{color}'>#{r.number}</b>"] + [html.escape(_fmt(r.settings.get(k, ""))) for k in keys]
        vals.append("–" if vl is None else f"{vl:.4g} ({vl_step})")
        if metric:
            vals.append("–" if mv is None else f"{mv:.4g} ({mv_step})")
        ended = "running" if r.running else (r.stop_reason or "done")
        vals += [str(r.steps), f"{r.seconds:.1f}", html.escape(_short(ended))]
        out.append("<tr>" + "".join(f"<td style='{cell}'>{v}</td>" for v in vals) + "</tr>")
    return "".join(out) + "</table>"


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- the panel's own callback -------------------------------------------------------------------------

class _PanelRun(Callback):
    """Feeds the current run: its rows, the status line (4 times a second), the chart (throttled
    to about 5 % of the training time) and the live sample."""

    def __init__(self, panel: "ControlPanel", run: Run):
        self.panel, self.run = panel, run
        self._last_status, self._next_draw, self._end_step = 0.0, 0.0, 0
        self.draw_seconds = 0.0

    def on_fit_start(self, trainer, logs):
        self._t0 = time.perf_counter()
        self._next_draw = self._t0 + 0.25          # the first frame once there is something to draw
        self._end_step = trainer.step + (logs.get("planned_steps") or trainer.planned_steps)

    def on_batch_end(self, trainer, logs):
        now = time.perf_counter()
        self.run.history.steps.append(logs)
        self.run.step_times.append(now - self._t0)
        self.run.seconds = now - self._t0
        if now - self._last_status >= 0.25:
            self._last_status = now
            self.panel._say(_("Training… step {step}/{end} · loss {loss:.4g} · lr {lr:.3g}").format(
                step=logs["step"], end=self._end_step, loss=logs["loss"], lr=trainer.lr_now))
        if self.panel.mode == "live" and now >= self._next_draw:
            self._draw()

    def on_epoch_end(self, trainer, logs):
        self.run.history.epochs.append(logs)
        if self.panel.sample is not None and (not self.run.samples or self.run.samples[-1][0] != logs["step"]):
            self.panel._take_sample(self.run)
        if self.panel.mode == "live" and time.perf_counter() >= self._next_draw:
            self._draw()

    def _draw(self):
        t0 = time.perf_counter()
        self.panel._redraw()
        now = time.perf_counter()
        self.draw_seconds += now - t0
        self._next_draw = now + max(0.25, 24 * (now - t0))   # drawing: at most ~4 % of the time


# -- the panel ----------------------------------------------------------------------------------------

class ControlPanel:
    """Sliders for learning rate, batch size, epochs (or steps) and optimizer, plus any `params`;
    Train / Stop / Reset / Clear runs buttons; a live chart of every run; a runs table; a status line.

    >>> panel = lk.ControlPanel(trainer, data, epochs=20)
    >>> panel                                   # shows the panel in a notebook
    >>> panel.set(lr=0.1); panel.train()        # the same from code (synchronous)
    >>> panel.runs[-1].settings, panel.compare()

    params: extra controls, e.g. {"hidden": [16, 64, 256], "dropout": (0.0, 0.5, 0.05)}. Those that
      `build` takes as arguments are passed to `build(...)`, which returns a new model, on Reset and
      on Train when they changed; the others (say, a sampling temperature) are just read.
    steps, eval_every: train by optimizer steps (language models), evaluating every `eval_every`.
    sample: a function (trainer, **params it names) -> str, called at each evaluation; the panel
      shows its latest text, so a learner watches generated text improve as it trains.
    """

    def __init__(self, trainer, data, epochs: int | None = None, params: dict | None = None, build=None,
                 lr_range: tuple = (1e-5, 10.0), batch_sizes=None, optimizers=None,
                 title: str | None = None, mode: str | None = None, steps: int | None = None,
                 eval_every: int | None = None, sample=None):
        if params and build is None and sample is None:
            raise ValueError("params need a build(**params) function that returns a new model "
                             "(or a sample(trainer, **params) function that reads them)")
        if epochs is not None and steps is not None:
            raise ValueError(f"pass epochs=N or steps=N, not both (got epochs={epochs!r}, steps={steps!r})")
        if sample is not None and not callable(sample):
            raise TypeError(f"sample must be a function (trainer, ...) -> str, got {type(sample).__name__}")
        self.trainer, self.data, self.build, self.sample = trainer, data, build, sample
        self.mode = mode or frontend()
        if self.mode not in ("live", "headless", "script"):
            raise ValueError(f"mode must be None (auto), 'live', 'headless' or 'script', got {mode!r}")
        self.title = title
        self.error: BaseException | None = None
        self.runs: list[Run] = []
        self._thread: threading.Thread | None = None
        self._fitting = False
        self._built_with: dict | None = None
        self._build_args = _arg_names(build)
        self._sample_args = _arg_names(sample)
        self.by_steps = steps is not None
        self.eval_every = None if eval_every is None else check_int("eval_every", eval_every, minimum=1)
        style = STYLE

        # learning rate: a log slider to move it, a box with the exact value used
        lo, hi = (math.log10(check_lr(v, "lr_range")) for v in lr_range)
        self.lr_range = (10 ** lo, 10 ** hi)
        self._lr_exact = check_lr(trainer.lr)
        self._echoes: list = []                  # (when, log10 lr) set from code, echoes to expect
        self.lr = W.FloatLogSlider(value=self._lr_exact, min=lo, max=hi, step=0.05, base=10,
                                   description=_("learning rate"), readout=False, style=style,
                                   layout=W.Layout(width="250px"))
        self.lr_text = W.FloatText(value=self._lr_exact, layout=W.Layout(width="86px"),
                                   tooltip=_("the exact learning rate used; type one"))
        self.lr.observe(self._on_lr_slider, names="value")
        self.lr_text.observe(self._on_lr_text, names="value")
        if self.by_steps:
            n = check_int("steps", steps, minimum=1)
            self.epochs = W.IntSlider(value=n, min=1, max=max(10 * n, 100), description=_("steps"),
                                      style=style, layout=_layout())
        else:
            n = check_int("epochs", 10 if epochs is None else epochs, minimum=1)
            self.epochs = W.IntSlider(value=n, min=1, max=max(100, n), description=_("epochs"),
                                      style=style, layout=_layout())
        names = list(optimizers or ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
        for name in names:
            if name not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {name!r} in optimizers; use names from {sorted(OPTIMIZERS)}")
        current = trainer.optimizer_spec if isinstance(trainer.optimizer_spec, str) else None
        if current and current not in names:
            names.insert(0, current)
        self.optimizer = W.Dropdown(options=names, value=current or names[0], description=_("optimizer"),
                                    style=style, layout=_layout(), disabled=current is None)
        self.batch_size = None
        if hasattr(data, "with_batch_size"):
            n_train = len(data.train.dataset)
            sizes = sorted(set(batch_sizes or [s for s in (1, 8, 16, 32, 64, 128, 256, 512, 1024)
                                               if s <= n_train] + [data.batch_size]))
            self.batch_size = W.Dropdown(options=sizes, value=data.batch_size, description=_("batch size"),
                                         style=style, layout=_layout())
        self.params = {name: _control(name, spec) for name, spec in (params or {}).items()}

        self.train_button = W.Button(description=_("Train"), button_style="success", icon="play")
        self.stop_button = W.Button(description=_("Stop"), button_style="danger", icon="stop", disabled=True)
        self.reset_button = W.Button(description=_("Reset"), icon="undo",
                                     tooltip=_("fresh weights; earlier runs stay on the chart"))
        self.clear_button = W.Button(description=_("Clear runs"), icon="trash",
                                     tooltip=_("forget the runs drawn on the chart"))
        self.x_axis = W.Dropdown(options=["step", "time"], value="step", description=_("x axis"),
                                 style={"description_width": "50px"}, layout=W.Layout(width="160px"))
        self.sort = W.Dropdown(options=["run", "best val loss", "seconds"], value="run",
                               description=_("sort runs by"), style={"description_width": "80px"},
                               layout=W.Layout(width="240px"))
        self.status = W.HTML(value=_("<b>Ready.</b> Set the controls, then press Train."))
        self.table = W.HTML()
        self.sample_box = W.HTML(layout=W.Layout(display="block" if sample else "none"))
        self.train_button.on_click(lambda _: self.train_in_background())
        self.stop_button.on_click(lambda _: self.stop("Stop button"))
        self.reset_button.on_click(lambda _: self.reset())
        self.clear_button.on_click(lambda _: self.clear_runs())
        self.x_axis.observe(lambda _: self._redraw(), names="value")
        self.sort.observe(lambda _: self._redraw(), names="value")

        self.chart = LiveFigure(height=380) if self.mode == "live" else None
        lr_row = W.HBox([self.lr, self.lr_text], layout=W.Layout(width="340px"))
        controls = [lr_row, self.epochs, self.optimizer] + ([self.batch_size] if self.batch_size else [])
        controls += list(self.params.values())
        buttons = W.HBox([self.train_button, self.stop_button, self.reset_button, self.clear_button])
        children = [W.HTML(f"<h4 style='margin:4px 0'>{html.escape(title)}</h4>")] if title else []
        children += [W.HBox([W.VBox(controls[::2]), W.VBox(controls[1::2])]), buttons, self.status]
        if self.chart is not None:
            children += [self.sample_box, self.chart.widget, W.HBox([self.x_axis, self.sort]), self.table]
            self._redraw()
        self.box = W.VBox(children)

    # -- what the buttons do -----------------------------------------------------------------------
    def set(self, **values) -> "ControlPanel":
        """Set controls from code: panel.set(lr=0.1, epochs=5, hidden=64). The values are checked
        first (a wrong one changes nothing) and used exactly as given."""
        widgets = {}
        for name, value in values.items():
            widget = self._widget(name)
            if name == "lr":
                check_lr(value)
                lo, hi = self.lr_range
                if not lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9):
                    raise ValueError(f"lr={value!r} is outside the control's range [{lo:g}, {hi:g}] "
                                     "(build the panel with a wider lr_range)")
            else:
                check_control(name, widget, value)
            widgets[name] = (widget, value)
        for name, (widget, value) in widgets.items():
            if name == "lr":
                self._set_lr(float(value))
            else:
                widget.value = value
        return self

    def _widget(self, name):
        fixed = {"lr": self.lr, "optimizer": self.optimizer, "batch_size": self.batch_size,
                 ("steps" if self.by_steps else "epochs"): self.epochs}
        widget = fixed.get(name) or self.params.get(name)
        if widget is None:
            raise ValueError(f"no control named {name!r}; this panel has "
                             f"{[k for k, w in fixed.items() if w is not None] + list(self.params)}")
        return widget

    @property
    def lr_value(self) -> float:
        """The learning rate the next run uses, exactly as set or typed."""
        return self._lr_exact

    @property
    def values(self) -> dict:
        """Every control's value: lr, epochs or steps, optimizer, batch_size and the params."""
        out = {"lr": self._lr_exact, "optimizer": self.optimizer.value}
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size.value
        out["steps" if self.by_steps else "epochs"] = self.epochs.value
        out.update(self._values())
        return out

    @property
    def fitting(self) -> bool:
        """A fit runs on this panel's trainer (started here or elsewhere)."""
        return self._fitting or self.running or bool(getattr(self.trainer, "is_fitting", False))

    def train(self):
        """Train with the current control values, synchronously; returns the History.
        A RuntimeError if a fit is already running on this trainer."""
        if self.fitting:
            msg = _("a fit is already running on this trainer: press Stop (or wait) before training again")
            self._say(msg, color="#c00")
            raise RuntimeError(msg)
        self._prepare()
        return self._run()

    def train_in_background(self) -> threading.Thread | None:
        """Train in a thread (what the Train button does), so Stop and sliders stay live. While a
        fit runs, a second press changes nothing but the status line."""
        if self.fitting:
            self._say(_("A run is already going: press Stop first (or wait for it to end)."), color="#c00")
            return None
        self._fitting = True                 # claimed before the thread starts: no double start
        try:
            self._prepare()
        except Exception as e:
            self._fitting = False
            self.error = e
            self._say(_("Error: {kind}: {error}").format(kind=type(e).__name__, error=e), color="#c00")
            return None
        self._thread = threading.Thread(target=self._run, name="labkit-train", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, why: str = "stop()") -> None:
        """End the current run at the next batch boundary (what the Stop button does)."""
        if self.fitting:
            self._say(_("Stopping ({why})…").format(why=why))
        self.trainer.stop(f"stopped ({why})")

    def reset(self) -> None:
        """Fresh weights (rebuilt with the current params) and an empty trainer history. The runs
        so far stay on the chart for comparison (clear_runs() forgets them)."""
        if self.running:
            self.stop("Reset")
            self._thread.join()
        if self.build is not None:
            self._rebuild()
        else:
            self.trainer.reset()
        self.trainer.lr = self._lr_exact
        self._redraw()
        kept = _("; the {n} earlier run(s) stay on the chart").format(n=len(self.runs)) if self.runs else ""
        self._say(_("Reset: fresh weights{kept}.").format(kept=kept))

    def clear_runs(self) -> None:
        """Forget the runs kept so far (the model is not touched)."""
        if self.running:
            self._say(_("A run is going: Stop it before clearing the runs."), color="#c00")
            return
        self.runs = []
        self._redraw()
        self._say(_("Runs cleared."))

    def compare(self, x: str = "step", title: str | None = None):
        """Every run so far as a static plotly figure (the last run bold)."""
        import plotly.graph_objects as go
        return go.Figure(runs_figure(self.runs, x=x, title=title or self.title))

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

    def _build_values(self) -> dict:
        values = self._values()
        if self._build_args is None:
            return values
        return {k: v for k, v in values.items() if k in self._build_args}

    def _rebuild(self) -> None:
        self.trainer.set_model(self.build(**self._build_values()))
        self._built_with = self._build_values()

    def _prepare(self) -> None:
        """Apply the controls to the trainer and data before a run."""
        if self.build is not None and self._built_with != self._build_values():
            self._rebuild()
        if isinstance(self.trainer.optimizer_spec, str) and self.optimizer.value != self.trainer.optimizer_spec:
            self.trainer.set_optimizer(self.optimizer.value)
        self.trainer.lr = self._lr_exact
        if self.batch_size is not None and self.batch_size.value != self.data.batch_size:
            self.data = self.data.with_batch_size(self.batch_size.value)

    def _set_lr(self, value: float, from_slider: bool = False) -> None:
        self._lr_exact = value
        self._quiet = True
        try:
            if not from_slider:
                # the front end will echo it back snapped to its grid, maybe after later sets
                self._echoes.append((time.monotonic(), math.log10(value)))
                self._echoes = self._echoes[-50:]
                self.lr.value = value
            self.lr_text.value = value
        finally:
            self._quiet = False
        self.trainer.lr = value          # a running fit uses it from its next step

    def _on_lr_slider(self, change) -> None:
        """The slider moved. A front end echoes a value set from code snapped to the slider's grid
        (0.1 -> 0.1 but 0.167 -> 0.158): within half a grid step of the exact value, it is that
        echo and the exact value stays; a real move takes the slider's value to 3 digits."""
        if getattr(self, "_quiet", False):
            return
        new, now = change["new"], time.monotonic()
        if abs(math.log10(new) - math.log10(self._lr_exact)) <= self.lr.step / 2 + 1e-9:
            return
        # a late echo of a value set from code (several sets in one cell arrive after the cell)
        for i, (t, sent) in enumerate(self._echoes):
            if now - t < 60 and abs(math.log10(new) - sent) <= self.lr.step / 2 + 1e-9:
                del self._echoes[:i + 1]
                return
        self._set_lr(float(f"{new:.3g}"), from_slider=True)

    def _on_lr_text(self, change) -> None:
        if getattr(self, "_quiet", False):
            return
        try:
            self.set(lr=change["new"])
        except (TypeError, ValueError) as e:
            self._say(str(e), color="#c00")
            self._quiet = True
            self.lr_text.value = self._lr_exact
            self._quiet = False

    def _say(self, text: str, color: str = "inherit") -> None:
        self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def _take_sample(self, run: Run) -> None:
        kwargs = {k: v for k, v in self._values().items()
                  if self._sample_args is None or k in self._sample_args}
        try:
            text = str(self.sample(self.trainer, **kwargs))
        except Exception as e:            # a broken sample function must not end the run
            text = f"(sample failed: {type(e).__name__}: {e})"
        run.samples.append((self.trainer.step, text))
        self.sample_box.value = (f"<div style='font-size:12px;color:#555'>sample at step {self.trainer.step}:</div>"
                                 f"<pre style='white-space:pre-wrap;margin:2px 0;max-height:9em;overflow:auto;"
                                 f"background:#f7f7f7;padding:4px'>{html.escape(text)}</pre>")

    def _redraw(self) -> None:
        label_runs(self.runs)
        if self.chart is not None:
            self.chart.update(runs_figure(self.runs, x=self.x_axis.value),
                              f"<{len(self.runs)} runs>")
            metric = _metric_key(self.runs)
            options = ["run", "best val loss", "seconds"] + ([f"best {metric}"] if metric else [])
            if list(self.sort.options) != options:
                self.sort.options = options
            self.table.value = runs_table(self.runs, sort=self.sort.value)

    def _new_run(self) -> Run:
        from .train import History
        settings = {"lr": self._lr_exact,
                    "optimizer": self.optimizer.value if not self.optimizer.disabled
                    else type(self.trainer.optimizer).__name__}
        if self.batch_size is not None:
            settings["batch_size"] = self.batch_size.value
        settings["steps" if self.by_steps else "epochs"] = self.epochs.value
        settings.update(self._values())
        number = self.runs[-1].number + 1 if self.runs else 1
        run = Run(number, settings, History(), start_step=self.trainer.step, running=True)
        if self.trainer.step:
            run.settings["from step"] = self.trainer.step     # continues the previous run's model
        self.runs.append(run)
        return run

    def _run(self):
        self._fitting = True
        n = self.epochs.value
        run = self._new_run()
        self._set_running(True)
        self.error = None
        unit = _("steps") if self.by_steps else _("epochs")
        self._say(_("Training… {n} {unit} with {optimizer}, lr {lr:.3g}").format(
            n=n, unit=unit, optimizer=self.trainer.optimizer.__class__.__name__, lr=self.trainer.lr))
        feed = _PanelRun(self, run)
        self._feed = feed
        t0 = time.perf_counter()
        data = _stoppable(self.data, self.trainer)
        try:
            if self.by_steps:
                history = self.trainer.fit(data, steps=n, eval_every=self.eval_every, callbacks=[feed])
            else:
                history = self.trainer.fit(data, epochs=n, eval_every=self.eval_every, callbacks=[feed])
        except Exception as e:          # shown in the panel: a background thread has nowhere else
            self.error = e
            run.stop_reason = f"error: {type(e).__name__}"
            self._say(_("Error: {kind}: {error}").format(kind=type(e).__name__, error=e), color="#c00")
            if self._thread is None or threading.current_thread() is not self._thread:
                raise
            return None
        finally:
            run.running = False
            run.seconds = time.perf_counter() - t0
            run.stop_reason = run.stop_reason or self.trainer.stop_reason
            self._set_running(False)
            self._fitting = False
            self._redraw()
        diverged = self._diverged()
        self._say(self._summary(), color="#c00" if diverged else "inherit")
        if self.mode == "headless":
            self._show_static()
        return history

    def _show_static(self) -> None:
        """Headless (papermill): the comparison of every run so far, as plain plotly JSON, and the
        latest sample."""
        from IPython.display import display
        spec = runs_figure(self.runs, title=self.title)
        spec["config"] = CONFIG
        display({PLOTLY_MIME: spec, "text/plain": f"<{len(self.runs)} runs>"}, raw=True)
        if self.runs and self.runs[-1].samples:
            step, text = self.runs[-1].samples[-1]
            print(f"sample at step {step}:\n{text}")

    def _summary(self) -> str:
        t = self.trainer
        row = t.history.epochs[-1] if t.history.epochs else (t.history.steps[-1] if t.history.steps else {})
        scores = " · ".join(f"{k} {v:.4g}" for k, v in row.items() if k == "loss" or k.startswith("val_"))
        reason = (t.stop_reason or "").strip()
        if self._diverged():                            # the guard's message says it all
            return reason
        head = _("Stopped at step {step}: {reason}.").format(step=t.step, reason=reason.rstrip(".")) \
            if reason else _("Done: step {step}.").format(step=t.step)
        return f"{head} lr {t.lr:.3g} · {scores}"

    def _diverged(self) -> bool:
        """True when the last fit was ended by the DivergenceGuard (whatever language it spoke)."""
        return bool(getattr(self.trainer, "diverged", False))

    def _set_running(self, running: bool) -> None:
        self.train_button.disabled = running
        self.stop_button.disabled = not running
        self.clear_button.disabled = running
        for w in (self.epochs, self.batch_size, *self.params.values()):
            if w is not None:
                w.disabled = running

    def figure(self):
        """The current trainer's curves as a static plotly figure (compare() draws every run)."""
        from .plots import history_figure
        return history_figure(self.trainer.history)

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


class _StoppableLoader:
    """Makes a validation loader end early once Stop is pressed: an evaluation in progress is cut
    short (its scores then cover the batches seen), so Stop answers within one batch."""

    @staticmethod
    def wrap(loader, trainer):
        from torch.utils.data import DataLoader

        class Stoppable(type(loader)):
            def __iter__(self):
                for batch in super().__iter__():
                    if trainer.stopped:
                        return
                    yield batch

        new = Stoppable.__new__(Stoppable)
        new.__dict__.update(loader.__dict__)         # the same loader: dataset, sampler, batch size
        return new if isinstance(new, DataLoader) else loader


def _stoppable(data, trainer):
    import dataclasses
    val = getattr(data, "val", None)
    if val is None or not dataclasses.is_dataclass(data):
        return data
    try:
        return dataclasses.replace(data, val=_StoppableLoader.wrap(val, trainer))
    except Exception:              # an unusual loader: Stop then waits for the evaluation to end
        return data


def _arg_names(fn) -> set | None:
    """The argument names fn takes, or None when it takes **kwargs (then it gets everything)."""
    if fn is None:
        return set()
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}
