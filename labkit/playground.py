"""Playground: TensorFlow Playground with real PyTorch underneath.

Pick a 2-D data set, the input features, the hidden layers, the activation, the learning rate,
the batch size and a regularizer; press Train and watch the decision boundary form, what each
hidden neuron computes, and the train/test loss. Underneath it is a labkit MLP trained by a
labkit Trainer, so everything it shows is what the course's code does.

    pg = lk.Playground(dataset="circles")
    pg.set(hidden=[8], activation="tanh", lr=0.03)
    history = pg.train(epochs=50)          # from code: synchronous; history has val_accuracy
    pg.figure()                            # boundary, neuron maps and loss curves, static
    pg                                     # in JupyterLab: the controls and the live view
"""
from __future__ import annotations

import html
import math
import numbers
import threading
import time

import numpy as np
import torch
from torch import nn

from .i18n import _
from .callbacks import Callback
from .frontend import frontend
from .hparams import check_int, check_lr

DATASETS = ("circles", "xor", "moons", "spiral", "gaussian")
FEATURES = {
    "x1": lambda x: x[:, 0], "x2": lambda x: x[:, 1],
    "x1²": lambda x: x[:, 0] ** 2, "x2²": lambda x: x[:, 1] ** 2, "x1·x2": lambda x: x[:, 0] * x[:, 1],
    "sin x1": lambda x: torch.sin(x[:, 0]), "sin x2": lambda x: torch.sin(x[:, 1]),
}
ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
REGULARIZERS = ("none", "l1", "l2")
EXTENT = 6.0                # points live in [-6, 6]^2, as in TensorFlow Playground
# orange (class 0) <-> blue (class 1), TensorFlow Playground's palette
SCALE = [[0.0, "#f59322"], [0.5, "#e8eaeb"], [1.0, "#0877bd"]]
POINT_COLORS = ("#f59322", "#0877bd")
NEURON_GRID = 20            # points per axis of each neuron's small map


def make_points(dataset: str, n: int = 400, noise: float = 0.0, seed: int = 0):
    """(X [n, 2] float32 in about [-6, 6], y [n] int64 of 0/1) for one of DATASETS. noise: 0..0.5,
    the share of the data's scale added as Gaussian noise."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    rng = np.random.default_rng(seed)
    half = n // 2
    if dataset == "circles":          # class 1 inside radius 2.5, class 0 on a ring from 3.5 to 5
        r = np.concatenate([rng.uniform(3.5, 5.0, n - half), rng.uniform(0, 2.5, half)])
        a = rng.uniform(0, 2 * np.pi, n)
        x = np.stack([r * np.cos(a), r * np.sin(a)], 1)
        y = np.concatenate([np.zeros(n - half), np.ones(half)])
        x += rng.normal(0, noise * 5, x.shape)
    elif dataset == "xor":
        x = rng.uniform(-5, 5, (n, 2))
        x += np.sign(x) * 0.3                        # a small gap along the axes
        y = (x[:, 0] * x[:, 1] > 0).astype(float)
        x += rng.normal(0, noise * 5, x.shape)
    elif dataset == "gaussian":
        y = np.concatenate([np.zeros(n - half), np.ones(half)])
        centers = np.where(y[:, None] == 1, 2.0, -2.0)
        x = centers + rng.normal(0, 1.0 + noise * 4, (n, 2))
    elif dataset == "moons":
        from sklearn.datasets import make_moons
        x, y = make_moons((n - half, half), noise=0.05 + noise * 0.5, random_state=seed)
        x = (x - [0.5, 0.25]) * 3.2
    else:                                            # two interleaved spirals
        t = np.sqrt(rng.uniform(0, 1, n)) * 2.2 * np.pi
        y = np.concatenate([np.zeros(n - half), np.ones(half)])
        a = t + np.pi * y
        r = t / (2.2 * np.pi) * 5.5
        x = np.stack([r * np.sin(a), r * np.cos(a)], 1) + rng.normal(0, noise * 3 + 0.05, (n, 2))
    order = rng.permutation(n)
    return (torch.tensor(np.clip(x[order], -EXTENT, EXTENT), dtype=torch.float32),
            torch.tensor(y[order], dtype=torch.int64))


class Features(nn.Module):
    """The chosen input features of a 2-D point: [N, 2] -> [N, len(names)]."""

    def __init__(self, names):
        super().__init__()
        self.names = list(names)

    def forward(self, x):
        return torch.stack([FEATURES[n](x) for n in self.names], dim=1)

    def extra_repr(self):
        return ", ".join(self.names)


class _Penalized:
    """The data loss, plus rate * (L1 or L2 of the weights) while training (not when evaluating)."""

    def __init__(self, model, kind: str, rate: float):
        self.model, self.kind, self.rate = model, kind, rate
        self.bce = nn.BCEWithLogitsLoss()

    def __call__(self, out, y):
        loss = self.bce(out.reshape(-1), y.float().reshape(-1))
        if self.kind != "none" and self.rate > 0 and self.model.training:
            weights = [m.weight for m in self.model.modules() if isinstance(m, nn.Linear)]
            penalty = sum(w.abs().sum() for w in weights) if self.kind == "l1" else \
                sum(w.pow(2).sum() for w in weights) / 2
            loss = loss + self.rate * penalty
        return loss


class _Live(Callback):
    """Redraws the playground while it trains: at most max_fps, and at most ~5 % of the time."""

    def __init__(self, pg: "Playground"):
        self.pg, self._next = pg, 0.0

    def on_batch_end(self, trainer, logs):
        now = time.perf_counter()
        if now >= self._next:
            self.pg._redraw()
            spent = time.perf_counter() - now
            self.pg.frame_times.append(time.perf_counter())
            self._next = time.perf_counter() + max(1.0 / self.pg.max_fps, 19 * spent)

    def on_epoch_end(self, trainer, logs):
        self.pg._epoch_seen(logs)


class Playground:
    """A TensorFlow-Playground-style lab for 2-D classification, on a real labkit Trainer.

    dataset: one of DATASETS; noise: 0..0.5; train_fraction: share of the points to train on (the
      rest is the test set, reported as val_* in the history); n: number of points.
    features: names from FEATURES (default x1 and x2 only, as TensorFlow Playground).
    hidden: widths of the hidden layers, e.g. [4, 2]; activation: tanh, relu, sigmoid or identity.
    lr, batch_size; regularization: "none", "l1" or "l2", at regularization_rate.
    """

    def __init__(self, dataset: str = "circles", noise: float = 0.0, train_fraction: float = 0.5,
                 n: int = 400, features=("x1", "x2"), hidden=(4, 2), activation: str = "tanh",
                 lr: float = 0.03, batch_size: int = 10, regularization: str = "none",
                 regularization_rate: float = 0.0, seed: int = 0, grid: int = 40, max_fps: float = 8.0,
                 mode: str | None = None):
        self.mode = mode or frontend()
        self.seed = check_int("seed", seed, minimum=0)
        self.grid = check_int("grid", grid, minimum=10, maximum=200)
        if isinstance(max_fps, bool) or not isinstance(max_fps, numbers.Real) or not max_fps > 0:
            raise ValueError(f"max_fps must be a number > 0, got {max_fps!r}")
        self.max_fps = float(max_fps)
        self.settings: dict = {}
        self._set_values(dict(dataset=dataset, noise=noise, train_fraction=train_fraction, n=n,
                              features=tuple(features), hidden=tuple(hidden), activation=activation, lr=lr,
                              batch_size=batch_size, regularization=regularization,
                              regularization_rate=regularization_rate))
        self.frame_times: list[float] = []
        self.live = None
        self._thread = None
        self._fitting = False
        self._widgets = None
        self._rebuild_all()

    # -- settings -----------------------------------------------------------------------------------
    @staticmethod
    def _check(name, value):
        if name == "dataset" and value not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {value!r}")
        if name in ("noise", "train_fraction", "regularization_rate"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
            lo, hi = {"noise": (0, 0.5), "train_fraction": (0.1, 0.9), "regularization_rate": (0, 10)}[name]
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
            return float(value)
        if name == "n":
            return check_int("n", value, minimum=20, maximum=5000)
        if name == "features":
            if isinstance(value, str) or not value or any(f not in FEATURES for f in value):
                raise ValueError(f"features must be a non-empty list of names from {list(FEATURES)}, got {value!r}")
            return tuple(dict.fromkeys(value))
        if name == "hidden":
            if isinstance(value, (int, str)) or not isinstance(value, (list, tuple)) or len(value) > 6:
                raise ValueError(f"hidden must be a list of up to 6 layer widths such as [4, 2] "
                                 f"([] for none), got {value!r}")
            return tuple(check_int(f"hidden[{i}]", w, minimum=1, maximum=8) for i, w in enumerate(value))
        if name == "activation" and value not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {value!r}")
        if name == "lr":
            return check_lr(value)
        if name == "batch_size":
            return check_int("batch_size", value, minimum=1, maximum=1000)
        if name == "regularization" and value not in REGULARIZERS:
            raise ValueError(f"regularization must be one of {REGULARIZERS}, got {value!r}")
        return value

    def _set_values(self, values: dict) -> set:
        known = ("dataset", "noise", "train_fraction", "n", "features", "hidden", "activation", "lr",
                 "batch_size", "regularization", "regularization_rate")
        checked = {}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"no setting named {name!r}; the playground has {list(known)}")
            checked[name] = self._check(name, value)
        changed = {k for k, v in checked.items() if self.settings.get(k) != v}
        self.settings.update(checked)
        return changed

    def set(self, **values) -> "Playground":
        """Change settings from code: pg.set(dataset="spiral", hidden=[8, 8], lr=0.01). A new data
        set, split, features or architecture starts a fresh model; lr, batch size and the
        regularizer apply to the next training."""
        if self.fitting:
            raise RuntimeError("the playground is training: stop it before changing its settings")
        changed = self._set_values(values)
        if changed & {"dataset", "noise", "train_fraction", "n"}:
            self._rebuild_all()
        elif changed & {"features", "hidden", "activation"}:
            self._rebuild_model()
        else:
            self._configure()
        self._sync_widgets()
        return self

    # -- data, model, trainer --------------------------------------------------------------------------
    def _rebuild_all(self) -> None:
        from .data import make_loaders
        s = self.settings
        X, y = make_points(s["dataset"], s["n"], s["noise"], self.seed)
        k = int(round(len(X) * s["train_fraction"]))
        self.X_train, self.y_train, self.X_test, self.y_test = X[:k], y[:k], X[k:], y[k:]
        from torch.utils.data import TensorDataset
        self.data = make_loaders(TensorDataset(self.X_train, self.y_train.float()),
                                 TensorDataset(self.X_test, self.y_test.float()),
                                 batch_size=min(s["batch_size"], k), seed=self.seed)
        self._rebuild_model()

    def _rebuild_model(self) -> None:
        from .models import MLP
        from .train import Trainer
        s = self.settings
        torch.manual_seed(self.seed)
        self.model = nn.Sequential(Features(s["features"]),
                                   MLP(len(s["features"]), list(s["hidden"]), 1, activation=s["activation"]))
        self.trainer = Trainer(self.model, loss=_Penalized(self.model, s["regularization"],
                                                           s["regularization_rate"]),
                               optimizer="sgd", lr=s["lr"], metrics=["accuracy"], device="cpu")
        self.trainer.loss_name = "bce"          # outputs are logits of class 1: read as binary
        self._epochs_seen: list[dict] = []
        self._configure()

    def _configure(self) -> None:
        s = self.settings
        self.trainer.lr = s["lr"]
        self.trainer.loss_fn = _Penalized(self.model, s["regularization"], s["regularization_rate"])
        bs = min(s["batch_size"], len(self.X_train))
        if bs != self.data.batch_size:
            self.data = self.data.with_batch_size(bs)
        if self.data.val is not None and self.data.val.batch_size != len(self.X_test):
            # the test points in one batch: evaluating costs one forward pass, whatever the batch size
            from .data import DataBundle
            from torch.utils.data import DataLoader
            self.data = DataBundle(self.data.train, DataLoader(self.data.val.dataset, batch_size=len(self.X_test)),
                                   None, self.data.info)

    @property
    def history(self):
        return self.trainer.history

    @property
    def fitting(self) -> bool:
        return self._fitting or bool(getattr(self.trainer, "is_fitting", False))

    def train(self, epochs: int = 50):
        """Train `epochs` more epochs, synchronously; returns the History (loss, val_loss,
        val_accuracy: the test points). Live, the view redraws as it goes."""
        check_int("epochs", epochs, minimum=1)
        if self.fitting:
            raise RuntimeError("the playground is already training: stop it first")
        self._fitting = True
        try:
            callbacks = [_Live(self)] if self.live is not None else [_EpochsOnly(self)]
            history = self.trainer.fit(self.data, epochs=epochs, callbacks=callbacks)
        finally:
            self._fitting = False
        if self.live is not None:
            self._redraw()
        return history

    def stop(self) -> None:
        self.trainer.stop("stopped (Stop button)")

    def _epoch_seen(self, logs):
        self._epochs_seen.append(logs)

    # -- what it draws ------------------------------------------------------------------------------------
    @torch.no_grad()
    def _maps(self, g: int | None = None):
        """(axis values, output probability [g, g], per-layer neuron outputs [[g, g] ...])."""
        g = g or self.grid
        axis = torch.linspace(-EXTENT, EXTENT, g)
        gx, gy = torch.meshgrid(axis, axis, indexing="xy")
        pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
        was = self.model.training
        self.model.eval()
        h = self.model[0](pts)
        neurons = []
        mlp = self.model[1]
        for layer in list(mlp)[:-1]:
            h = layer(h)
            if not isinstance(layer, nn.Linear):               # after the activation
                neurons.append([h[:, j].reshape(g, g).numpy() for j in range(h.shape[1])])
        out = list(mlp)[-1](h)
        self.model.train(was)
        return axis.numpy(), torch.sigmoid(out).reshape(g, g).numpy(), neurons

    def accuracy(self, split: str = "test") -> float:
        X, y = (self.X_test, self.y_test) if split == "test" else (self.X_train, self.y_train)
        with torch.no_grad():
            was = self.model.training
            self.model.eval()
            p = (self.model(X).reshape(-1) > 0).long()
            self.model.train(was)
        return float((p == y).float().mean())

    def figure_dict(self) -> dict:
        """The whole view as plotly JSON: neuron maps (one column per hidden layer), the decision
        boundary with the train (white edge) and test (black edge) points, and the loss curves."""
        axis, prob, _neurons = self._maps()
        small, _prob, neurons = self._maps(NEURON_GRID)
        ax = [round(float(v), 2) for v in axis]
        sx = [round(float(v), 2) for v in small]
        prob = np.round(prob.astype(np.float64), 2).tolist()
        data, layout = [], {"height": 440, "plot_bgcolor": "white", "paper_bgcolor": "white",
                            "margin": {"l": 30, "r": 30, "t": 50, "b": 40}, "showlegend": True,
                            "legend": {"x": 0.82, "y": 0.36, "xanchor": "left", "yanchor": "top",
                                       "font": {"size": 11}},
                            "annotations": []}
        n_layers = len(neurons)
        left = 0.30 if n_layers else 0.0
        # neuron maps: one column per hidden layer, one small square per neuron
        col_w = left / max(n_layers, 1)
        k = 2
        for c, layer in enumerate(neurons):
            rows = len(layer)
            tile = min(1.0 / 8, 0.95 / max(rows, 1))
            for r, z in enumerate(layer):
                zmax = float(np.abs(z).max()) or 1.0
                name = f"x{k}" if k > 1 else "x"
                x0 = c * col_w + 0.1 * col_w
                y1 = 1 - r * tile * 1.05
                data.append({"type": "heatmap", "z": np.round(z.astype(np.float64), 2).tolist(), "x": sx, "y": sx,
                             "colorscale": SCALE, "zmin": -zmax if z.min() < 0 else 0, "zmax": zmax,
                             "showscale": False, "hoverinfo": "skip", "xaxis": f"x{k}", "yaxis": f"y{k}",
                             "showlegend": False})
                layout[f"xaxis{k}"] = {"domain": [x0, x0 + 0.8 * col_w], "anchor": f"y{k}", "visible": False}
                layout[f"yaxis{k}"] = {"domain": [max(0, y1 - tile), y1], "anchor": f"x{k}", "visible": False}
                k += 1
            layout["annotations"].append({"text": _("layer {n}").format(n=c + 1), "x": c * col_w + 0.5 * col_w, "y": 1.0,
                                          "xref": "paper", "yref": "paper", "yanchor": "bottom",
                                          "showarrow": False, "font": {"size": 11}})
        # the decision boundary
        bx = [left + 0.02, 0.74]
        data.append({"type": "heatmap", "z": prob, "x": ax, "y": ax, "zmin": 0, "zmax": 1,
                     "colorscale": SCALE, "showscale": False, "name": "P(blue)", "xaxis": "x", "yaxis": "y",
                     "hovertemplate": "P(blue) %{z:.2f}<extra></extra>", "showlegend": False})
        data.append({"type": "contour", "z": prob, "x": ax, "y": ax, "showscale": False,
                     "contours": {"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"},
                     "line": {"color": "#333", "width": 1.5}, "hoverinfo": "skip", "xaxis": "x", "yaxis": "y",
                     "showlegend": False})
        for X, y, edge, split in ((self.X_train, self.y_train, "white", "train"),
                                  (self.X_test, self.y_test, "black", "test")):
            for c in (0, 1):
                m = (y == c).numpy()
                data.append({"type": "scatter", "mode": "markers", "x": np.round(X[m, 0].double().numpy(), 2).tolist(),
                             "y": np.round(X[m, 1].double().numpy(), 2).tolist(), "name": f"{split} · class {c}",
                             "marker": {"color": POINT_COLORS[c], "size": 6, "line": {"color": edge, "width": 1}},
                             "xaxis": "x", "yaxis": "y", "hoverinfo": "skip"})
        layout["xaxis"] = {"domain": bx, "range": [-EXTENT, EXTENT], "anchor": "y", "title": {"text": "x1"},
                           "showgrid": False, "zeroline": False}
        layout["yaxis"] = {"range": [-EXTENT, EXTENT], "anchor": "x", "scaleanchor": "x", "constrain": "domain",
                           "showgrid": False, "zeroline": False, "title": {"text": "x2"}}
        # the loss curves
        rows = self.trainer.history.epochs
        epochs = [r["epoch"] for r in rows]
        for key, color, name in (("loss", "#888", "train loss"), ("val_loss", "#111", "test loss")):
            data.append({"type": "scatter", "x": epochs, "y": [r.get(key) for r in rows], "mode": "lines",
                         "name": name, "line": {"color": color, "width": 2, "dash": "dot" if key == "loss" else "solid"},
                         "xaxis": f"x{k}", "yaxis": f"y{k}"})
        layout[f"xaxis{k}"] = {"domain": [0.82, 1], "anchor": f"y{k}", "title": {"text": _("epoch")},
                               "rangemode": "nonnegative", "gridcolor": "#eee"}
        layout[f"yaxis{k}"] = {"domain": [0.6, 1], "anchor": f"x{k}", "title": {"text": _("loss")},
                               "rangemode": "tozero", "gridcolor": "#eee"}
        last = rows[-1] if rows else {}
        layout["title"] = {"text": _("{dataset} · epoch {epoch} · test loss {loss:.3f} · test accuracy {accuracy:.1%}").format(
                               dataset=self.settings["dataset"], epoch=self.trainer.epoch,
                               loss=last.get("val_loss", math.nan), accuracy=self.accuracy()),
                           "x": 0, "xanchor": "left", "xref": "paper", "font": {"size": 14}}
        return {"data": data, "layout": layout}

    def figure(self):
        """The current view as a static plotly figure."""
        import plotly.graph_objects as go
        return go.Figure(self.figure_dict())

    def _redraw(self) -> None:
        if self.live is not None:
            self.live.update(self.figure_dict(), "<playground>")

    # -- the widget ------------------------------------------------------------------------------------------
    def _build_widgets(self):
        import ipywidgets as W
        from .plots import LiveFigure
        s, st, lay = self.settings, {"description_width": "100px"}, W.Layout(width="300px")
        w = self._widgets = {
            "dataset": W.Dropdown(options=DATASETS, value=s["dataset"], description=_("data"), style=st, layout=lay),
            "noise": W.FloatSlider(value=s["noise"], min=0, max=0.5, step=0.05, description=_("noise"),
                                   style=st, layout=lay, continuous_update=False),
            "train_fraction": W.FloatSlider(value=s["train_fraction"], min=0.1, max=0.9, step=0.1,
                                            description=_("train share"), style=st, layout=lay,
                                            continuous_update=False),
            "features": W.SelectMultiple(options=list(FEATURES), value=s["features"], description=_("features"),
                                         rows=7, style=st, layout=W.Layout(width="300px")),
            "hidden": W.Text(value=", ".join(map(str, s["hidden"])), description=_("hidden widths"),
                             placeholder="e.g. 4, 2 (empty: none)", style=st, layout=lay, continuous_update=False),
            "activation": W.Dropdown(options=ACTIVATIONS, value=s["activation"], description=_("activation"),
                                     style=st, layout=lay),
            "lr": W.Dropdown(options=sorted({1e-5, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, s["lr"]}),
                             value=s["lr"], description=_("learning rate"), style=st, layout=lay),
            "batch_size": W.IntSlider(value=s["batch_size"], min=1, max=30, description=_("batch size"),
                                      style=st, layout=lay, continuous_update=False),
            "regularization": W.Dropdown(options=REGULARIZERS, value=s["regularization"],
                                         description=_("regularization"), style=st, layout=lay),
            "regularization_rate": W.Dropdown(options=sorted({0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1,
                                                              s["regularization_rate"]}),
                                              value=s["regularization_rate"], description=_("reg. rate"),
                                              style=st, layout=lay),
        }
        for name, widget in w.items():
            widget.observe(lambda change, name=name: self._on_widget(name, change["new"]), names="value")
        self.train_button = W.Button(description=_("Train"), icon="play", button_style="success")
        self.stop_button = W.Button(description=_("Stop"), icon="stop", button_style="danger", disabled=True)
        self.reset_button = W.Button(description=_("Reset"), icon="undo")
        self.epochs = W.IntSlider(value=100, min=1, max=1000, description=_("epochs"), style=st, layout=lay)
        self.status = W.HTML(_("<b>Ready.</b> Pick data and a network, then press Train."))
        self.train_button.on_click(lambda _: self.train_in_background())
        self.stop_button.on_click(lambda _: self.stop())
        self.reset_button.on_click(lambda _: self.reset())
        self.live = LiveFigure(self.figure_dict(), height=440)
        left = W.VBox([w["dataset"], w["noise"], w["train_fraction"], w["features"]])
        right = W.VBox([w["hidden"], w["activation"], w["lr"], w["batch_size"], w["regularization"],
                        w["regularization_rate"], self.epochs])
        return W.VBox([W.HBox([left, right]), W.HBox([self.train_button, self.stop_button, self.reset_button]),
                       self.status, self.live.widget])

    def _on_widget(self, name, value):
        if getattr(self, "_syncing", False):
            return
        try:
            if name == "hidden":
                value = [int(v) for v in value.replace(" ", "").split(",") if v]
            elif name == "features":
                value = list(value)
            self.set(**{name: value})
            self._redraw()
            self._say(_("{name} set. Press Train.").format(name=name))
        except (ValueError, TypeError, RuntimeError) as e:
            self._say(f"{name}: {e}", "#c00")
            self._sync_widgets()

    def _sync_widgets(self):
        if self._widgets is None:
            return
        self._syncing = True
        try:
            for name, widget in self._widgets.items():
                value = self.settings[name]
                if name == "hidden":
                    value = ", ".join(map(str, value))
                elif name in ("lr", "regularization_rate") and value not in widget.options:
                    widget.options = sorted(set(widget.options) | {value})
                widget.value = value
        finally:
            self._syncing = False

    def _say(self, text: str, color: str = "inherit"):
        if self._widgets is not None:
            self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def train_in_background(self):
        if self.fitting:
            self._say(_("Already training: press Stop first."), "#c00")
            return None
        self._fitting = True
        epochs = self.epochs.value

        def work():
            self.train_button.disabled, self.stop_button.disabled = True, False
            self._say(_("Training {epochs} epochs…").format(epochs=epochs))
            self._fitting = False
            try:
                self.train(epochs)
                t = self.trainer
                fps = self.fps()
                done = _("Stopped at epoch {epoch}") if t.stop_reason else _("Done at epoch {epoch}")
                self._say(done.format(epoch=t.epoch) + _(": test accuracy {accuracy:.1%}").format(
                    accuracy=self.accuracy()) + (_(" · {fps:.1f} frames/s").format(fps=fps) if fps else ""))
            except Exception as e:
                self._say(_("Error: {kind}: {error}").format(kind=type(e).__name__, error=e), "#c00")
            finally:
                self.train_button.disabled, self.stop_button.disabled = False, True

        self.frame_times = []
        self._thread = threading.Thread(target=work, name="labkit-playground", daemon=True)
        self._thread.start()
        return self._thread

    def reset(self):
        if self._thread is not None and self._thread.is_alive():
            self.stop()
            self._thread.join()
        self._rebuild_model()
        self._redraw()
        self._say(_("Reset: a fresh network."))

    def wait(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def fps(self) -> float | None:
        """Frames per second of the live view during the last training."""
        t = self.frame_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 2 and t[-1] > t[0] else None

    def _repr_mimebundle_(self, **kwargs):
        if self.mode != "live":           # headless: the static view, no widget state
            from .plots import CONFIG, PLOTLY_MIME
            return {PLOTLY_MIME: {**self.figure_dict(), "config": CONFIG}, "text/plain": repr(self)}
        box = self._box if getattr(self, "_box", None) is not None else self._build_widgets()
        self._box = box
        return box._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        s = self.settings
        return (f"Playground(dataset={s['dataset']!r}, features={list(s['features'])}, hidden={list(s['hidden'])}, "
                f"activation={s['activation']!r}, lr={s['lr']:g}, epoch={self.trainer.epoch})")


class _EpochsOnly(Callback):
    def __init__(self, pg):
        self.pg = pg

    def on_epoch_end(self, trainer, logs):
        self.pg._epoch_seen(logs)
