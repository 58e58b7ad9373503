"""Getting a trained model out of the notebook: its size, its speed, and three ways to shrink it.

    model_size_mb(model)                          # MB of its saved state_dict (or of a file)
    measure_latency(model, x)                     # {"median_ms": ..., "min_ms": ..., ...}
    latency_table({"eager": model, "onnx": run}, lambda b: torch.randn(b, 64), [1, 8, 64])
    sparsity(model)                               # fraction of zero weights in Linear/Conv layers
    prune_magnitude(model, 0.8)                   # a copy with the 80% smallest weights set to 0
    distillation_loss(student_logits, teacher_logits, target, temperature=4.0, alpha=0.5)
    DistillationTrainer(student, teacher, temperature=4.0, alpha=0.5, lr=1e-3, ...)

Latencies are wall-clock medians over repeated calls: on a shared machine the median is far
steadier than the mean, and a few warm-up calls keep one-time costs (allocations, lazy
initialisation, kernel selection) out of the numbers.
"""
from __future__ import annotations

import copy
import io
import math
import numbers
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from .hparams import check_int
from .train import Trainer

MB = 1e6                                    # bytes in a megabyte (SI), as file browsers count
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def model_size_mb(model) -> float:
    """Size in MB (10**6 bytes) of `model`'s state_dict as torch.save writes it, or of a file
    (an exported .onnx or .pt2) when given a path."""
    if isinstance(model, (str, os.PathLike)):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"model_size_mb: no file at {os.fspath(model)!r}")
        return os.path.getsize(model) / MB
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or a file path, got {type(model).__name__}")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / MB


def measure_latency(fn, *inputs, repeats: int = 20, warmup: int = 3) -> dict:
    """Time `fn(*inputs)`: {"median_ms", "mean_ms", "min_ms", "max_ms", "repeats"}.

    fn: a model or any callable (an ONNX Runtime session wrapped in a function, say). It runs
    without autograd; on a GPU each call is synchronised so the time includes the kernels.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a model or a callable, got {type(fn).__name__}")
    check_int("repeats", repeats, minimum=1)
    check_int("warmup", warmup, minimum=0)
    on_gpu = any(isinstance(a, torch.Tensor) and a.is_cuda for a in inputs)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            fn(*inputs)
            if on_gpu:
                torch.cuda.synchronize()    # CUDA calls return before the GPU has finished
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
            "min_ms": min(times), "max_ms": max(times), "repeats": repeats}


def latency_table(runners: dict, make_input, batch_sizes, repeats: int = 20, warmup: int = 3) -> list[dict]:
    """Latency of each runner at each batch size, one row per pair:
    {"runtime", "batch_size", "median_ms", "us_per_item"}.

    runners: {name: callable}; each is called with make_input(batch_size), which returns one
    input or a tuple of inputs. The same input goes to every runner at a given batch size.
    """
    if not isinstance(runners, dict) or not runners:
        raise TypeError(f"runners must be a non-empty dict {{name: callable}}, got {runners!r}")
    if not callable(make_input):
        raise TypeError(f"make_input must be a function batch_size -> input(s), got {type(make_input).__name__}")
    sizes = list(batch_sizes) if isinstance(batch_sizes, (list, tuple, range)) else None
    if not sizes:
        raise ValueError(f"batch_sizes must be a non-empty list of ints >= 1, got {batch_sizes!r}")
    for i, b in enumerate(sizes):
        check_int(f"batch_sizes[{i}]", b, minimum=1)
    rows = []
    for b in sizes:
        inputs = make_input(b)
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        for name, fn in runners.items():
            ms = measure_latency(fn, *inputs, repeats=repeats, warmup=warmup)["median_ms"]
            rows.append({"runtime": name, "batch_size": b, "median_ms": ms, "us_per_item": 1e3 * ms / b})
    return rows


def _weights(model: nn.Module, layer_types) -> list[tuple[nn.Module, torch.Tensor]]:
    """(module, weight) for each layer of the given types; a weight shared by several layers
    (GPT's tied embedding and output head) is listed once."""
    seen, found = set(), []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, layer_types) and isinstance(weight, torch.Tensor) and id(weight) not in seen:
            seen.add(id(weight))
            found.append((module, weight))
    if not found:
        names = ", ".join(t.__name__ for t in layer_types)
        raise ValueError(f"the model has no layers of type {names} to measure or prune; "
                         f"pass layer_types=(...) with the layer classes it uses")
    return found


def sparsity(model: nn.Module, layer_types=PRUNABLE) -> float:
    """Fraction of exactly-zero weights in the model's Linear and Conv layers (biases excluded)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    weights = [w for _, w in _weights(model, tuple(layer_types))]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


def prune_magnitude(model: nn.Module, amount: float, layer_types=PRUNABLE) -> nn.Module:
    """A copy of `model` with the fraction `amount` of smallest-magnitude weights set to zero,
    ranked over all its Linear/Conv layers together (global unstructured L1 pruning).

    Uses torch.nn.utils.prune and then makes the zeros permanent (prune.remove), so the copy is
    an ordinary model: no masks, the same state_dict keys, the same file size.
    """
    from torch.nn.utils import prune

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not 0 <= amount <= 1:
        raise ValueError(f"amount must be a fraction of the weights in [0, 1] (0.8 zeroes 80%), got {amount!r}")
    pruned = copy.deepcopy(model)                      # deepcopy keeps tied weights tied
    modules = [m for m, _ in _weights(pruned, tuple(layer_types))]
    params = [(m, "weight") for m in modules]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(amount))
    for m in modules:
        prune.remove(m, "weight")                      # weight = weight_orig * mask, for good
    return pruned


def _check_temperature_alpha(temperature, alpha) -> tuple[float, float]:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a number > 0 (1 leaves the teacher's probabilities as "
                         f"they are, higher softens them), got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1] (the weight of the true-label loss; 0 learns from "
                         f"the teacher alone), got {alpha!r}")
    return float(temperature), float(alpha)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target=None,
                      temperature: float = 4.0, alpha: float = 0.5) -> torch.Tensor:
    """Hinton et al.'s knowledge-distillation loss:

        alpha * CE(target, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

    The T^2 keeps the soft term's gradients the same size whatever the temperature. Logits are
    [B, C] or sequence logits [B, T, C]; `target` (class ids) is needed unless alpha=0, which
    learns from the teacher alone.
    """
    temperature, alpha = _check_temperature_alpha(temperature, alpha)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits must have the same shape, got "
                         f"{list(student_logits.shape)} and {list(teacher_logits.shape)}")
    n_classes = student_logits.size(-1)
    s, t = student_logits.reshape(-1, n_classes), teacher_logits.reshape(-1, n_classes).detach()
    soft = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.log_softmax(t / temperature, dim=-1),
                    reduction="batchmean", log_target=True) * temperature ** 2
    if alpha == 0:
        return soft
    if target is None:
        raise ValueError(f"alpha={alpha} mixes in the true labels: pass target (class ids), or alpha=0")
    return alpha * F.cross_entropy(s, target.reshape(-1)) + (1 - alpha) * soft


class DistillationTrainer(Trainer):
    """A Trainer that teaches `student` to match a frozen copy of `teacher` (distillation_loss).

    Each training batch goes through the teacher too (eval mode, no gradients); evaluate()
    reports the plain cross-entropy on true labels, so the val curves of a distilled student and
    of one trained alone are comparable. Other keyword arguments are Trainer's (lr, optimizer, ...).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = 4.0,
                 alpha: float = 0.5, **kwargs):
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be a torch.nn.Module, got {type(teacher).__name__}")
        if "loss" in kwargs:
            raise TypeError("DistillationTrainer takes no loss: it trains with distillation_loss and "
                            "evaluates with cross-entropy; set temperature and alpha instead")
        temperature, alpha = _check_temperature_alpha(temperature, alpha)
        super().__init__(student, loss="cross_entropy", **kwargs)
        self.temperature, self.alpha = temperature, alpha
        # A frozen copy on the trainer's device: the caller's teacher is neither moved nor changed.
        self.teacher = copy.deepcopy(teacher).to(self.device).eval().requires_grad_(False)
        self._teacher_logits = None

    def train_step(self, batch, update: bool = True):
        with torch.no_grad():
            self._teacher_logits = self.teacher(batch[0].to(self.device))
        return super().train_step(batch, update)

    def compute_loss(self, output, target):
        # Only a training step leaves teacher logits here; evaluation gets the true-label loss.
        teacher_logits, self._teacher_logits = self._teacher_logits, None
        if teacher_logits is None:
            return super().compute_loss(output, target)
        return distillation_loss(output.float(), teacher_logits.float(), target, self.temperature, self.alpha)
