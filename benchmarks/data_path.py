"""The data path: one digits-MLP epoch through the bundle's loader vs the same epoch from tensors.

    python benchmarks/data_path.py [--repeats 15] [--epochs 5] [--threads 2]

"loader" trains through ``lk.data.digits(batch_size=64).train`` (the loader every notebook uses);
"pre-sliced" trains on the very same batches, sliced from the dataset's tensors beforehand, so
fetching costs nothing. Both runs do identical arithmetic (same model, same batches, same order);
the difference is what fetching and collating cost. Runs are interleaved so noise from a shared
machine hits both alike; the table shows medians and the ratio to the pre-sliced epoch. A second
table times fetching alone (iterate the loader, no model).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import labkit as lk  # noqa: E402


def train_epochs(model, batches, epochs, lr=1e-3):
    """A plain Adam loop over ``batches`` (anything iterable yielding (x, y)), loss.item() per step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for x, y in batches:
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss.item()


class PreSliced:
    """The loader's batches for each epoch, computed up front (the generator replays the order)."""

    def __init__(self, loader, epochs):
        state = loader.generator.get_state()
        x, y = loader.dataset.tensors
        self.epochs = []
        for _ in range(epochs):
            order = list(loader.batch_sampler)
            self.epochs.append([(x[idx], y[idx]) for idx in map(torch.tensor, order)])
        loader.generator.set_state(state)
        self._next = 0

    def __iter__(self):
        batches = self.epochs[self._next % len(self.epochs)]
        self._next += 1
        return iter(batches)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lk.seed_everything(0)
    data = lk.data.digits(batch_size=64)
    torch.manual_seed(0)
    initial = lk.models.MLP(64, [128], 10)
    setups = {
        "pre-sliced tensors": lambda: PreSliced(data.train, args.epochs),
        "bundle loader": lambda: data.train,
    }
    train_t = {k: [] for k in setups}
    fetch_t = {k: [] for k in setups}
    for name, make in setups.items():         # warm-up
        train_epochs(copy.deepcopy(initial), make(), 1)
    for _ in range(args.repeats):
        for name, make in setups.items():
            batches, model = make(), copy.deepcopy(initial)
            t0 = time.perf_counter()
            train_epochs(model, batches, args.epochs)
            train_t[name].append((time.perf_counter() - t0) / args.epochs)
            batches = make()
            t0 = time.perf_counter()
            for _ in range(args.epochs):
                for _x, _y in batches:
                    pass
            fetch_t[name].append((time.perf_counter() - t0) / args.epochs)
    base = statistics.median(train_t["pre-sliced tensors"])
    print(f"digits MLP 64-128-10, batch 64, {len(data.train)} steps an epoch, {args.repeats} interleaved "
          f"repeats of {args.epochs} epochs, {torch.get_num_threads()} threads")
    print(f"  {'one epoch, training':28s} {'median ms':>10s} {'ratio':>7s}")
    for name, ts in train_t.items():
        print(f"  {name:28s} {1e3 * statistics.median(ts):10.2f} {statistics.median(ts) / base:7.3f}x")
    print(f"  {'one epoch, fetching only':28s} {'median ms':>10s}")
    for name, ts in fetch_t.items():
        print(f"  {name:28s} {1e3 * statistics.median(ts):10.2f}")
    return statistics.median(train_t["bundle loader"]) / base


if __name__ == "__main__":
    main()
