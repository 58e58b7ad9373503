"""LoRA: fine-tune a frozen network by learning low-rank updates to its Linear layers.

Instead of changing a weight W (out x in) we learn W + (alpha / r) * B A with A (r x in)
and B (out x r), r much smaller than in and out: (in + out) * r numbers instead of in * out.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..checks import check_positive
from .utils import check_int, count_parameters


def _check_alpha(alpha) -> None:
    check_positive("alpha", alpha, hint="the update is scaled by alpha / r")


class LoRALinear(nn.Module):
    """Wrap `base` (kept frozen) and add a trainable low-rank update of rank r."""

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        check_int("r", r)
        _check_alpha(alpha)
        self.base = base.requires_grad_(False)
        self.r, self.alpha = r, alpha
        # Dividing by r means changing r does not change how big the update is at the start
        # of training, so a learning rate tuned for one rank works for others.
        self.scaling = alpha / r
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        # B starts at zero so the wrapped layer initially computes exactly what base does;
        # A starts random (as nn.Linear would) so B gets a non-zero gradient from step one.
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x A^T B^T goes through the r-dim bottleneck and never builds the full B A matrix.
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain nn.Linear computing the same function: W + (alpha / r) B A folded in,
        so the fine-tuned model runs as fast as the original."""
        base = self.base
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           device=base.weight.device, dtype=base.weight.dtype)
        merged.weight.copy_(base.weight + self.scaling * (self.lora_B @ self.lora_A))
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def _matches(name: str, module: nn.Module, target) -> bool:
    # A name matches as the full dotted path or its last parts: "c_attn" finds every
    # "transformer.h.<i>.attn.c_attn".
    for t in target:
        if isinstance(t, str) and (name == t or name.endswith("." + t)):
            return True
        if isinstance(t, type) and isinstance(module, t):
            return True
    return False


def _find_linears(module: nn.Module, target, prefix: str = ""):
    """Yield (parent, attribute name) for every nn.Linear matching `target`."""
    for attr, child in module.named_children():
        name = f"{prefix}.{attr}" if prefix else attr
        if isinstance(child, LoRALinear):
            continue  # already adapted: do not wrap its frozen base a second time
        if isinstance(child, nn.Linear) and _matches(name, child, target):
            yield module, attr
        else:
            yield from _find_linears(child, target, name)


def add_lora(model: nn.Module, r: int = 4, alpha: float = 8, target=(nn.Linear,)) -> int:
    """Freeze `model` and swap its matching nn.Linear layers for LoRALinear, in place.

    target: layer names (e.g. ("c_attn", "c_proj")), module types (e.g. nn.Linear, the
    default: every Linear layer), or a mix. Everything but the LoRA adapters (A and B)
    ends up frozen. Returns the number of trainable parameters.
    """
    if isinstance(target, (str, type)):
        target = (target,)
    target = tuple(target)
    if not target or not all(isinstance(t, (str, type)) for t in target):
        raise TypeError(f"target must be layer names and/or module types such as ('c_attn',) "
                        f"or (nn.Linear,), got {target!r}")
    check_int("r", r)
    _check_alpha(alpha)
    if isinstance(model, nn.Linear):
        raise TypeError("add_lora swaps layers inside a model; wrap a single layer with "
                        "LoRALinear(layer, r, alpha) instead")

    found = list(_find_linears(model, target))
    if not found:
        linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"target={target!r} matched no nn.Linear layer in the model (layers "
                         f"already wrapped in LoRALinear are skipped); its Linear layers are "
                         f"{linear_names[:20]}")
    model.requires_grad_(False)
    for parent, attr in found:
        setattr(parent, attr, LoRALinear(getattr(parent, attr), r=r, alpha=alpha))
    for module in model.modules():  # adapters from an earlier call stay trainable
        if isinstance(module, LoRALinear):
            module.lora_A.requires_grad_(True)
            module.lora_B.requires_grad_(True)
    return count_parameters(model, trainable_only=True)


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear in `model` by its merged nn.Linear, in place; returns model."""
    for name, child in model.named_children():
        if isinstance(child, LoRALinear):
            setattr(model, name, child.merge())
        else:
            merge_lora(child)
    return model
