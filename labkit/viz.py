"""Decision boundaries of 2-D classifiers: a static figure, and a callback that redraws it while training.

    fig = decision_boundary_figure(model, X, y)          # colour = what the model predicts there
    trainer.fit(data, epochs=20, callbacks=[BoundaryPlot(X, y, every=10)])

The model maps [N, 2] inputs to logits, as every labkit model does: one logit per point ([N] or
[N, 1], binary, read through a sigmoid) or one per class ([N, C], read through a softmax).
"""
from __future__ import annotations

import numbers
import time

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from .callbacks import Callback
from .hparams import check_int
from .frontend import frontend
from .plots import show

CLASS_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
# light blue -> white -> light red: P(class 1), white where the model is undecided
PROBABILITY_SCALE = [[0.0, "#9ecae1"], [0.5, "#ffffff"], [1.0, "#fc9272"]]


def _check_points(X, y):
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).detach().cpu()
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).detach().cpu().reshape(-1)
    if X.dim() != 2 or X.size(1) != 2:
        raise ValueError(f"X must hold 2-D points, shape [N, 2]; got shape {list(X.shape)} "
                         "(a decision boundary can only be drawn for two input features)")
    if len(y) != len(X):
        raise ValueError(f"y must have one label per point of X: X has {len(X)} points, y has {len(y)}")
    if len(X) == 0:
        raise ValueError("X must hold at least one point, got an empty array")
    return X if X.is_floating_point() else X.float(), y.long()


@torch.no_grad()
def _logits(model, x: torch.Tensor) -> torch.Tensor:
    """The model's outputs for x, in eval mode (no dropout), on the CPU."""
    if not isinstance(model, nn.Module):
        return torch.as_tensor(model(x)).detach().cpu()
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        return model(x).detach().cpu()
    finally:
        model.train(was_training)


def _read(out: torch.Tensor):
    """(P(class 1) or None, predicted class, number of classes) from logits; binary when there is
    one logit per point (a sigmoid) or two (a softmax)."""
    out = out.float()
    if out.dim() == 1 or (out.dim() == 2 and out.size(1) == 1):
        p = torch.sigmoid(out.reshape(-1))
        return p, (p > 0.5).long(), 2
    if out.dim() == 2 and out.size(1) >= 2:
        prob = torch.softmax(out, dim=1)
        return (prob[:, 1] if out.size(1) == 2 else None), prob.argmax(dim=1), out.size(1)
    raise ValueError(f"the model must return logits shaped [N], [N, 1] or [N, classes]; got {list(out.shape)}")


def _grid(model, X: torch.Tensor, grid: int, margin: float):
    """(xs, ys, z, n_classes): the model on a grid x grid lattice covering X plus a margin. z[i, j]
    belongs to (xs[j], ys[i]): P(class 1) for a binary model, else the predicted class."""
    lo, hi = X.min(0).values.float() - margin, X.max(0).values.float() + margin
    xs, ys = (torch.linspace(float(lo[i]), float(hi[i]), grid) for i in (0, 1))
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")            # [grid, grid], rows follow ys
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(X.dtype)
    p, cls, n_classes = _read(_logits(model, points))
    z = (p if p is not None else cls.float()).reshape(grid, grid)
    return xs.numpy(), ys.numpy(), z.numpy().astype(np.float32), n_classes   # float32: half the JSON


def decision_boundary_figure(model, X, y, grid: int = 100, margin: float = 0.5, title: str | None = None,
                             height: int = 420) -> go.Figure:
    """The points X coloured by label over what `model` predicts around them.

    Binary models: the background is P(class 1) and a black line marks P = 0.5, the boundary.
    More classes: the background is the predicted class. The title ends with the accuracy on (X, y),
    which `fig.layout.meta["accuracy"]` holds too. grid: points per axis; 100 keeps a saved figure
    near 60 kB.
    """
    if not callable(model):
        raise TypeError(f"model must be a torch.nn.Module or a function X -> logits, got {type(model).__name__}")
    X, y = _check_points(X, y)
    check_int("grid", grid, minimum=10, maximum=1000)
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not margin >= 0:
        raise ValueError(f"margin must be a number >= 0 (space around the points), got {margin!r}")
    xs, ys, z, n_classes = _grid(model, X, grid, margin)
    predicted = _read(_logits(model, X))[1]
    accuracy = float((predicted == y).float().mean())
    classes = list(range(max(n_classes, int(y.max()) + 1)))
    fig = go.Figure()
    if n_classes == 2:
        fig.add_trace(go.Contour(
            x=xs, y=ys, z=z, zmin=0, zmax=1, colorscale=PROBABILITY_SCALE, autocontour=False,
            contours=dict(start=0.5, end=0.5, size=1, coloring="heatmap"), line=dict(color="black", width=2),
            colorbar=dict(title=dict(text="P(class 1)"), len=0.8), name="P(class 1)", hoverinfo="skip"))
    else:
        n = len(classes)
        # a stepped colour scale: class k gets a flat band around k (z runs 0..n-1)
        scale = [[edge / n, CLASS_COLORS[k % len(CLASS_COLORS)]] for k in range(n) for edge in (k, k + 1)]
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=z, zmin=-0.5, zmax=n - 0.5, colorscale=scale, opacity=0.3,
                                 showscale=False, name="predicted class", hoverinfo="skip"))
    Xn = X.float().numpy()
    for c in classes:
        mask = (y == c).numpy()
        if mask.any():
            fig.add_trace(go.Scatter(x=Xn[mask, 0], y=Xn[mask, 1], mode="markers", name=f"class {c}",
                                     marker=dict(size=5, color=CLASS_COLORS[c % len(CLASS_COLORS)],
                                                 line=dict(width=0.5, color="white"))))
    fig.update_layout(
        title=f"{title or 'decision boundary'} · accuracy {accuracy:.1%}",
        height=height, template="plotly_white", margin=dict(l=40, r=20, t=50, b=40),
        legend=dict(orientation="h", y=-0.12),
        xaxis=dict(title="x₁", range=[xs[0], xs[-1]], constrain="domain"),
        # equal units on both axes, so the boundary's angle is the one the model learned
        yaxis=dict(title="x₂", range=[ys[0], ys[-1]], scaleanchor="x", constrain="domain"))
    fig.layout.meta = {"accuracy": accuracy}
    return fig


class BoundaryPlot(Callback):
    """The decision boundary while a 2-D classifier trains.

    In JupyterLab a figure updates in place every `every` optimizer steps (at most `max_fps` times
    a second). Run headless (papermill, nbconvert) it shows one static figure when fit ends; in a
    plain script, nothing. `figure` holds the latest static figure either way.
    """
    main_process_only = True

    def __init__(self, X, y, every: int = 10, grid: int = 100, title: str | None = None,
                 max_fps: float = 4.0, mode: str | None = None, display: bool = True):
        self.X, self.y = _check_points(X, y)
        self.every = check_int("every", every, minimum=1)
        self.grid = check_int("grid", grid, minimum=10, maximum=1000)
        if mode not in (None, "live", "headless", "script"):
            raise ValueError(f"mode must be None (auto), 'live', 'headless' or 'script', got {mode!r}")
        if isinstance(max_fps, bool) or not isinstance(max_fps, numbers.Real) or not max_fps > 0:
            raise ValueError(f"max_fps must be a number > 0, got {max_fps!r}")
        self.title, self.min_interval, self.mode, self.display = title, 1.0 / max_fps, mode, display
        self.widget = None       # the FigureWidget, in live mode
        self.figure = None       # the latest static figure
        self._last_draw = 0.0

    def _figure(self, trainer) -> go.Figure:
        fig = decision_boundary_figure(trainer.model, self.X, self.y, grid=self.grid)
        head = f"{self.title} · " if self.title else ""
        fig.layout.title.text = f"{head}step {trainer.step} · accuracy {fig.layout.meta['accuracy']:.1%}"
        self.figure = fig
        return fig

    def on_fit_start(self, trainer, logs):
        self.mode = self.mode or frontend()
        if self.mode == "live":
            fig = self._figure(trainer)
            if self.widget is None:
                self.widget = go.FigureWidget(fig)
                if self.display:
                    from IPython.display import display
                    display(self.widget)
            self.refresh(trainer, fig)

    def on_batch_end(self, trainer, logs):
        if self.mode == "live" and trainer.step % self.every == 0 \
                and time.perf_counter() - self._last_draw >= self.min_interval:
            self.refresh(trainer)

    def on_fit_end(self, trainer, logs):
        if self.mode == "live":
            self.refresh(trainer)
            return
        fig = self._figure(trainer)
        if self.mode == "headless" and self.display:
            show(fig, mode="headless")

    def refresh(self, trainer, fig: go.Figure | None = None) -> None:
        """Redraw the live figure for the model as it is now: the background and title change in place."""
        self._last_draw = time.perf_counter()
        fig = fig if fig is not None else self._figure(trainer)
        if self.widget is None:
            return
        with self.widget.batch_update():
            self.widget.data[0].z = fig.data[0].z
            self.widget.layout.title.text = fig.layout.title.text
