"""Reuse a pretrained character GPT for classification: pool its hidden states, add a linear head.

A language model computes one hidden vector per position, each summarising the text up to it.
A classifier needs one vector per sequence, so we pool over positions: the mean reads every
position (a causal model's early positions have seen little, but together they cover the whole
text), the last position is the only one that has seen all of it. Then one Linear layer scores
the classes. The GPT (the *body*) can be trained from scratch, frozen (a linear probe), fine-tuned
as a whole, at a smaller learning rate than the head, or adapted with LoRA.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn as nn

from .gpt import GPT
from .utils import check_choice, check_int

POOLINGS = ("mean", "last")


class GPTClassifier(nn.Module):
    """GPTClassifier(body: GPT, n_classes, pooling="mean"): token ids [B, T] -> class logits [B, n_classes].

    The body's final (layer-normed) hidden states [B, T, n_embd] are pooled over T ("mean" or
    "last") and scored by `head`, a new nn.Linear(n_embd, n_classes). The body's language-model
    head (lm_head) is not used.
    """

    def __init__(self, body: GPT, n_classes: int, pooling: str = "mean"):
        super().__init__()
        if not isinstance(body, GPT):
            raise TypeError(f"body must be an lk.models.GPT (its hidden states are pooled), "
                            f"got {type(body).__name__}")
        check_int("n_classes", n_classes, minimum=2)
        self.pooling = check_choice("pooling", pooling, POOLINGS)
        self.body = body
        self.head = nn.Linear(body.config.n_embd, n_classes)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """One vector per sequence [B, n_embd]: the pooled hidden states the head reads."""
        h = self.body._hidden(idx)            # [B, T, n_embd], after the final LayerNorm
        return h.mean(dim=1) if self.pooling == "mean" else h[:, -1]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(idx))

    def param_groups(self, lr: float, body_lr_factor: float = 1.0) -> list[dict]:
        """Optimizer parameter groups for discriminative learning rates: the head at `lr`, the
        pretrained body at `lr * body_lr_factor`. Frozen parameters are left out, so this also
        serves a probe (frozen body) or a LoRA body (only the adapters train)."""
        for name, value in (("lr", lr), ("body_lr_factor", body_lr_factor)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if body_lr_factor > 1:
            raise ValueError(f"body_lr_factor must be in (0, 1] (1: the body learns as fast as the "
                             f"head), got {body_lr_factor!r}")
        head = [p for p in self.head.parameters() if p.requires_grad]
        body = [p for p in self.body.parameters() if p.requires_grad]
        groups = [{"params": head, "lr": float(lr)}]
        if body:
            groups.append({"params": body, "lr": float(lr * body_lr_factor)})
        return groups
