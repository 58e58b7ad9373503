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

from .i18n import _
from .callbacks import Callback
from .frontend import frontend

PLOTLY_MIME = "application/vnd.plotly.v1+json"
MAX_POINTS = 2000      # per trace: enough to see the shape, small enough to redraw 4 times a second
COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
# metrics get colours the loss curves never use, so val_accuracy is never mistaken for val loss
METRIC_COLORS = ["#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
AXIS = {"gridcolor": "#e8e8e8", "linecolor": "#bbbbbb", "showline": True, "zeroline": False}
# the plotly toolbar stands upright at the right edge, clear of titles and headings
CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
MODEBAR = {"orientation": "v"}


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
    spec = json.loads(fig.to_json())
    spec.setdefault("config", CONFIG)
    display({PLOTLY_MIME: spec, "text/plain": _describe(fig)}, raw=True)


class LiveFigure:
    """A figure that redraws in place in JupyterLab and survives a page reload.

    It is an ipywidgets Output holding the figure as plotly JSON: the widget's state is the figure
    itself, so a reloaded page (kernel still running) gets it back whole, and JupyterLab's plotly
    renderer draws it with Plotly.react. `update(spec)` replaces the figure; safe from a thread.
    """

    def __init__(self, spec: dict | None = None, height: int | None = None):
        import ipywidgets as W
        layout = W.Layout(min_height=f"{height}px") if height else W.Layout()
        self.widget = W.Output(layout=layout)
        self.spec = None
        self.draws = 0
        if spec is not None:
            self.update(spec)

    def update(self, spec: dict, text: str = "<figure>") -> None:
        spec = dict(spec)
        spec.setdefault("config", CONFIG)
        spec["layout"] = {"uirevision": "keep", "modebar": MODEBAR, **spec.get("layout", {})}
        self.spec = spec
        self.draws += 1
        self.widget.outputs = ({"output_type": "display_data", "metadata": {},
                                "data": {PLOTLY_MIME: spec, "text/plain": text}},)


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
    return log_or_linear(losses)


def log_or_linear(values) -> str:
    """"log" when positive values span more than two decades, else "linear"."""
    values = [v for v in values if math.isfinite(v)]
    return "log" if values and min(values) > 0 and max(values) / min(values) > 100 else "linear"


def y_axis(kind: str, title: str, values=None) -> dict:
    """A y axis; a log one spanning decades labels whole decades only (0.01, 0.1, 1), not
    "5 2 1 5 2 0.1 5" (within two decades, plotly's own ticks read well)."""
    axis = {"type": kind, "title": {"text": title}, **AXIS}
    positive = [v for v in (values or []) if v is not None and math.isfinite(v) and v > 0]
    if kind == "log" and positive and max(positive) / min(positive) < 100:
        return axis
    if kind == "log":
        axis.update(dtick=1, exponentformat="power", minor={"showgrid": True, "gridcolor": "#f4f4f4"})
    return axis


def x_axis(title: str | None = None, **extra) -> dict:
    # an empty chart (after Reset) starts at 0, never at negative steps
    return {"title": {"text": _("step") if title is None else title}, "rangemode": "nonnegative", **AXIS, **extra}


def figure_dict(history, title: str | None = None, height: int = 360) -> dict:
    """The curves figure as plain plotly JSON ({"data": [...], "layout": {...}}): what
    history_figure wraps, and what a headless LivePlot displays without building a Figure."""
    curves = _curves(history)
    two = bool(_metric_keys(history))
    palette = iter(METRIC_COLORS * 3)
    legend = {"train loss (step)": _("train loss (step)"), "train loss (epoch)": _("train loss (epoch)"),
              "val loss": _("val loss")}
    data = []
    for name, x, y in curves:
        trace = {"type": "scatter", "name": name, "x": x, "y": y, "mode": "lines+markers"}
        if name == "train loss (step)":
            # a short run (say, 3 steps before it diverged) is drawn bold, with its points
            few = len(x) < 30
            trace.update(mode="lines+markers" if few else "lines",
                         line={"color": COLORS["train"], "width": 2 if few else 1}, opacity=1 if few else 0.45)
        elif name in ("train loss (epoch)", "val loss"):
            trace["line"] = {"color": COLORS["train"] if name.startswith("train") else COLORS["val"], "width": 2}
        else:                               # a metric, in the second panel
            trace.update(line={"color": next(palette), "dash": "solid" if name.startswith("val_") else "dot"},
                         xaxis="x2", yaxis="y2")
        trace["name"] = legend.get(name, name)       # the legend in the learner's language
        data.append(trace)
    left = [0, 0.44] if two else [0, 1]
    layout = {
        "title": {"text": title}, "height": height, "plot_bgcolor": "white", "paper_bgcolor": "white",
        "margin": {"l": 60, "r": 40, "t": 60 if title else 30, "b": 40},
        "legend": {"orientation": "h", "y": -0.25},
        "showlegend": True, "modebar": MODEBAR,
        "xaxis": x_axis(domain=left, anchor="y"),
        "yaxis": {"anchor": "x", **y_axis(_loss_axis_type(history), _("loss"))},
        "annotations": [_panel_title(_("loss"), left)],
    }
    if title:
        layout["title"] = {"text": title, "x": 0, "xanchor": "left", "xref": "paper"}
    if two:
        metrics = _metric_keys(history)
        layout.update(xaxis2=x_axis(domain=[0.56, 1], anchor="y2"),
                      yaxis2={"anchor": "x2", **y_axis("linear", ", ".join(m.removeprefix("val_") for m in metrics))})
        layout["annotations"].append(_panel_title(_("metrics"), [0.56, 1]))
    return {"data": data, "layout": layout}


def _panel_title(text: str, domain: list) -> dict:
    return {"text": text, "x": sum(domain) / 2, "y": 1.0, "xref": "paper", "yref": "paper",
            "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 14}}


def history_figure(history, title: str | None = None, height: int = 360) -> go.Figure:
    """Loss (per step, and per epoch for train and validation) and metrics, against the step."""
    return go.Figure(figure_dict(history, title, height))


class LivePlot(Callback):
    """Loss and metric curves while training.

    In JupyterLab the figure updates in place (at most `max_fps` times a second, and never more
    than about 5 % of the training time, so drawing never dominates training); it survives a page
    reload. Run headless (papermill, nbconvert, nbval) it shows one static figure when fit ends,
    with no widget state in the saved notebook. In a plain script it shows nothing, or writes
    `save="curves.html"` when given.
    """
    main_process_only = True
    DRAW_SHARE = 0.05          # redraws take at most this share of the wall time

    def __init__(self, title: str | None = None, max_fps: float = 4.0, mode: str | None = None,
                 display: bool = True, save: str | None = None):
        if mode not in (None, "live", "headless", "script"):
            raise ValueError(f"mode must be None (auto), 'live', 'headless' or 'script', got {mode!r}")
        if isinstance(max_fps, bool) or not isinstance(max_fps, (int, float)) or not max_fps > 0:
            raise ValueError(f"max_fps must be a number > 0, got {max_fps!r}")
        self.title, self.min_interval, self.mode = title, 1.0 / max_fps, mode
        self.display, self.save = display, save
        self.live = None              # the LiveFigure, in live mode
        self._next_draw = 0.0         # perf_counter() time before which no redraw happens
        self.draw_seconds = 0.0       # time spent redrawing, over the plot's life
        self._trainer = None

    @property
    def widget(self):
        """The live figure's widget (an ipywidgets Output), or None before a live fit."""
        return None if self.live is None else self.live.widget

    def on_fit_start(self, trainer, logs):
        self.mode = self.mode or frontend()
        self._trainer = trainer
        if self.mode == "live":
            self._ensure_widget()
            self._draw(trainer.history)

    def _ensure_widget(self):
        if self.live is None:
            self.live = LiveFigure(height=360)
            if self._trainer is not None:
                self.refresh(self._trainer.history)
            if self.display:
                from IPython.display import display
                display(self.live.widget)
        return self.live.widget

    def on_batch_end(self, trainer, logs):
        if self.mode == "live" and time.perf_counter() >= self._next_draw:
            self._draw(trainer.history)

    def _draw(self, history) -> None:
        """Refresh, then wait at least 1/max_fps, and 19x as long as the refresh took, before the
        next one: drawing stays within 5 % of training however slow the machine is."""
        t0 = time.perf_counter()
        self.refresh(history)
        now = time.perf_counter()
        self.draw_seconds += now - t0
        self._next_draw = now + max(self.min_interval, (1 / self.DRAW_SHARE - 1) * (now - t0))

    def on_epoch_end(self, trainer, logs):
        self.on_batch_end(trainer, logs)

    def on_fit_end(self, trainer, logs):
        if self.mode == "live":
            self.refresh(trainer.history)
        elif self.mode == "headless" and self.display:
            from IPython.display import display
            display({PLOTLY_MIME: {**figure_dict(trainer.history, self.title), "config": CONFIG},
                     "text/plain": f"<training curves: {trainer.step} steps>"}, raw=True)
        if self.save:
            history_figure(trainer.history, self.title).write_html(self.save, include_plotlyjs=True)

    def refresh(self, history) -> None:
        """Redraw the live figure from a history."""
        if self.live is not None:
            self.live.update(figure_dict(history, self.title), f"<training curves: {len(history.steps)} steps>")
