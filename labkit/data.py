"""Offline datasets and loaders, seeded and reproducible; each returns a DataBundle.

    synthetic_regression  y = X @ w + b + noise, with the true w and b in info (optional feature scales)
    synthetic_classification  2-D moons, blobs, circles or xor; optional class imbalance
    digits                scikit-learn's 8x8 handwritten digits (1797 images), flat or as images
    sequence              time series: "sine" forecasting, the "adding" problem, bit "parity"
    text_corpus           characters of Python's own help topics (pydoc_data), for language models
    text_topics           "which help topic is this snippet from?", with text_corpus's vocabulary
    mnist                 the IDX files from a folder; downloads only when asked (download=True)

Every function takes `seed`, `batch_size`, `val_fraction` and `test_fraction` (mnist: its official
test set), and nothing touches the network unless mnist(download=True) is called.

The loaders are plain DataLoaders over TensorData datasets, which hand over a whole batch at once
(one indexing operation per tensor instead of one call and one stack per example): the same
batches as a TensorDataset with default_collate, several times faster to fetch.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import math
import numbers
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

from .checks import check_bool, check_int, check_number

SPLITS = ("train", "val", "test")
MAX_N = 10_000_000          # examples a generator makes: more would only exhaust memory
MAX_SEED = 2**63 - 1        # what torch.Generator.manual_seed and numpy both accept


# -- batched fetching -----------------------------------------------------------------------------
class TensorData(TensorDataset):
    """A TensorDataset whose loader fetches a whole batch with one indexing operation per tensor.

    ``ds[i]`` is the i-th example, as with any TensorDataset. A DataLoader asks a dataset that has
    ``__getitems__`` for all of a batch's indices at once (PyTorch's batched-fetch protocol; a
    ``Subset`` forwards it); this one answers with a :class:`Batch`, which :func:`collate` gathers
    as ``[x[indices], y[indices]]`` -- the same tensors ``default_collate`` would stack from the
    examples one by one, without a Python loop over them.
    """

    def __getitems__(self, indices) -> Batch:
        return Batch(self.tensors, indices)


class Batch(Sequence):
    """The examples ``indices`` of ``tensors``, not yet gathered.

    :func:`collate` gathers them at once. Anything else sees a sequence of (x, y) examples, so a
    DataLoader with another ``collate_fn`` (e.g. ``default_collate``) still gets what it expects.
    """
    __slots__ = ("tensors", "indices")

    def __init__(self, tensors, indices):
        self.tensors, self.indices = tensors, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        index = self.indices[i]
        return tuple(t[index] for t in self.tensors)

    def gather(self) -> list[torch.Tensor]:
        index = torch.as_tensor(self.indices, dtype=torch.long)
        try:
            return [t.index_select(0, index) for t in self.tensors]    # ~2x faster than t[index]
        except (IndexError, RuntimeError):
            return [t[index] for t in self.tensors]     # negative indices; out of range: IndexError


def collate(batch):
    """The collate_fn of labkit's loaders: a :class:`Batch` is gathered in one go; a list of
    examples (any other dataset) goes to ``default_collate`` as in a plain DataLoader."""
    if isinstance(batch, Batch):
        return batch.gather()
    return default_collate(batch)


def _batched(ds):
    """A plain TensorDataset becomes a TensorData over the same tensors; anything else is kept."""
    return TensorData(*ds.tensors) if type(ds) is TensorDataset else ds


@dataclass(repr=False)
class DataBundle:
    """Train/val/test loaders and what a notebook needs to know about the data (`info`)."""
    train: DataLoader                 # shuffles with its own seeded generator (train.generator)
    val: DataLoader | None = None     # no shuffle
    test: DataLoader | None = None    # no shuffle
    info: dict = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.train.batch_size

    def with_batch_size(self, batch_size: int) -> DataBundle:
        """The same datasets and split with new loaders (the train order is seeded as before)."""
        generator = self.train.generator
        seed = generator.initial_seed() if generator is not None else 0
        dataset = lambda loader: None if loader is None else loader.dataset
        return make_loaders(self.train.dataset, dataset(self.val), dataset(self.test),
                            batch_size=batch_size, seed=seed, info=self.info)

    def arrays(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as (X, y) tensors, for code written from scratch."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        loader = getattr(self, split)
        if loader is None:
            raise ValueError(f"this DataBundle has no {split} split ({split}=None; e.g. {split}_fraction=0)")
        ds = loader.dataset
        if isinstance(ds, TensorDataset):
            return ds.tensors[0], ds.tensors[1]
        x, y = default_collate([ds[i] for i in range(len(ds))])
        return x, y

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(getattr(self, s).dataset)}" for s in SPLITS if getattr(self, s) is not None)
        task = self.info.get("task")
        return f"DataBundle({f'task={task!r}, ' if task else ''}{sizes}, batch_size={self.batch_size})"


def make_loaders(train, val=None, test=None, batch_size: int = 32, seed: int = 0, info: dict | None = None
                 ) -> DataBundle:
    """A DataBundle from datasets: the train loader shuffles with its own torch.Generator seeded
    with `seed` (so a Trainer can checkpoint its position); val/test keep their order.
    num_workers=0: loading in the main process works on two cores, in notebooks and under papermill."""
    batch_size = check_int("batch_size", batch_size, minimum=1)      # plain ints: numpy ones too
    seed = check_int("seed", seed, minimum=0, maximum=MAX_SEED)
    for name, ds in (("train", train), ("val", val), ("test", test)):
        if (ds is not None or name == "train") and not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
            raise TypeError(f"{name} must be a map-style Dataset (with __getitem__ and __len__) or None, "
                            f"got {type(ds).__name__}")
    if len(train) == 0:
        raise ValueError("train is an empty dataset; a loader over it would yield no batch")
    train, val, test = (None if ds is None else _batched(ds) for ds in (train, val, test))
    loader = lambda ds: (None if ds is None or len(ds) == 0
                         else DataLoader(ds, batch_size=batch_size, collate_fn=collate))
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=0, collate_fn=collate,
                              generator=torch.Generator().manual_seed(seed))
    return DataBundle(train_loader, loader(val), loader(test), dict(info or {}))


# -- shared helpers -------------------------------------------------------------------------------
def _check_fraction(name, value, low_open=False, high_closed=False) -> float:
    return check_number(name, value, 0, 1, min_inclusive=not low_open, max_inclusive=high_closed)


def _check_noise(noise) -> float:
    return check_number("noise", noise, minimum=0)


def _check_bool(name, value) -> bool:
    return check_bool(name, bool(value) if isinstance(value, np.bool_) else value)


def _check_real(name, value, positive=False) -> float:
    """A finite number (> 0 when `positive`): NaN, infinities, bools and strings are refused."""
    if isinstance(value, np.bool_):
        value = bool(value)                 # refused as a bool below, like True/False
    return check_number(name, value, minimum=0 if positive else None, min_inclusive=not positive)


def _check_reals(name, values, count, positive=False, per="one per feature") -> np.ndarray:
    """`count` finite numbers (> 0 when `positive`), e.g. scale=[1, 100] or weights=[0.9, 0.1]."""
    what = f"{count} finite{' positive' if positive else ''} numbers ({per})"
    if isinstance(values, (str, bytes, dict)):
        raise TypeError(f"{name} must be {what}, got {type(values).__name__} {values!r}")
    try:
        array = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, got {values!r}") from None
    if array.shape != (count,) or not np.all(np.isfinite(array)) or (positive and not np.all(array > 0)):
        raise ValueError(f"{name} must be {what}, got {array.tolist()!r}")
    return array


def _check_common(batch_size, val_fraction, test_fraction, seed) -> None:
    """The arguments every generator takes, checked before any work is done."""
    check_int("batch_size", batch_size, minimum=1)
    _check_split(val_fraction, test_fraction)
    check_int("seed", seed, minimum=0, maximum=MAX_SEED)


def _check_split(val_fraction, test_fraction) -> None:
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1 so something is left to train on, "
                         f"got {val_fraction} + {test_fraction}")


def _check_choice(name, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name}={value!r}; use one of {choices}")
    return value


def _split(n, val_fraction, test_fraction, rng, labels=None, ordered=False):
    """Index arrays (train, val, test). Stratified by `labels` when given (each class split in the
    same proportions); `ordered` keeps time order: train first, then val, then test."""
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts = ([], [], [])
    for g in groups:
        n_val, n_test = round(val_fraction * len(g)), round(test_fraction * len(g))
        g = g if ordered else rng.permutation(g)
        n_train = len(g) - n_val - n_test
        for part, idx in zip(parts, (g[:n_train], g[n_train:n_train + n_val], g[n_train + n_val:])):
            part.append(idx)
    # one shuffle across classes, so arrays() is not sorted by class
    train, val, test = (np.concatenate(p) if ordered else rng.permutation(np.concatenate(p)) for p in parts)
    if len(train) == 0:
        raise ValueError(f"n={n} is too small to leave any training data after the split; raise n")
    return train, val, test


def _bundle(x, y, parts, batch_size, seed, info) -> DataBundle:
    """TensorDatasets for the (train, val, test) index arrays, then loaders."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    datasets = [TensorData(x[idx], y[idx]) if len(idx) else None for idx in map(torch.as_tensor, parts)]
    return make_loaders(*datasets, batch_size=batch_size, seed=seed, info=info)


def _standardize(x, train_idx, min_std=1e-8):
    """(x - mean) / std with the train split's statistics, so val/test stay unseen."""
    mean, std = x[train_idx].mean(axis=0), x[train_idx].std(axis=0)
    std = np.maximum(std, min_std)          # a constant feature would divide by 0
    return (x - mean) / std, mean, std


def _class_counts(n, weights, n_classes):
    if weights is None:
        p = np.full(n_classes, 1 / n_classes)
    else:
        p = _check_reals("weights", weights, n_classes, positive=True, per="class proportions, one per class")
        p = p / p.sum()
    counts = np.maximum(1, np.floor(p * n).astype(int))   # every class keeps at least one example
    counts[np.argmax(p)] += n - counts.sum()
    return counts, p


# -- datasets -------------------------------------------------------------------------------------
def synthetic_regression(n: int = 1000, n_features: int = 1, noise: float = 0.5, weights=None,
                         bias: float = 1.0, scale=None, standardize: bool = False, batch_size: int = 32,
                         val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> DataBundle:
    """y = X @ w + b + noise * N(0, 1), with X ~ N(0, 1) * scale.

    scale: one number per feature (e.g. [1, 100]) to show how unequal feature scales limit the
    learning rate. weights: default random in [-3, 3] divided by each feature's scale, so every
    feature matters about equally. standardize: rescale X with train-split statistics; then
    info["true_weights"]/["true_bias"] are converted to what a linear model on the returned X learns.
    """
    check_int("n", n, minimum=2, maximum=MAX_N)
    check_int("n_features", n_features, minimum=1, maximum=MAX_N // n)
    _check_common(batch_size, val_fraction, test_fraction, seed)
    _check_noise(noise)
    bias = _check_real("bias", bias)
    _check_bool("standardize", standardize)
    rng = np.random.default_rng(seed)
    scale = np.ones(n_features) if scale is None else _check_reals("scale", scale, n_features, positive=True)
    w = rng.uniform(-3, 3, n_features) / scale if weights is None else _check_reals("weights", weights, n_features)
    x = rng.normal(size=(n, n_features)) * scale
    y = x @ w + bias + noise * rng.normal(size=n)
    parts = _split(n, val_fraction, test_fraction, rng)
    mean = std = None
    if standardize:
        # X = Z * std + mean, so y = Z @ (w * std) + (b + mean @ w): the same line in new units
        x, mean, std = _standardize(x, parts[0])
        w, bias = w * std, bias + float(mean @ w)
        mean, std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    info = dict(task="regression", n_features=n_features, n_outputs=1, input_shape=(n_features,),
                true_weights=torch.tensor(w, dtype=torch.float32), true_bias=float(bias), noise=float(noise),
                scale=scale.tolist(), mean=mean, std=std)
    return _bundle(x.astype(np.float32), y.astype(np.float32).reshape(-1, 1), parts, batch_size, seed, info)


CLASSIFICATION_KINDS = ("moons", "blobs", "circles", "xor")
DEFAULT_NOISE = {"moons": 0.2, "blobs": 1.0, "circles": 0.1, "xor": 0.1}


def synthetic_classification(kind: str = "moons", n: int = 1000, noise: float | None = None, n_classes: int = 2,
                             weights=None, batch_size: int = 32, val_fraction: float = 0.2,
                             test_fraction: float = 0.2, seed: int = 0) -> DataBundle:
    """2-D points with int64 labels: "moons", "blobs" (any n_classes), "circles" or "xor".

    noise: the spread (blobs: the cluster std); default per kind. weights: class proportions,
    e.g. [0.95, 0.05] for a class-imbalance demo. Splits are stratified.
    """
    from sklearn.datasets import make_blobs, make_circles, make_moons

    _check_choice("kind", kind, CLASSIFICATION_KINDS)
    check_int("n", n, minimum=2, maximum=MAX_N)
    check_int("n_classes", n_classes, minimum=2, maximum=n)
    if kind != "blobs" and n_classes != 2:
        raise ValueError(f"n_classes must be 2 for kind={kind!r}, got {n_classes}; only 'blobs' has more classes")
    _check_common(batch_size, val_fraction, test_fraction, seed)
    noise = _check_noise(DEFAULT_NOISE[kind] if noise is None else noise)
    rng = np.random.default_rng(seed)
    counts, p = _class_counts(n, weights, n_classes)
    # sklearn takes per-class counts; its labels come out in class order (0s, then 1s, ...)
    if kind == "moons":
        x, y = make_moons(tuple(counts), noise=noise, random_state=seed)
    elif kind == "circles":
        x, y = make_circles(tuple(counts), noise=noise, factor=0.5, random_state=seed)
    elif kind == "blobs":
        x, y = make_blobs(list(counts), cluster_std=noise, center_box=(-5, 5), random_state=seed)
    else:
        # xor: class 0 where the signs of the two coordinates agree, class 1 where they differ
        y = np.repeat(np.arange(2), counts)
        sign0 = rng.choice([-1.0, 1.0], size=n)
        signs = np.stack([sign0, np.where(y == 0, sign0, -sign0)], axis=1)
        x = rng.uniform(0, 1, size=(n, 2)) * signs + noise * rng.normal(size=(n, 2))
    info = dict(task="classification", kind=kind, n_features=2, n_classes=n_classes, input_shape=(2,),
                class_names=[str(c) for c in range(n_classes)], class_proportions=p.tolist(), noise=float(noise))
    parts = _split(n, val_fraction, test_fraction, rng, labels=y)
    return _bundle(x.astype(np.float32), y.astype(np.int64), parts, batch_size, seed, info)


def digits(batch_size: int = 64, flat: bool = True, classes=None, train_fraction: float = 1.0,
           standardize: bool = True, val_fraction: float = 0.2, test_fraction: float = 0.2,
           seed: int = 0) -> DataBundle:
    """scikit-learn's handwritten digits (1797 8x8 images, grey levels 0..16), stratified split.

    flat: [N, 64] for an MLP, else [N, 1, 8, 8] for a CNN. classes: keep these digits, relabelled
    0..k-1 in the given order (info["class_names"] keeps the digits). train_fraction: keep this
    stratified fraction of the training labels (at least one per class); val/test stay the same.
    """
    from sklearn.datasets import load_digits

    _check_common(batch_size, val_fraction, test_fraction, seed)
    _check_fraction("train_fraction", train_fraction, low_open=True, high_closed=True)
    _check_bool("flat", flat)
    _check_bool("standardize", standardize)
    if classes is not None and (isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__")):
        raise TypeError(f"classes must be a list of digits from 0..9, got {type(classes).__name__} {classes!r}")
    raw = load_digits()
    x, target = raw.data, raw.target
    classes = list(range(10)) if classes is None else list(classes)
    if (len(classes) < 2 or len(set(classes)) != len(classes)
            or not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) and 0 <= c <= 9 for c in classes)):
        raise ValueError(f"classes must be at least two different digits from 0..9, got {classes!r}")
    keep = np.isin(target, classes)
    x = x[keep]
    position = {digit: i for i, digit in enumerate(classes)}
    y = np.array([position[d] for d in target[keep]])     # digit -> its index in `classes`
    rng = np.random.default_rng(seed)
    train, val, test = _split(len(y), val_fraction, test_fraction, rng, labels=y)
    mean = std = None
    if standardize:
        # Statistics of the whole train split: train_fraction limits labels, not the (unlabelled)
        # images, so val/test inputs are identical across fractions. A floor of one grey level:
        # pixels nearly always blank would otherwise turn a rare stroke into a 100-sigma outlier.
        x, mean, std = _standardize(x, train, min_std=1.0)
    if train_fraction < 1:
        per_class = [rng.permutation(train[y[train] == c]) for c in range(len(classes))]
        train = rng.permutation(np.concatenate([idx[:max(1, round(train_fraction * len(idx)))]
                                                for idx in per_class]))
    shape = (64,) if flat else (1, 8, 8)
    as_input = lambda a: None if a is None else torch.tensor(a, dtype=torch.float32).reshape(shape)
    info = dict(task="classification", n_features=64, n_classes=len(classes), input_shape=shape,
                class_names=[str(c) for c in classes], classes=classes, mean=as_input(mean), std=as_input(std),
                train_fraction=float(train_fraction))
    x = x.astype(np.float32).reshape((-1, *shape))
    return _bundle(x, y.astype(np.int64), (train, val, test), batch_size, seed, info)


SEQUENCE_TASKS = ("sine", "adding", "parity")
DEFAULT_LENGTH = {"sine": 32, "adding": 50, "parity": 12}


def sequence(task: str = "sine", n: int = 1000, length: int | None = None, horizon: int = 1,
             noise: float = 0.1, batch_size: int = 32, val_fraction: float = 0.2, test_fraction: float = 0.2,
             seed: int = 0) -> DataBundle:
    """Sequences x [N, length, features] for recurrent models; info["task"] picks the loss.

    "sine": windows of a sum of two sines + noise * N(0, 1); y [N, horizon] = the next values.
        Split in time order; window i is series[i:i+length], info["clean"] the noise-free series.
    "adding": x[..., 0] random in [0, 1), x[..., 1] marks one step in each half; y [N, 1] = the
        sum of the two marked values (Hochreiter & Schmidhuber, 1997): it needs long-range memory.
    "parity": x [N, length, 1] of 0/1 bits, y = 1 if the number of ones is odd (classification).
    """
    _check_choice("task", task, SEQUENCE_TASKS)
    check_int("n", n, minimum=2, maximum=MAX_N)
    length = check_int("length", DEFAULT_LENGTH[task] if length is None else length, minimum=2,
                       maximum=MAX_N // n)
    check_int("horizon", horizon, minimum=1, maximum=MAX_N // n)
    _check_noise(noise)
    _check_common(batch_size, val_fraction, test_fraction, seed)
    rng = np.random.default_rng(seed)
    info = dict(sequence_task=task, length=length, input_shape=None)
    if task == "sine":
        t = np.arange(n + length + horizon - 1, dtype=float)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        clean = np.sin(2 * np.pi * t / 25 + phase[0]) + 0.5 * np.sin(2 * np.pi * t / 60 + phase[1])
        series = clean + noise * rng.normal(size=len(t))
        windows = np.lib.stride_tricks.sliding_window_view(series, length + horizon)   # [n, L + H]
        x, y = windows[:, :length, None], windows[:, length:]
        parts = _split(n, val_fraction, test_fraction, rng, ordered=True)
        info.update(task="regression", n_outputs=horizon, horizon=horizon, noise=float(noise),
                    series=torch.tensor(series, dtype=torch.float32), clean=torch.tensor(clean, dtype=torch.float32),
                    split_starts={"train": 0, "val": len(parts[0]), "test": len(parts[0]) + len(parts[1])})
    elif task == "adding":
        values = rng.uniform(0, 1, size=(n, length))
        rows, half = np.arange(n), length // 2
        first, second = rng.integers(0, half, size=n), rng.integers(half, length, size=n)
        markers = np.zeros((n, length))
        markers[rows, first] = markers[rows, second] = 1
        x = np.stack([values, markers], axis=-1)
        y = (values[rows, first] + values[rows, second])[:, None]
        parts = _split(n, val_fraction, test_fraction, rng)
        info.update(task="regression", n_outputs=1)
    else:
        bits = rng.integers(0, 2, size=(n, length))
        x, y = bits[..., None], bits.sum(axis=1) % 2
        parts = _split(n, val_fraction, test_fraction, rng, labels=y)
        info.update(task="classification", n_classes=2, class_names=["even", "odd"])
    info.update(n_features=x.shape[-1], input_shape=(length, x.shape[-1]))
    y = y.astype(np.int64) if task == "parity" else y.astype(np.float32)
    return _bundle(np.ascontiguousarray(x, dtype=np.float32), y, parts, batch_size, seed, info)


# -- text -----------------------------------------------------------------------------------------
class CharTokenizer:
    """Characters <-> integer ids, over a fixed vocabulary (sorted characters)."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> list[int]:
        missing = sorted(set(text) - self.index.keys())
        if missing:
            raise ValueError(f"characters {missing!r} are not in the vocabulary of {len(self.chars)} characters")
        return [self.index[c] for c in text]

    def decode(self, ids) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return "".join(self.chars[i] for i in ids)


@functools.lru_cache(maxsize=1)
def _corpus():
    """(text, tokenizer, topics): Python's help topics, joined in sorted key order (~465k characters)."""
    from pydoc_data.topics import topics
    names = sorted(topics)
    text = "\n".join(topics[k] for k in names)
    return text, CharTokenizer(sorted(set(text))), {k: topics[k] for k in names}


def _text_info(tokenizer) -> dict:
    return dict(vocab_size=len(tokenizer.chars), chars=tokenizer.chars, encode=tokenizer.encode,
                decode=tokenizer.decode, tokenizer=tokenizer)


def text_corpus(block_size: int = 64, batch_size: int = 12, val_fraction: float = 0.1,
                test_fraction: float = 0.0, seed: int = 0) -> DataBundle:
    """Character-level language modelling on the text of Python's help topics (pydoc_data).

    The text is split in order (first 90% train). A train item is a window x = data[i:i+T] with
    its next characters y = data[i+1:i+T+1], at every start i, shuffled by the loader (nanoGPT's
    random windows). val/test are non-overlapping windows: quick and deterministic to evaluate.
    """
    check_int("block_size", block_size, minimum=1)
    _check_common(batch_size, val_fraction, test_fraction, seed)
    text, tokenizer, topics = _corpus()
    data = torch.tensor(tokenizer.encode(text), dtype=torch.int64)
    n_val, n_test = int(val_fraction * len(data)), int(test_fraction * len(data))
    n_train = len(data) - n_val - n_test
    pieces = data[:n_train], data[n_train:n_train + n_val], data[n_train + n_val:]
    for name, piece, fraction in zip(SPLITS, pieces, (1, val_fraction, test_fraction)):
        if fraction and len(piece) <= block_size:
            raise ValueError(f"block_size={block_size} leaves no window in the {name} split of "
                             f"{len(piece)} characters; use a smaller block_size or a larger {name}_fraction")
    train = pieces[0]
    # unfold: row i is a view of train[i:i+T] (no copy), so all ~420k windows cost no memory
    train_ds = TensorData(train[:-1].unfold(0, block_size, 1), train[1:].unfold(0, block_size, 1))

    def chunks(piece):
        if len(piece) <= block_size:
            return None
        m = (len(piece) - 1) // block_size * block_size
        return TensorData(piece[:m].view(-1, block_size), piece[1:m + 1].view(-1, block_size))

    starts, spans = 0, {}
    for name, topic in topics.items():
        spans[name] = (starts, starts + len(topic))
        starts += len(topic) + 1                      # the "\n" that joins topics
    info = dict(task="language_model", block_size=block_size, text=text, train_chars=len(pieces[0]),
                val_chars=len(pieces[1]), test_chars=len(pieces[2]), topics=topics, topic_spans=spans,
                **_text_info(tokenizer))
    return make_loaders(train_ds, chunks(pieces[1]), chunks(pieces[2]), batch_size, seed, info)


def text_topics(n_topics: int = 8, min_chars: int = 5000, snippet_len: int = 128, per_topic: int | None = None,
                batch_size: int = 32, val_fraction: float = 0.2, test_fraction: float = 0.2,
                seed: int = 0) -> DataBundle:
    """Classify which help topic a snippet of text comes from (x: token ids [snippet_len], y: topic).

    Uses the n_topics longest topics with at least min_chars characters, cut into non-overlapping
    snippets; per_topic snippets each (default: as many as the smallest topic has, so classes
    are balanced). The vocabulary is text_corpus's, so a character model trained there fine-tunes here.
    """
    check_int("n_topics", n_topics, minimum=2)
    check_int("snippet_len", snippet_len, minimum=1)
    check_int("min_chars", min_chars, minimum=snippet_len)
    _check_common(batch_size, val_fraction, test_fraction, seed)
    rng = np.random.default_rng(seed)
    text, tokenizer, topics = _corpus()
    long_enough = sorted((k for k in topics if len(topics[k]) >= min_chars), key=lambda k: (-len(topics[k]), k))
    if len(long_enough) < n_topics:
        raise ValueError(f"n_topics={n_topics} but only {len(long_enough)} topics have >= min_chars={min_chars} "
                         f"characters; lower n_topics or min_chars")
    names = long_enough[:n_topics]
    smallest = min(len(topics[k]) // snippet_len for k in names)
    per_topic = smallest if per_topic is None else check_int("per_topic", per_topic, minimum=1, maximum=smallest)
    x, y = [], []
    for label, name in enumerate(names):
        ids = np.array(tokenizer.encode(topics[name]), dtype=np.int64)
        snippets = ids[:len(ids) // snippet_len * snippet_len].reshape(-1, snippet_len)
        x.append(snippets[np.sort(rng.choice(len(snippets), per_topic, replace=False))])
        y.append(np.full(per_topic, label))
    x, y = np.concatenate(x), np.concatenate(y)
    parts = _split(len(y), val_fraction, test_fraction, rng, labels=y)
    info = dict(task="classification", n_classes=n_topics, class_names=names, input_shape=(snippet_len,),
                snippet_len=snippet_len, per_topic=per_topic, **_text_info(tokenizer))
    return _bundle(x, y.astype(np.int64), parts, batch_size, seed, info)


# -- MNIST (opt-in download) ---------------------------------------------------------------------
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
MNIST_FILES = {   # name -> md5 of the .gz file
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """An IDX file (optionally .gz) as a numpy array. Header: two zero bytes, a type code,
    the number of dimensions, then each dimension as a big-endian uint32."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()!r})")
    ndim, dtype = raw[3], np.dtype(IDX_DTYPES[raw[2]])
    shape = tuple(np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).tolist())
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path}: header says shape {shape} but the file holds {len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _download(name: str, root: Path) -> None:
    errors = []
    for mirror in MNIST_MIRRORS:
        url = f"{mirror}{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
        except OSError as error:
            errors.append(f"{url}: {error}")
            continue
        if hashlib.md5(payload).hexdigest() != MNIST_FILES[name]:
            errors.append(f"{url}: checksum mismatch")
            continue
        part = root / f"{name}.gz.part"
        part.write_bytes(payload)
        part.replace(root / f"{name}.gz")             # atomic: no half-written file on Ctrl-C
        return
    raise OSError(f"could not download {name}.gz: " + "; ".join(errors))


def mnist(root="data/mnist", download: bool = False, batch_size: int = 64, flat: bool = True,
          standardize: bool = True, val_fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """MNIST from the four IDX files in `root` (plain or .gz); the test split is the official one.

    download=True fetches the missing files (about 11 MB, checksummed) first; nothing is
    downloaded otherwise. Pixels are scaled to [0, 1], then standardized with the train split's
    mean and std (one number each).
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or Path), got {type(root).__name__} {root!r}")
    root = Path(root)
    _check_common(batch_size, val_fraction, 0.0, seed)
    _check_bool("download", download)
    _check_bool("flat", flat)
    _check_bool("standardize", standardize)

    def find(name):
        return next((p for p in (root / name, root / f"{name}.gz") if p.exists()), None)

    missing = [name for name in MNIST_FILES if find(name) is None]
    if missing and download:
        root.mkdir(parents=True, exist_ok=True)
        for name in missing:
            _download(name, root)
        missing = []
    if missing:
        raise FileNotFoundError(f"MNIST files missing in {root}: {', '.join(m + '[.gz]' for m in missing)}; "
                                f"pass download=True to fetch them (about 11 MB), or copy them there")
    x_train, y_train, x_test, y_test = (read_idx(find(f"{split}-{kind}")) for split in ("train", "t10k")
                                        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) or x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"MNIST files in {root} do not match: {x_train.shape} images with {y_train.shape} labels, "
                         f"{x_test.shape} test images with {y_test.shape} labels")
    x = np.concatenate([x_train, x_test]).astype(np.float32) / 255
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    rng = np.random.default_rng(seed)
    train, val, _ = _split(len(y_train), val_fraction, 0.0, rng, labels=y_train)
    test = np.arange(len(y_train), len(y))
    mean = std = None
    if standardize:
        mean, std = float(x[train].mean()), float(max(x[train].std(), 1e-8))
        x = (x - mean) / std
    shape = (x.shape[1] * x.shape[2],) if flat else (1, *x.shape[1:])
    info = dict(task="classification", n_features=int(np.prod(shape)), n_classes=10, input_shape=shape,
                class_names=[str(c) for c in range(10)], mean=mean, std=std)
    return _bundle(x.reshape((-1, *shape)), y, (train, val, test), batch_size, seed, info)
