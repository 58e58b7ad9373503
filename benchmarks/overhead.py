"""Trainer overhead against a plain PyTorch loop doing the same work, measured in one run.

    python benchmarks/overhead.py [--repeats 7] [--epochs 15] [--threads 2]

Both sides train the same model from the same initial weights on the same batches, record every
step's loss as a float (what you need to plot a curve) and evaluate the validation split after
each epoch. Runs are interleaved (plain, trainer, trainer+callbacks, plain, ...) so that noise from
a shared machine hits all of them alike; the table shows median seconds and the ratio to the plain
loop. Three setups: the Trainer as constructed by default (its DivergenceGuard on), and with
LivePlot + ProgressBar as they run under papermill (headless: the figure is built and serialized
once at the end; the progress bar prints one line).
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import statistics
import sys
import time
from contextlib import redirect_stderr

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import labkit as lk  # noqa: E402


def plain_loop(model, data, epochs, lr):
    """What one writes by hand: Adam, cross-entropy, loss.item() per step, validation per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses, val_losses = [], []
    for _ in range(epochs):
        model.train()
        for x, y in data.train:
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            total, n = 0.0, 0
            for x, y in data.val:
                total += loss_fn(model(x), y).item() * len(y)
                n += len(y)
        val_losses.append(total / n)
    return losses, val_losses


def trainer_run(model, data, epochs, lr, callbacks=()):
    trainer = lk.Trainer(model, loss="cross_entropy", optimizer="adam", lr=lr, device="cpu",
                         callbacks=callbacks)
    trainer.fit(data, epochs=epochs)
    return trainer


def _serialize_display(obj, raw=False):
    json.dumps(obj)                      # what a kernel does with a displayed bundle


def bench(name, make_model, data, epochs, lr, repeats):
    import IPython.display
    IPython.display.display = _serialize_display
    torch.manual_seed(0)
    initial = make_model()
    setups = {
        "plain loop": lambda m: plain_loop(m, data, epochs, lr),
        "Trainer": lambda m: trainer_run(m, data, epochs, lr),
        "Trainer + LivePlot + ProgressBar": lambda m: trainer_run(
            m, data, epochs, lr, [lk.LivePlot(mode="headless"), _headless(lk.ProgressBar())]),
    }
    times = {k: [] for k in setups}
    for fn in setups.values():                # warm-up: first-call costs are not the loop's
        with redirect_stderr(io.StringIO()):
            fn(copy.deepcopy(initial))
    for _ in range(repeats):
        for key, fn in setups.items():
            model = copy.deepcopy(initial)
            with redirect_stderr(io.StringIO()):
                t0 = time.perf_counter()
                fn(model)
                times[key].append(time.perf_counter() - t0)
    base = statistics.median(times["plain loop"])
    steps = epochs * len(data.train)
    print(f"\n{name}: {epochs} epochs, {steps} steps, {repeats} interleaved repeats, "
          f"{torch.get_num_threads()} threads")
    print(f"  {'setup':36s} {'median s':>9s} {'min s':>8s} {'ratio':>7s}")
    for key, ts in times.items():
        med = statistics.median(ts)
        print(f"  {key:36s} {med:9.3f} {min(ts):8.3f} {med / base:7.3f}x")
    return {k: statistics.median(v) / base for k, v in times.items()}


def _headless(cb):
    cb.mode = "headless"
    return cb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--epochs", type=int, default=15)   # the digits MLP of the targets
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lk.seed_everything(0)
    flat = lk.data.digits(batch_size=64)
    images = lk.data.digits(batch_size=64, flat=False)
    print(lk.describe())
    bench("MLP 64-128-10 on digits", lambda: lk.models.MLP(64, [128], 10), flat, args.epochs, 1e-3,
          args.repeats)
    bench("small CNN on digits (8x8 images)", lambda: lk.models.CNN(in_channels=1, n_classes=10, input_size=8),
          images, args.epochs, 1e-3, args.repeats)


if __name__ == "__main__":
    main()
