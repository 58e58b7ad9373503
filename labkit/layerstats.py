"""LayerStats: what happens inside each layer while a model trains.

Every `every` optimizer steps it records, per layer (in forward order): the gradient norm, the weight
norm, the update/weight ratio of that step, and what the layer puts out: mean, std, the fraction of
dead ReLUs (units that are zero for the whole batch) and of saturated sigmoids/tanhs. It draws them
live beside the loss in JupyterLab, and as one static figure when run headless.

    stats = lk.LayerStats(every=10)
    trainer.fit(data, epochs=5, callbacks=[stats])
    stats.rows[0]   # {"step": 1, "layer": "0", "kind": "Linear", "grad_norm": ..., "dead": 0.0, ...}

Only the recorded steps pay: hooks are attached for one step and removed after it.
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from .callbacks import Callback
from .frontend import frontend
from .hparams import check_int
from .plots import CONFIG, METRIC_COLORS, PLOTLY_MIME, LiveFigure, x_axis, y_axis

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase, nn.Embedding)
RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
SQUASHING = (nn.Sigmoid, nn.Tanh)
KEYS = ("grad_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "dead", "saturated")


def _tensor(out):
    """The tensor a module returned (an RNN returns (output, state))."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out if isinstance(out, torch.Tensor) else None


class LayerStats(Callback):
    """Per-layer gradient norm, weight norm, update/weight ratio and activation statistics.

    every: record every N optimizer steps (and the first step).
    layers: module types to watch (default: Linear, Conv, RNN/LSTM/GRU, Embedding layers).
    plot: draw the statistics (live in JupyterLab, one static figure headless, nothing in a script).

    `rows` is plain data, one dict per recorded step and layer, layers in forward order, with
    `step`, `layer` (its name in the model), `kind`, `grad_norm`, `weight_norm`, `update_ratio`,
    `act_mean`, `act_std`, `dead` (fraction of the ReLU units after this layer that output zero
    for every example of the batch; None without a ReLU) and `saturated` (fraction of sigmoid/tanh
    outputs within 1 % of their limits; None without one).
    """
    main_process_only = True

    def __init__(self, every: int = 10, layers=None, plot: bool = True, mode: str | None = None,
                 max_fps: float = 2.0, title: str | None = None):
        self.every = check_int("every", every, minimum=1)
        self.layer_types = tuple(layers) if layers else LAYER_TYPES
        if not all(isinstance(t, type) and issubclass(t, nn.Module) for t in self.layer_types):
            raise TypeError(f"layers must be nn.Module classes such as (nn.Linear, nn.Conv2d), got {layers!r}")
        if mode not in (None, "live", "headless", "script"):
            raise ValueError(f"mode must be None (auto), 'live', 'headless' or 'script', got {mode!r}")
        if isinstance(max_fps, bool) or not isinstance(max_fps, (int, float)) or not max_fps > 0:
            raise ValueError(f"max_fps must be a number > 0, got {max_fps!r}")
        self.plot, self.mode, self.title, self.min_interval = plot, mode, title, 1.0 / max_fps
        self.rows: list[dict] = []
        self.losses: list[tuple[int, float]] = []
        self.live = None
        self._hooks: list = []
        self._armed = False
        self._next_draw = 0.0

    def reset(self) -> None:
        self.rows, self.losses = [], []

    def state_dict(self) -> dict:
        return {"rows": list(self.rows), "losses": list(self.losses)}

    def load_state_dict(self, state: dict) -> None:
        self.rows, self.losses = list(state["rows"]), list(state["losses"])

    # -- which modules ------------------------------------------------------------------------------
    def _layers(self, model: nn.Module):
        """(name, layer, activation module after it or None), in definition order."""
        found, last = [], None
        for name, module in model.named_modules():
            if isinstance(module, self.layer_types) and any(True for _ in module.parameters(recurse=False)):
                last = [name or type(module).__name__, module, None]
                found.append(last)
            elif isinstance(module, RELU_LIKE + SQUASHING) and last is not None and last[2] is None:
                last[2] = module
        return found

    # -- recording one step ---------------------------------------------------------------------------
    def _arm(self, trainer) -> None:
        """Attach hooks for the next optimizer step only."""
        self._armed = True
        self._seen_order: list[str] = []
        self._current: dict[str, dict] = {}
        self._before = {}
        model = getattr(trainer.model, "module", trainer.model)
        for name, layer, act in self._layers(model):
            row = self._current[name] = {"layer": name, "kind": type(layer).__name__}
            params = [p for p in layer.parameters(recurse=False) if p.requires_grad]
            self._before[name] = [p.detach().clone() for p in params]
            self._hooks.append(layer.register_forward_hook(self._on_output(name, row)))
            if act is not None:
                self._hooks.append(act.register_forward_hook(self._on_activation(row, act)))
            grads = {}
            for i, p in enumerate(params):
                self._hooks.append(p.register_post_accumulate_grad_hook(self._on_grad(row, grads, i)))

    def _on_output(self, name, row):
        def hook(module, inputs, out):
            t = _tensor(out)
            if not module.training or t is None or "act_mean" in row:
                return
            t = t.detach().float()
            self._seen_order.append(name)
            row["act_mean"], row["act_std"] = float(t.mean()), float(t.std()) if t.numel() > 1 else 0.0
        return hook

    def _on_activation(self, row, act):
        def hook(module, inputs, out):
            t = _tensor(out)
            if not module.training or t is None or ("dead" in row or "saturated" in row):
                return
            t = t.detach().float()
            if isinstance(act, RELU_LIKE):
                # a unit (a feature, or a channel of a conv) is dead when it is <= 0 for the whole batch
                units = t.transpose(0, 1).reshape(t.shape[1], -1) if t.dim() > 1 else t.reshape(1, -1)
                row["dead"] = float((units <= 0).all(dim=1).float().mean())
            else:
                low, high = (0.01, 0.99) if isinstance(act, nn.Sigmoid) else (-0.99, 0.99)
                row["saturated"] = float(((t <= low) | (t >= high)).float().mean())
        return hook

    def _on_grad(self, row, grads, i):
        def hook(p):
            if p.grad is not None:
                grads[i] = float(p.grad.detach().float().pow(2).sum())
                row["grad_norm"] = math.sqrt(sum(grads.values()))
        return hook

    def _finish(self, trainer, step: int) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks, self._armed = [], False
        model = getattr(trainer.model, "module", trainer.model)
        layers = {name: layer for name, layer, _ in self._layers(model)}
        order = list(dict.fromkeys(self._seen_order)) + [n for n in self._current if n not in self._seen_order]
        for name in order:
            row, layer = self._current[name], layers.get(name)
            if layer is None:
                continue
            params = [p for p in layer.parameters(recurse=False) if p.requires_grad]
            w2 = sum(float(p.detach().float().pow(2).sum()) for p in params)
            d2 = sum(float((p.detach() - b).float().pow(2).sum()) for p, b in zip(params, self._before[name]))
            out = {"step": step, "layer": name, "kind": row["kind"], "grad_norm": row.get("grad_norm", 0.0),
                   "weight_norm": math.sqrt(w2), "update_ratio": math.sqrt(d2) / max(math.sqrt(w2), 1e-12),
                   "act_mean": row.get("act_mean"), "act_std": row.get("act_std"),
                   "dead": row.get("dead"), "saturated": row.get("saturated")}
            self.rows.append(out)

    def _wants(self, step: int) -> bool:
        return step == 1 or step % self.every == 0

    # -- hooks of the Trainer ---------------------------------------------------------------------------
    def on_fit_start(self, trainer, logs):
        self.mode = self.mode or frontend()
        if self.plot and self.mode == "live" and self.live is None:
            self.live = LiveFigure(self.figure_dict(), height=420)
            from IPython.display import display
            display(self.live.widget)
        if self._wants(trainer.step + 1):
            self._arm(trainer)

    def on_batch_end(self, trainer, logs):
        if math.isfinite(logs["loss"]):
            self.losses.append((logs["step"], logs["loss"]))
        if self._armed:
            self._finish(trainer, logs["step"])
            if self.live is not None and time.perf_counter() >= self._next_draw:
                t0 = time.perf_counter()
                self.live.update(self.figure_dict(), "<layer statistics>")
                now = time.perf_counter()
                self._next_draw = now + max(self.min_interval, 19 * (now - t0))
        if self._wants(trainer.step + 1):
            self._arm(trainer)

    def on_fit_end(self, trainer, logs):
        for h in self._hooks:                # a fit that stopped with hooks armed
            h.remove()
        self._hooks, self._armed = [], False
        if not self.plot:
            return
        if self.live is not None:
            self.live.update(self.figure_dict(), "<layer statistics>")
        elif self.mode == "headless":
            from IPython.display import display
            display({PLOTLY_MIME: {**self.figure_dict(), "config": CONFIG},
                     "text/plain": f"<layer statistics: {len(self.rows)} rows>"}, raw=True)

    # -- reading the rows --------------------------------------------------------------------------------
    def layers(self) -> list[str]:
        """The watched layers' names, in forward order."""
        return list(dict.fromkeys(r["layer"] for r in self.rows))

    def series(self, key: str, layer: str) -> tuple[list, list]:
        """(steps, values) of one statistic of one layer."""
        if key not in KEYS:
            raise ValueError(f"key must be one of {KEYS}, got {key!r}")
        pts = [(r["step"], r[key]) for r in self.rows if r["layer"] == layer and r[key] is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    def last(self, key: str) -> dict:
        """{layer: value} of `key` at the latest recorded step."""
        if not self.rows:
            return {}
        step = self.rows[-1]["step"]
        return {r["layer"]: r[key] for r in self.rows if r["step"] == step}

    def figure_dict(self) -> dict:
        """Four small panels: loss, gradient norm per layer, update/weight ratio per layer, and the
        activations (dead ReLU or saturated fraction where there are such units, else the std)."""
        layers = self.layers()
        kinds = {r["layer"]: r["kind"] for r in self.rows}
        act_key = "dead" if any(r["dead"] is not None for r in self.rows) else \
            "saturated" if any(r["saturated"] is not None for r in self.rows) else "act_std"
        act_title = {"dead": "dead ReLUs (fraction)", "saturated": "saturated units (fraction)",
                     "act_std": "output std"}[act_key]
        cells = [("loss", None, [0, 0.45], [0.62, 1]), ("grad_norm", "gradient norm", [0.55, 1], [0.62, 1]),
                 ("update_ratio", "update / weight", [0, 0.45], [0, 0.38]), (act_key, act_title, [0.55, 1], [0, 0.38])]
        data, layout = [], {"height": 460, "plot_bgcolor": "white", "paper_bgcolor": "white", "showlegend": True,
                            "margin": {"l": 60, "r": 30, "t": 60 if self.title else 30, "b": 40},
                            "legend": {"orientation": "h", "y": -0.15, "title": {"text": "layer:"}},
                            "annotations": []}
        if self.title:
            layout["title"] = {"text": self.title, "x": 0, "xanchor": "left", "xref": "paper"}
        for i, (key, title, xd, yd) in enumerate(cells, start=1):
            ax = "" if i == 1 else str(i)
            if key == "loss":
                steps = [s for s, _ in self.losses]
                values = [v for _, v in self.losses]
                data.append({"type": "scatter", "x": steps, "y": values, "mode": "lines", "name": "loss",
                             "line": {"color": "#444", "width": 1}, "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                             "showlegend": False})
                kind, title = ("log" if values and min(values) > 0 and max(values) / min(values) > 100
                               else "linear"), "training loss"
            else:
                kind = "log" if key in ("grad_norm", "update_ratio") else "linear"
                for j, layer in enumerate(layers):
                    x, y = self.series(key, layer)
                    if kind == "log":
                        x, y = zip(*[(a, b) for a, b in zip(x, y) if b > 0]) if any(b > 0 for b in y) else ([], [])
                    data.append({"type": "scatter", "x": list(x), "y": list(y), "mode": "lines+markers",
                                 "marker": {"size": 4}, "name": f"{kinds[layer]} {layer}", "legendgroup": layer,
                                 "showlegend": i == 2, "line": {"color": METRIC_COLORS[j % len(METRIC_COLORS)]
                                                                if j else "#1f77b4"},
                                 "xaxis": f"x{ax}", "yaxis": f"y{ax}"})
            # the step title under the bottom row only: above, it would run into the panel titles below
            layout[f"xaxis{ax}"] = x_axis("step" if i > 2 else "", domain=xd, anchor=f"y{ax}")
            axis = y_axis(kind, "", [r[key] for r in self.rows] if key in KEYS else
                          [v for _, v in self.losses])
            if key in ("dead", "saturated"):
                axis["range"] = [-0.02, 1.02]
            layout[f"yaxis{ax}"] = {"anchor": f"x{ax}", "domain": yd, **axis}
            layout["annotations"].append({"text": title, "x": sum(xd) / 2, "y": yd[1], "xref": "paper",
                                          "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                          "showarrow": False, "font": {"size": 13}})
        return {"data": data, "layout": layout}

    def figure(self):
        """The statistics as a static plotly figure."""
        import plotly.graph_objects as go
        return go.Figure(self.figure_dict())
