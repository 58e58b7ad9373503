"""Hyperparameters by name, validated when set.

Every check raises a ValueError/TypeError that names the parameter, the bad value and what is
allowed, so a typo in a notebook or a papermill `-p` fails early with a message saying what to change.
"""
from __future__ import annotations

import inspect
import math
import numbers
import os

import torch
from torch import nn

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


def check_lr(lr, name: str = "lr") -> float:
    """A learning rate: a finite number > 0."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"{name} must be a number > 0 such as 1e-3, got {type(lr).__name__} {lr!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{name} must be a finite number > 0 such as 1e-3, got {lr!r}")
    return float(lr)


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int (not a bool, not a float) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        allowed = (f"in [{minimum}, {maximum}]" if minimum is not None and maximum is not None
                   else f">= {minimum}" if minimum is not None else f"<= {maximum}")
        raise ValueError(f"{name} must be an int {allowed}, got {value!r}")
    return int(value)


def check_params(**specs) -> None:
    """Check notebook parameters (e.g. from papermill) against expected types.

    >>> check_params(lr=(lr, float), epochs=(epochs, int), quick=(quick, bool))

    An int is accepted where a float is expected. The error names the parameter, the value
    received, and shows how to pass it right.
    """
    for name, (value, expected) in specs.items():
        types = expected if isinstance(expected, tuple) else (expected,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok and float in types and isinstance(value, numbers.Real) and not isinstance(value, bool):
            ok = True
        if not ok:
            wanted = " or ".join(t.__name__ for t in types)
            raise TypeError(f"parameter {name!r} must be {wanted}, got {type(value).__name__} {value!r}"
                            f" (with papermill: -p {name} <{wanted}>, e.g. unquoted numbers and True/False)")


def quick_default() -> bool:
    """The default of a notebook's `quick` parameter: True when LABKIT_QUICK=1 is set (as `pytest`
    and `labkit run --quick` do), so nbval, which passes no parameters, runs the quick path too."""
    return os.environ.get("LABKIT_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def make_loss(loss):
    """(name, callable) for a loss name or a callable(output, target)."""
    if isinstance(loss, str):
        key = loss.lower().replace("-", "_")
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; use one of {sorted(LOSSES)} or pass a callable")
        return key, LOSSES[key]()
    if callable(loss):
        name = type(loss).__name__ if isinstance(loss, nn.Module) else getattr(loss, "__name__", "loss")
        builtin = {cls: key for key, cls in LOSSES.items()}
        return builtin.get(type(loss), name), loss
    raise TypeError(f"loss must be a name from {sorted(LOSSES)} or a callable, got {type(loss).__name__}")


def make_optimizer(spec, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer from a name, an Optimizer class (called as cls(params, lr=lr)) or an instance."""
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    if isinstance(spec, str):
        key = spec.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {spec!r}; use one of {sorted(OPTIMIZERS)}, "
                             "a torch.optim.Optimizer class, or an instance")
        return OPTIMIZERS[key](params, lr, weight_decay)
    if inspect.isclass(spec) and issubclass(spec, torch.optim.Optimizer):
        kwargs = {"lr": lr}
        if weight_decay:
            kwargs["weight_decay"] = weight_decay
        return spec(params, **kwargs)
    raise TypeError(f"optimizer must be a name from {sorted(OPTIMIZERS)}, a torch.optim.Optimizer "
                    f"class or instance; got {type(spec).__name__} {spec!r}")


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
    if not metrics:
        return {}                  # torchmetrics takes seconds to import: only when asked for
    import torchmetrics as tm
    if isinstance(metrics, str):
        metrics = [metrics]
    items = metrics.items() if isinstance(metrics, dict) else [(None, m) for m in metrics]
    out = {}
    for name, m in items:
        if isinstance(m, str):
            key = m.lower()
            if key not in METRICS:
                raise ValueError(f"unknown metric {m!r}; use one of {list(METRICS)} "
                                 "or a torchmetrics.Metric instance")
            out[name or key] = _LazyMetric(key)
        elif isinstance(m, tm.Metric):
            out[name or type(m).__name__.lower()] = m
        else:
            raise TypeError(f"metrics must be names from {list(METRICS)} or torchmetrics.Metric "
                            f"instances, got {type(m).__name__}")
    return out
