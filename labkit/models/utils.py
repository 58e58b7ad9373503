"""Helpers shared by the models: argument checks, parameter counts, sampling."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_bool, check_choice  # noqa: F401  (re-exported for the models)
from ..checks import check_fraction, check_number
from ..checks import check_int as _check_int


def check_int(name: str, value, minimum: int = 1) -> int:
    """Sizes are ints >= 1 unless said otherwise (the check is labkit's own, hparams.check_int)."""
    return _check_int(name, value, minimum=minimum)


def check_probability(name: str, value) -> float:
    """Dropout-style rates: a float in [0, 1)."""
    return check_fraction(name, value, hint="0 turns it off")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters in `model` (shared/tied tensors counted once).

    trainable_only=True counts only those with requires_grad, e.g. after freezing a
    body for transfer learning or wrapping layers with LoRA.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def model_mode(model: nn.Module, training: bool):
    """Put `model` in train (True) or eval (False) mode for a block, then back to its old mode."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


def eval_mode(model: nn.Module):
    """Switch to eval mode (no dropout, batch-norm running stats) and restore the old mode.

    Sampling, evaluation and visualisation happen mid-training in notebooks; they must neither
    see dropout noise nor leave the model in eval mode when training resumes.
    """
    return model_mode(model, False)


def check_tokens(idx, name: str = "idx") -> torch.Tensor:
    """Token batches are integer tensors shaped [B, T]."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids shaped [B, T], "
                        f"got {type(idx).__name__}")
    if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int, torch.int16, torch.uint8):
        raise ValueError(f"{name} must be an integer tensor shaped [B, T] (wrap a single sequence "
                         f"as idx[None]), got dtype {idx.dtype} and shape {list(idx.shape)}")
    if idx.size(1) == 0:
        raise ValueError(f"{name} must hold at least one token per row, got shape {list(idx.shape)}")
    return idx


def check_sampling(max_new_tokens, temperature, top_k) -> None:
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    check_number("temperature", temperature, minimum=0, hint="0 picks the most likely token")
    if top_k is not None:
        check_int("top_k", top_k)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """Draw one token per row from next-token logits [B, V]; returns ids [B, 1].

    Temperature divides the logits: < 1 sharpens the distribution, > 1 flattens it, and
    0 means greedy decoding. top_k keeps only the k most likely tokens before sampling,
    which stops a long tail of unlikely tokens from derailing a sample.
    """
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, [-1]]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
