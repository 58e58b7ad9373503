"""Fixtures for executing course notebooks with papermill, once per test session."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class Executed:
    path: Path          # the executed copy
    records: dict       # what the notebook reported with lk.record
    seconds: float


@pytest.fixture(scope="session")
def run_notebook(tmp_path_factory):
    """run_notebook("01_linear_regression", lr=0.1) -> Executed; quick mode; cached per parameters."""
    import papermill as pm
    import labkit as lk
    from labkit.runner import kernel_options
    cache: dict = {}

    def run(name: str, **parameters) -> Executed:
        key = (name, repr(sorted(parameters.items())))       # values may be lists
        if key not in cache:
            src = NOTEBOOKS / f"{name}.ipynb"
            assert src.exists(), f"no notebook {src}"
            out = tmp_path_factory.mktemp("executed") / src.name
            t0 = time.perf_counter()
            # run from an unrelated working directory: a notebook must not depend on where it is started
            # kernels listen on Unix sockets (no TCP port), as `labkit run` starts them
            pm.execute_notebook(str(src), str(out), parameters={"quick": True, **parameters},
                                kernel_name="python3", cwd=str(out.parent), progress_bar=False,
                                **kernel_options(str(tmp_path_factory.mktemp("kernel"))))
            cache[key] = Executed(out, lk.records(out), time.perf_counter() - t0)
        return cache[key]

    return run


@pytest.fixture
def seed_and_one_thread():
    """Tiny models: a second thread only adds synchronisation, which gets very slow when the
    machine's cores are busy with other work. Seeded, so each test sees the same weights."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
