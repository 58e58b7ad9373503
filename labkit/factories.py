"""Losses, optimizers and metrics by name: what `Trainer(loss=..., optimizer=..., metrics=...)` builds.

A name ("adam", "cross_entropy", "accuracy") is looked up here; a class or an instance is checked
and used. Every refusal names the parameter, the value and what to pass instead.
"""
from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from .checks import suggest

LOSSES = {
    "mse": nn.MSELoss,
    "cross_entropy": nn.CrossEntropyLoss,
    "bce": nn.BCEWithLogitsLoss,       # takes logits: the sigmoid is inside, computed stably
    "nll": nn.NLLLoss,
    "l1": nn.L1Loss,
    "mae": nn.L1Loss,
    "huber": nn.HuberLoss,
}

OPTIMIZERS = {
    "gd": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd),
    "sgd": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd),
    "momentum": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd),
    "nesterov": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
    "adagrad": lambda p, lr, wd: torch.optim.Adagrad(p, lr=lr, weight_decay=wd),
    "rmsprop": lambda p, lr, wd: torch.optim.RMSprop(p, lr=lr, weight_decay=wd),
    "adam": lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd),
    "adamw": lambda p, lr, wd: torch.optim.AdamW(p, lr=lr, weight_decay=wd),
}

METRICS = ("accuracy", "precision", "recall", "f1", "mse", "mae", "rmse", "r2")


def make_loss(loss):
    """(name, callable) for a loss name or a callable(output, target) such as nn.MSELoss()."""
    if isinstance(loss, str):
        key = loss.lower().replace("-", "_")
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}{suggest(key, LOSSES)}; use one of {sorted(LOSSES)} "
                             "or pass a callable(output, target)")
        return key, LOSSES[key]()
    if inspect.isclass(loss):
        raise TypeError(f"loss must be a name, an instance or a function; got the class {loss.__name__}: "
                        f"write loss={loss.__name__}() with parentheses")
    if callable(loss):
        name = type(loss).__name__ if isinstance(loss, nn.Module) else getattr(loss, "__name__", "loss")
        builtin = {cls: key for key, cls in LOSSES.items()}
        return builtin.get(type(loss), name), loss
    raise TypeError(f"loss must be a name from {sorted(LOSSES)} or a callable, got {type(loss).__name__} "
                    f"{loss!r:.60}")


def make_optimizer(spec, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer from a name, an Optimizer class (called as cls(params, lr=lr)) or an instance
    (returned as it is: the Trainer checks it is built on its model's parameters)."""
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    if isinstance(spec, str):
        key = spec.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {spec!r}{suggest(key, OPTIMIZERS)}; use one of "
                             f"{sorted(OPTIMIZERS)}, a torch.optim.Optimizer class, or an instance")
        return OPTIMIZERS[key](params, lr, weight_decay)
    if inspect.isclass(spec) and issubclass(spec, torch.optim.Optimizer):
        kwargs = {"lr": lr}
        if weight_decay:
            if "weight_decay" not in inspect.signature(spec).parameters:
                raise ValueError(f"weight_decay={weight_decay:g} was given but {spec.__name__} has no "
                                 "weight_decay option; pass weight_decay=0 or another optimizer")
            kwargs["weight_decay"] = weight_decay
        return spec(params, **kwargs)
    raise TypeError(f"optimizer must be a name from {sorted(OPTIMIZERS)}, a torch.optim.Optimizer "
                    f"class or instance; got {type(spec).__name__} {spec!r:.80}")


def rebuild_optimizer(optimizer: torch.optim.Optimizer, groups) -> torch.optim.Optimizer:
    """A fresh optimizer of the same class and options as `optimizer` (no state: no momentum, no
    Adam moments) over `groups`, a list of {"params": [...], option: value} dicts."""
    cls = type(optimizer)
    accepted = inspect.signature(cls).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    return cls(groups, **defaults)


class _LazyMetric:
    """A torchmetrics metric built at its first update, once the number of classes is known
    from the model's output (so `metrics=["accuracy"]` needs no extra arguments)."""

    def __init__(self, name: str):
        self.name, self.metric, self.device = name, None, torch.device("cpu")

    def _build(self, output: torch.Tensor, target: torch.Tensor):
        import torchmetrics as tm
        regression = {"mse": tm.MeanSquaredError, "mae": tm.MeanAbsoluteError, "r2": tm.R2Score}
        if self.name in regression:
            return regression[self.name]()
        if self.name == "rmse":
            return tm.MeanSquaredError(squared=False)
        if output.dim() == 1 or (output.dim() == 2 and output.size(1) == 1):
            kw = {"task": "binary"}
        else:
            kw = {"task": "multiclass", "num_classes": output.size(-1)}
            if self.name != "accuracy":
                kw["average"] = "macro"
        cls = {"accuracy": tm.Accuracy, "precision": tm.Precision, "recall": tm.Recall, "f1": tm.F1Score}
        return cls[self.name](**kw)

    def update(self, output, target):
        if self.metric is None:
            self.metric = self._build(output, target).to(self.device)
        if self.name in ("mse", "mae", "rmse", "r2") and output.shape != target.shape:
            target = target.reshape(output.shape)
        self.metric.update(output, target)

    def compute(self):
        if self.metric is None:
            return math.nan
        return self.metric.compute()

    def reset(self):
        if self.metric is not None:
            self.metric.reset()

    def to(self, device):
        self.device = device
        if self.metric is not None:
            self.metric.to(device)
        return self


def make_metrics(metrics) -> dict:
    """{name: metric} from names, torchmetrics.Metric instances, or a dict of either."""
    if metrics is None or (isinstance(metrics, (list, tuple, dict)) and not metrics):
        return {}                  # torchmetrics takes seconds to import: only when asked for
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple, dict)):
        if inspect.isclass(metrics) or hasattr(metrics, "update"):
            raise TypeError(f"metrics must be a list (or a {{name: metric}} dict), got a single "
                            f"{getattr(metrics, '__name__', type(metrics).__name__)}: "
                            "write metrics=[...] around it")
        raise TypeError(f"metrics must be a list of names from {list(METRICS)} or torchmetrics.Metric "
                        f"instances, or a {{name: metric}} dict; got {type(metrics).__name__} {metrics!r:.60}")
    import torchmetrics as tm
    items = metrics.items() if isinstance(metrics, dict) else [(None, m) for m in metrics]
    out = {}
    for name, m in items:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"metric names (the keys of the metrics dict) must be strings, got {name!r}")
        if isinstance(m, str):
            key = m.lower()
            if key not in METRICS:
                raise ValueError(f"unknown metric {m!r}{suggest(key, METRICS)}; use one of {list(METRICS)} "
                                 "or a torchmetrics.Metric instance")
            metric, default_name = _LazyMetric(key), key
        elif isinstance(m, tm.Metric):
            metric, default_name = m, type(m).__name__.lower()
        elif inspect.isclass(m):
            raise TypeError(f"metrics must be names or torchmetrics.Metric instances, got the class "
                            f"{m.__name__}: write {m.__name__}(...) with its arguments")
        else:
            raise TypeError(f"metrics must be names from {list(METRICS)} or torchmetrics.Metric "
                            f"instances, got {type(m).__name__} {m!r:.60}")
        name = name or default_name
        if name == "loss" or name in out:
            raise ValueError(f"metric name {name!r} is " + ("reserved for the loss" if name == "loss"
                             else "given twice") + "; name metrics apart with a dict, e.g. {'acc': ...}")
        out[name] = metric
    return out
