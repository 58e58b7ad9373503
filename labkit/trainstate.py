"""The state of a run, for `Trainer.state_dict()` / `load_state_dict()`: where training stands
inside an epoch (and how to re-create it), the random generators, the plain-number rule of the
history, and the checks a saved state must pass before anything is loaded.
"""
from __future__ import annotations

import contextlib
import numbers
import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from .checks import check_lr

FORMAT = "labkit-checkpoint-2"


class EpochCursor:
    """Where training stands inside an epoch: the loader's iterator and how many batches it gave.

    It also keeps the random states the epoch's shuffle was drawn from, so `position()` can be
    saved in a checkpoint and the iterator re-created later: same RNG states, same shuffle, then
    the batches already used are skipped by index, without loading them.
    """

    def __init__(self, loader: DataLoader, epoch: int, position: dict | None = None):
        self.loader, self.epoch, self.n_batches = loader, epoch, len(loader)
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)            # DistributedSampler: a new shuffle each epoch
        if position is None:                           # a new epoch, from the RNG states of now
            self.consumed, self.losses = 0, []
            self.rng = {"torch": torch.get_rng_state(),
                        "loader": None if loader.generator is None else loader.generator.get_state()}
            self.iterator = iter(loader)
            return
        self.consumed, self.losses, self.rng = position["consumed"], list(position["losses"]), position["rng"]
        now = {"torch": torch.get_rng_state(),
               "loader": None if loader.generator is None else loader.generator.get_state()}
        _set_loader_rng(loader, self.rng)
        self.iterator = iter(loader)
        _skip(self.iterator, loader, self.consumed)
        _set_loader_rng(loader, now)

    def __iter__(self):
        for batch in self.iterator:
            self.consumed += 1
            yield batch

    def position(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed, "n_batches": self.n_batches,
                "rng": self.rng, "losses": list(self.losses)}


def _set_loader_rng(loader, rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["loader"] is not None and loader.generator is not None:
        loader.generator.set_state(rng["loader"])


def _skip(iterator, loader: DataLoader, n: int) -> None:
    """Advance a fresh loader iterator by n batches: by index alone when the loader runs in this
    process over a map-style dataset (nothing is loaded), else by fetching and dropping them."""
    from torch.utils.data.dataloader import _SingleProcessDataLoaderIter
    if isinstance(iterator, _SingleProcessDataLoaderIter) and not isinstance(loader.dataset, IterableDataset):
        for _ in range(n):
            next(iterator._sampler_iter)
        iterator._num_yielded += n
        return
    for _ in range(n):
        next(iterator)


@contextlib.contextmanager
def rng_kept():
    """Run a block without changing the CPU torch generator (loaders draw a seed from it)."""
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)


def plain_numbers(logs: dict) -> None:
    """History rows hold plain Python numbers, so a checkpoint of the history always loads:
    numpy scalars and 0-d tensors are converted; anything else is refused, naming the key."""
    for key, value in logs.items():
        if type(value) in (float, int, bool) or value is None:
            continue
        if isinstance(value, (np.generic, np.ndarray, torch.Tensor)) and value.ndim == 0 and \
                not isinstance(value, (np.str_, np.bytes_)):
            logs[key] = value.item()
        elif isinstance(value, numbers.Real):
            logs[key] = float(value)
        else:
            del logs[key]
            raise TypeError(f"logs[{key!r}] = {value!r:.60} ({type(value).__name__}) cannot go into the "
                            "history, which holds plain numbers; a callback should store e.g. "
                            f"logs[{key!r}] = float(value)")


def rng_states() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state_to_torch(np.random.get_state()),
            "random": random.getstate()}


def set_rng_states(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(_numpy_state_from_torch(rng["numpy"]))
    random.setstate(_as_tuple(rng["random"]))


def _numpy_state_to_torch(state):
    kind, keys, pos, has_gauss, cached = state
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_torch(s):
    return (s["kind"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached"])


def _as_tuple(x):
    return tuple(_as_tuple(i) for i in x) if isinstance(x, (list, tuple)) else x


def check_state(trainer, state, source: str) -> None:
    """Refuse a state that does not fit this trainer, before anything is changed."""
    if not isinstance(state, dict) or not str(state.get("format", "")).startswith("labkit-checkpoint"):
        raise ValueError(f"{source} was not written by Trainer.save_checkpoint/state_dict "
                         "(no labkit checkpoint format marker)")
    if state["format"] != FORMAT:
        raise ValueError(f"{source} has format {state['format']!r}; this labkit reads "
                         f"{FORMAT!r} (a checkpoint from an older labkit: train again)")
    missing = [k for k in ("model", "optimizer_class", "optimizer", "scaler", "callbacks", "step",
                           "epoch", "lr", "history", "rng", "loader") if k not in state]
    if missing:
        raise ValueError(f"{source} lacks {missing}: it is incomplete or damaged")
    model = unwrap(trainer.model)
    mine = model.state_dict()
    theirs = state["model"]
    wrong = [f"{k}: {tuple(theirs[k].shape)} vs {tuple(v.shape)}" for k, v in mine.items()
             if k in theirs and hasattr(theirs[k], "shape") and theirs[k].shape != v.shape]
    absent, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    if wrong or absent or extra:
        detail = "; ".join(filter(None, [f"shapes differ ({', '.join(wrong[:3])})" if wrong else "",
                                         f"missing {absent[:4]}" if absent else "",
                                         f"unexpected {extra[:4]}" if extra else ""]))
        raise ValueError(f"{source} holds weights of a different model ({state.get('model_class')}) "
                         f"than this trainer's ({type(model).__name__}): {detail}")
    if state["optimizer_class"] != type(trainer.optimizer).__name__:
        raise ValueError(f"{source} was saved with optimizer {state['optimizer_class']} but this "
                         f"trainer uses {type(trainer.optimizer).__name__}; build the trainer with the "
                         "same optimizer to resume it")
    saved_groups, my_groups = state["optimizer"]["param_groups"], trainer.optimizer.param_groups
    if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in my_groups]:
        raise ValueError(f"{source} has optimizer parameter groups of sizes "
                         f"{[len(g['params']) for g in saved_groups]}, this trainer's are "
                         f"{[len(g['params']) for g in my_groups]}")
    ignore = {"params", "lr", "initial_lr", "foreach", "fused", "capturable", "differentiable"}
    for i, (saved, mine_g) in enumerate(zip(saved_groups, my_groups)):
        differ = {k: (saved[k], mine_g[k]) for k in saved.keys() & mine_g.keys() - ignore
                  if saved[k] != mine_g[k]}
        if differ:
            what = ", ".join(f"{k}={a!r} (here {b!r})" for k, a, b in
                             ((k, *v) for k, v in sorted(differ.items())))
            raise ValueError(f"{source} was saved with other {state['optimizer_class']} options in "
                             f"group {i}: {what}; build the trainer with the same options")
    if bool(state["scaler"]) != trainer.scaler.is_enabled():
        raise ValueError(f"{source} was saved with amp={'fp16' if state['scaler'] else 'off/bf16'}"
                         f" but this trainer has amp={'fp16' if trainer.scaler.is_enabled() else 'off/bf16'}")
    mine_cb = {key for key, _ in trainer._stateful_callbacks()}
    if set(state["callbacks"]) != mine_cb:
        raise ValueError(f"{source} holds the state of callbacks {sorted(state['callbacks'])} but this "
                         f"trainer's callbacks with state are {sorted(mine_cb)}; build the trainer "
                         "with the same callbacks to resume the run")
    for key in ("step", "epoch"):
        if isinstance(state[key], bool) or not isinstance(state[key], int) or state[key] < 0:
            raise ValueError(f"{source} has {key}={state[key]!r}; expected an int >= 0")
    check_lr(state["lr"], f"{source}'s lr")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / torch.compile wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
