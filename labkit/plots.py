"""Plots: LivePlot (a callback drawing loss and metric curves while training) and static figures.

Every figure is plotly. `show(fig)` displays a figure as plotly's JSON mimetype only, which
JupyterLab renders interactively and which keeps a saved notebook small (a few kB a figure,
instead of the 3.5 MB of plotly.js that the default notebook renderer embeds).
"""
from __future__ import annotations

import json
import math
import time

import plotly.graph_objects as go

from .callbacks import Callback
from .frontend import frontend

PLOTLY_MIME = "application/vnd.plotly.v1+json"
MAX_POINTS = 2000      # per trace: enough to see the shape, small enough to redraw 4 times a second
COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
AXIS = {"gridcolor": "#e8e8e8", "linecolor": "#bbbbbb", "showline": True, "zeroline": False}


def use_small_renderer() -> None:
    """Make `fig.show()` in a notebook kernel use the JSON mimetype alone (JupyterLab renders it;
    saved notebooks stay small). Called once when labkit is imported inside a kernel."""
    import plotly.io as pio
    if frontend() != "script":
        pio.renderers.default = "plotly_mimetype"


def show(fig: go.Figure, mode: str | None = None) -> None:
    """Display a figure: in a notebook as plotly JSON (interactive, small); in a script, nothing."""
    mode = mode or frontend()
    if mode == "script":
        return
    from IPython.display import display
    display({PLOTLY_MIME: json.loads(fig.to_json()), "text/plain": _describe(fig)}, raw=True)


def _describe(fig: go.Figure) -> str:
    title = fig.layout.title.text or "plotly figure"
    return f"<{title}: {len(fig.data)} traces>"


def _decimate(xs: list, ys: list, limit: int = MAX_POINTS):
    if len(xs) <= limit:
        return xs, ys
    stride = math.ceil(len(xs) / limit)
    return xs[::stride] + xs[-1:], ys[::stride] + ys[-1:]


def _series(rows: list[dict], key: str):
    pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def _metric_keys(history) -> list[str]:
    keys = sorted({k for r in history.epochs for k in r})
    return [k for k in keys if k not in ("step", "epoch", "completed_epoch", "lr", "time") and not k.endswith("loss")]


def _curves(history) -> list[tuple[str, list, list]]:
    """(name, steps, values) of every curve: the data of the figure, cheap to recompute."""
    curves = [("train loss (step)", *_decimate(*_series(history.steps, "loss")))]
    for key, label in (("loss", "train loss (epoch)"), ("val_loss", "val loss")):
        x, y = _series(history.epochs, key)
        if x:
            curves.append((label, x, y))
    curves += [(key, *_series(history.epochs, key)) for key in _metric_keys(history)]
    return curves


def _loss_axis_type(history) -> str:
    losses = [r["loss"] for r in history.steps if math.isfinite(r.get("loss", math.nan))]
    return "log" if losses and min(losses) > 0 and max(losses) / min(losses) > 100 else "linear"


def figure_dict(history, title: str | None = None, height: int = 360) -> dict:
    """The curves figure as plain plotly JSON ({"data": [...], "layout": {...}}): what
    history_figure wraps, and what a headless LivePlot displays without building a Figure."""
    curves = _curves(history)
    two = bool(_metric_keys(history))
    palette = iter(["#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"] * 3)
    data = []
    for name, x, y in curves:
        trace = {"type": "scatter", "name": name, "x": x, "y": y, "mode": "lines+markers"}
        if name == "train loss (step)":
            trace.update(mode="lines", line={"color": COLORS["train"], "width": 1}, opacity=0.35)
        elif name in ("train loss (epoch)", "val loss"):
            trace["line"] = {"color": COLORS["train"] if name.startswith("train") else COLORS["val"], "width": 2}
        else:                               # a metric, in the second panel
            trace.update(line={"color": next(palette), "dash": "solid" if name.startswith("val_") else "dot"},
                         xaxis="x2", yaxis="y2")
        data.append(trace)
    left = [0, 0.44] if two else [0, 1]
    layout = {
        "title": {"text": title}, "height": height, "plot_bgcolor": "white", "paper_bgcolor": "white",
        "margin": {"l": 50, "r": 20, "t": 50 if title else 30, "b": 40},
        "legend": {"orientation": "h", "y": -0.25},
        "xaxis": {"domain": left, "anchor": "y", "title": {"text": "step"}, **AXIS},
        "yaxis": {"anchor": "x", "type": _loss_axis_type(history), **AXIS},
        "annotations": [_panel_title("loss", left)],
    }
    if two:
        layout.update(xaxis2={"domain": [0.56, 1], "anchor": "y2", "title": {"text": "step"}, **AXIS},
                      yaxis2={"anchor": "x2", **AXIS})
        layout["annotations"].append(_panel_title("metrics", [0.56, 1]))
    return {"data": data, "layout": layout}


def _panel_title(text: str, domain: list) -> dict:
    return {"text": text, "x": sum(domain) / 2, "y": 1.0, "xref": "paper", "yref": "paper",
            "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 14}}


def history_figure(history, title: str | None = None, height: int = 360) -> go.Figure:
    """Loss (per step, and per epoch for train and validation) and metrics, against the step."""
    return go.Figure(figure_dict(history, title, height))


class LivePlot(Callback):
    """Loss and metric curves while training.

    In JupyterLab the figure updates in place (at most `max_fps` times a second, so drawing never
    dominates training). Run headless (papermill, nbconvert, nbval) it shows one static figure when
    fit ends, with no widget state in the saved notebook. In a plain script it shows nothing, or
    writes `save="curves.html"` when given.
    """
    main_process_only = True

    def __init__(self, title: str | None = None, max_fps: float = 4.0, mode: str | None = None,
                 display: bool = True, save: str | None = None):
        if mode not in (None, "live", "headless", "script"):
            raise ValueError(f"mode must be None (auto), 'live', 'headless' or 'script', got {mode!r}")
        if not max_fps > 0:
            raise ValueError(f"max_fps must be > 0, got {max_fps!r}")
        self.title, self.min_interval, self.mode = title, 1.0 / max_fps, mode
        self.display, self.save = display, save
        self.widget = None            # the FigureWidget, in live mode
        self._next_draw = 0.0         # perf_counter() time before which no redraw happens
        self._trainer = None

    def on_fit_start(self, trainer, logs):
        self.mode = self.mode or frontend()
        self._trainer = trainer
        if self.mode == "live":
            self._ensure_widget()
            self._draw(trainer.history)

    def _ensure_widget(self):
        if self.widget is None:
            self.widget = go.FigureWidget(history_figure(self._trainer.history, self.title))
            if self.display:
                from IPython.display import display
                display(self.widget)
        return self.widget

    def on_batch_end(self, trainer, logs):
        if self.mode == "live" and time.perf_counter() >= self._next_draw:
            self._draw(trainer.history)

    def _draw(self, history) -> None:
        """Refresh, then wait at least 1/max_fps, and 4x as long as the refresh took, before the
        next one: drawing stays a small share of training however slow the machine is."""
        t0 = time.perf_counter()
        self.refresh(history)
        now = time.perf_counter()
        self._next_draw = now + max(self.min_interval, 4 * (now - t0))

    def on_epoch_end(self, trainer, logs):
        self.on_batch_end(trainer, logs)

    def on_fit_end(self, trainer, logs):
        if self.mode == "live":
            self.refresh(trainer.history)
        elif self.mode == "headless" and self.display:
            from IPython.display import display
            display({PLOTLY_MIME: figure_dict(trainer.history, self.title),
                     "text/plain": f"<training curves: {trainer.step} steps>"}, raw=True)
        if self.save:
            history_figure(trainer.history, self.title).write_html(self.save, include_plotlyjs=True)

    def refresh(self, history) -> None:
        """Redraw the live figure from a history: the curves' data updated in place when they are
        the same curves; otherwise (say, validation metrics appeared) the figure is taken over whole."""
        if self.widget is not None:
            curves = _curves(history)
            with self.widget.batch_update():
                if [t.name for t in self.widget.data] == [c[0] for c in curves]:
                    for trace, (_, x, y) in zip(self.widget.data, curves):
                        trace.x, trace.y = x, y
                    self.widget.layout.yaxis.type = _loss_axis_type(history)
                else:
                    new = history_figure(history, self.title)
                    self.widget.data = ()
                    self.widget.layout = new.layout
                    self.widget.add_traces(list(new.data))  # each trace names its own subplot axes
