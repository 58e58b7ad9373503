"""Devices and reproducibility: pick_device(), seed_everything(), describe()."""
from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

from .checks import check_int

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """Return a torch.device: "auto" picks cuda > mps > cpu; an explicit name is checked.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'mps', "
                        f"got {type(name).__name__} {name!r}")
    base = name.split(":")[0].lower()
    if base not in DEVICE_NAMES:
        raise ValueError(f"device={name!r} is not a known device; use one of {DEVICE_NAMES} "
                         f"(optionally 'cuda:N')")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for, but this machine has no CUDA GPU "
                         f"(torch {torch.__version__}); use device='auto' to fall back to the CPU")
    if base == "mps" and not _mps_available():
        raise ValueError(f"device={name!r} was asked for, but Apple's MPS backend is not "
                         f"available here; use device='auto' to fall back to the CPU")
    return torch.device(name)


def seed_everything(seed: int = 0) -> int:
    """Seed Python's, NumPy's and torch's generators (every device) so runs repeat."""
    seed = check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


def describe() -> dict:
    """A dict describing the compute environment, for printing at the top of a notebook."""
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(terse=True),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "mps": _mps_available(),
        "device": str(pick_device("auto")),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["gpu_count"] = torch.cuda.device_count()
        info["bf16"] = torch.cuda.is_bf16_supported()
    return info
