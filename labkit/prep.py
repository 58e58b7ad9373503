"""From files to tensors: the raw material and the small tools of the data chapter (06_data).

- ``messy_table``: a CSV made from scikit-learn's breast-cancer table the way real exports look:
  missing cells (some written as ``?``), duplicated rows, unit errors, a categorical ``scanner``
  column spelled inconsistently, labels as words.
- ``write_image_folder``: images written as PNG files in the ``root/<class>/<file>.png`` layout.
- ``ImageFolder``: a ``Dataset`` over that layout with the same constructor, attributes and
  ordering as ``torchvision.datasets.ImageFolder`` (see its docstring for why labkit has one).
- ``flip_labels``: label noise at a chosen rate.
- ``save_bundle`` / ``load_bundle``: the preprocessing fitted on the training split, saved in one
  folder with the model's weights and a JSON description, and loaded back for inference.
"""
from __future__ import annotations

import json
import numbers
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .hparams import check_int

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# The ten "mean" measurements of the breast-cancer table, with short column names.
TABLE_COLUMNS = {"mean radius": "radius", "mean texture": "texture", "mean perimeter": "perimeter",
                 "mean area": "area", "mean smoothness": "smoothness", "mean compactness": "compactness",
                 "mean concavity": "concavity", "mean concave points": "concave_points",
                 "mean symmetry": "symmetry", "mean fractal dimension": "fractal_dimension"}


def _fraction(name: str, value, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, {high}), got {type(value).__name__} {value!r}")
    if not 0 <= value < high:
        raise ValueError(f"{name} must be in [0, {high}), got {value!r}")
    return float(value)


def clean_table(seed: int = 0, n_scanners: int = 8, scanner_shift: float = 1.5):
    """The breast-cancer table before anything goes wrong: a pandas DataFrame with the ten mean
    measurements, a ``scanner`` column (``"S1"`` ... ) whose calibration offsets two measurements,
    and ``diagnosis`` ("malignant"/"benign"). Deterministic given ``seed``.

    Each scanner is calibrated differently: it adds a baseline of its own to every measurement,
    from 0 to ``2 * scanner_shift`` standard deviations of that measurement, so a value means
    something different on each scanner until the model knows which scanner made it."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    check_int("seed", seed, minimum=0)
    check_int("n_scanners", n_scanners, minimum=1, maximum=99)
    if isinstance(scanner_shift, bool) or not isinstance(scanner_shift, numbers.Real) or scanner_shift < 0:
        raise ValueError(f"scanner_shift must be a number >= 0 (standard deviations), got {scanner_shift!r}")
    raw = load_breast_cancer(as_frame=True)
    df = raw.frame[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS).astype(float)
    rng = np.random.default_rng(seed)
    scanner = rng.integers(0, n_scanners, size=len(df))
    # Baselines spread evenly over [0, 2 * shift] std, given to the scanners in a shuffled order;
    # all >= 0, so every measurement stays positive.
    offsets = np.linspace(0.0, 2 * scanner_shift, n_scanners) if n_scanners > 1 else np.zeros(1)
    offsets = rng.permutation(offsets)
    for column in df.columns:
        df[column] = df[column] + offsets[scanner] * df[column].std()
    df.insert(len(df.columns), "scanner", [f"S{s + 1}" for s in scanner])
    df["diagnosis"] = np.where(raw.target.to_numpy() == 0, "malignant", "benign")
    return df


def messy_table(path, *, seed: int = 0, missing: float = 0.08, duplicates: float = 0.3,
                outliers: float = 0.02, n_scanners: int = 8, scanner_shift: float = 1.5) -> Path:
    """Write ``clean_table`` to ``path`` as a CSV with the faults of real exports; return the path.

    - ``missing``: that fraction of the cells of five measurement columns is empty, a third of
      them written as ``?``;
    - ``duplicates``: that fraction of rows appears a second time (a merge of overlapping exports);
    - ``outliers``: that fraction of ``area`` and ``perimeter`` values was entered in the wrong unit
      (x 100);
    - the scanner names come in three spellings (``S3``, ``s3``, `` S3 ``).
    Rows are shuffled; an ``id`` column numbers the original patients (duplicates share it).
    """
    import pandas as pd

    missing = _fraction("missing", missing, 0.5)
    duplicates = _fraction("duplicates", duplicates)
    outliers = _fraction("outliers", outliers, 0.5)
    df = clean_table(seed=seed, n_scanners=n_scanners, scanner_shift=scanner_shift)
    rng = np.random.default_rng(seed + 1)
    df.insert(0, "id", np.arange(len(df)))
    for column in ("area", "perimeter"):
        rows = rng.random(len(df)) < outliers
        df.loc[rows, column] = df.loc[rows, column] * 100
    measured = list(TABLE_COLUMNS.values())
    df[measured] = df[measured].apply(lambda s: s.map(lambda v: float(f"{v:.6g}")))   # 6 significant digits
    spell = rng.integers(0, 3, size=len(df))
    df["scanner"] = [s if k == 0 else s.lower() if k == 1 else f" {s} " for s, k in zip(df["scanner"], spell)]
    df = df.astype({c: object for c in ("texture", "smoothness", "compactness", "symmetry", "concavity")})
    for column in ("texture", "smoothness", "compactness", "symmetry", "concavity"):
        rows = rng.random(len(df)) < missing
        question = rows & (rng.random(len(df)) < 1 / 3)
        df.loc[rows, column] = np.nan
        df.loc[question, column] = "?"
    copies = df.iloc[rng.permutation(len(df))[: round(duplicates * len(df))]]
    df = pd.concat([df, copies]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def write_image_folder(root, images, labels, class_names=None, prefix: str = "img") -> Path:
    """Write grayscale ``images`` ([N, H, W] numbers in [0, 1], or uint8) as PNG files in
    ``root/<class name>/<prefix>_<index>.png``; return ``root``. ``class_names[label]`` names the
    folder (default: the label itself)."""
    from PIL import Image

    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3:
        raise ValueError(f"images must have shape [N, H, W] (grayscale), got shape {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"labels has {len(labels)} entries but images has {len(images)}; give one label per image")
    if images.dtype != np.uint8:
        if images.min() < 0 or images.max() > 1:
            raise ValueError(f"float images must be in [0, 1], got values in [{images.min()}, {images.max()}]; "
                             f"divide by the maximum first")
        images = np.round(images * 255).astype(np.uint8)
    root = Path(root)
    width = len(str(max(len(images) - 1, 0)))
    for i, (image, label) in enumerate(zip(images, labels)):
        name = str(class_names[label]) if class_names is not None else str(label)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{prefix}_{i:0{width}d}.png")
    return root


def pil_loader(path) -> "PIL.Image.Image":
    """Open an image file fully (the file is closed afterwards), as torchvision's loader does."""
    from PIL import Image

    with open(path, "rb") as f:
        image = Image.open(f)
        image.load()
    return image


def to_tensor(image) -> torch.Tensor:
    """A PIL image as a float tensor [C, H, W] in [0, 1] (what ``torchvision.transforms.ToTensor`` gives)."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    scale = 255.0 if np.asarray(image).dtype == np.uint8 else 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy()) / scale


class ImageFolder(Dataset):
    """Images in ``root/<class>/<file>``; ``dataset[i]`` is ``(transform(image), class index)``.

    The same constructor, attributes (``classes``, ``class_to_idx``, ``samples``, ``targets``,
    ``imgs``) and ordering (classes and files sorted by name) as ``torchvision.datasets.ImageFolder``,
    so code written for either runs on the other. labkit ships this one because torchvision must
    match the installed torch build exactly (torch 2.13 CPU needs torchvision 0.28 built for CPU);
    the Linux wheels on PyPI are built against CUDA and fail to import next to a CPU-only torch, and
    the CPU wheels come from PyTorch's own package index. With a matching torchvision installed,
    ``from torchvision.datasets import ImageFolder`` is a drop-in replacement.
    """

    def __init__(self, root, transform=None, target_transform=None, loader=pil_loader,
                 extensions=IMAGE_EXTENSIONS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: root {os.fspath(root)!r} is not a folder; "
                                    f"expected root/<class name>/<image files>")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: no class folders in {os.fspath(root)!r}; "
                                    f"expected root/<class name>/<image files>")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        extensions = tuple(e.lower() for e in extensions)
        self.samples = []
        for name in self.classes:
            files = sorted(p for p in (self.root / name).rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            self.samples += [(str(p), self.class_to_idx[name]) for p in files]
        empty = [c for c in self.classes if self.class_to_idx[c] not in {t for _, t in self.samples}]
        if empty:
            raise FileNotFoundError(f"ImageFolder: class folder(s) {empty} in {os.fspath(root)!r} hold no "
                                    f"image files with extensions {extensions}")
        self.targets = [t for _, t in self.samples]
        self.imgs = self.samples
        self.transform, self.target_transform, self.loader = transform, target_transform, loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    def __repr__(self) -> str:
        return f"ImageFolder(root={os.fspath(self.root)!r}, {len(self)} images, {len(self.classes)} classes)"


def flip_labels(labels, rate: float, num_classes: int | None = None, seed: int = 0) -> np.ndarray:
    """A copy of ``labels`` where a fraction ``rate`` (exactly round(rate*N) of them) is replaced
    by a different class, chosen uniformly: symmetric label noise."""
    labels = np.asarray(labels)
    rate = _fraction("rate", rate, 1.0 + 1e-12)
    num_classes = int(labels.max()) + 1 if num_classes is None else check_int("num_classes", num_classes, minimum=2)
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    rows = rng.permutation(len(labels))[: round(rate * len(labels))]
    # adding 1..K-1 (mod K) always lands on another class
    noisy[rows] = (labels[rows] + rng.integers(1, num_classes, size=len(rows))) % num_classes
    return noisy


def save_bundle(folder, preprocess, model: torch.nn.Module, **meta) -> Path:
    """Save what inference needs in ``folder``: the fitted preprocessing (``preprocess.joblib``),
    the model's weights (``model.pt``, a state_dict) and ``meta.json`` (``meta`` as JSON plus
    library versions). The model's architecture is described in ``meta`` by the caller, so that
    ``load_bundle`` needs no pickled code for the network."""
    import joblib
    import sklearn

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(preprocess, folder / "preprocess.joblib")
    torch.save(model.state_dict(), folder / "model.pt")
    meta = dict(meta, versions={"torch": torch.__version__, "sklearn": sklearn.__version__,
                                "numpy": np.__version__})
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_bundle(folder, build_model):
    """``(preprocess, model, meta)`` from ``save_bundle``'s folder. ``build_model(meta)`` makes
    the network (untrained); its weights are then loaded and it is put in eval mode."""
    import joblib

    folder = Path(folder)
    missing = [n for n in ("preprocess.joblib", "model.pt", "meta.json") if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"load_bundle: {os.fspath(folder)!r} lacks {missing}; save it with save_bundle")
    meta = json.loads((folder / "meta.json").read_text())
    preprocess = joblib.load(folder / "preprocess.joblib")  # only load bundles you made: joblib unpickles
    model = build_model(meta)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    return preprocess, model, meta
