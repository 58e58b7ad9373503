"""Report results from a notebook: ``record(name, value)`` and ``records(path)``.

A notebook calls ``lk.record("test_accuracy", acc)``. In a Jupyter kernel the value is also
displayed under its own mimetype, so the executed notebook that papermill (or ``labkit run``)
saves carries it, and ``records("runs/01_x.ipynb")`` reads it back without re-running anything.

Values are stored as plain JSON: numbers, bools, strings, None, and lists/dicts of them.
NaN and infinities are kept (a diverged run is a result too); since strict JSON cannot hold
them, inside the notebook they are written as ``{"$float": "nan"}`` and decoded on reading.
"""
from __future__ import annotations

import math
import os
import sys

MIMETYPE = "application/vnd.labkit.record+json"

# This process's records, in the order they were first recorded (last value wins).
_RECORDS: dict = {}


def record(name: str, value):
    """Record ``value`` under ``name`` and return the converted value.

    ``value`` may be a Python number/bool/str/None, a NumPy scalar or array, a torch tensor,
    or lists/dicts of those; it is converted to plain Python (``tolist()`` for arrays).

    >>> record("answer", 42)
    42
    """
    if not isinstance(name, str):
        raise TypeError(f"record: name must be a str, got {type(name).__name__} {name!r}")
    if not name.strip():
        raise ValueError("record: name must be a non-empty string, got an empty name")
    value = to_json(value, name)
    _RECORDS[name] = value
    _display(name, value)
    return value


def records(path: str | os.PathLike | None = None) -> dict:
    """Return recorded values as ``{name: value}``.

    With no argument: the values recorded in this process. With a path: the values recorded
    in an executed notebook (``.ipynb``), read from its outputs; a name recorded twice keeps
    its last value.
    """
    if path is None:
        return dict(_RECORDS)
    import nbformat  # only needed when reading notebooks; keeps `import labkit` light

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"records: no executed notebook at {path!r}")
    nb = nbformat.read(path, as_version=4)
    found = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            bundle = output.get("data", {}).get(MIMETYPE)
            if isinstance(bundle, dict) and "name" in bundle:
                found[bundle["name"]] = _decode(bundle.get("value"))
    return found


def to_json(value, name: str = "value"):
    """Convert ``value`` to plain JSON-able Python; raise TypeError naming ``name`` if it can't."""
    # NumPy and torch objects both offer .tolist(), which yields Python scalars or nested lists
    # (a 0-d tensor or a NumPy scalar gives a plain scalar). Checking the module avoids importing
    # either library here.
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "torch") and hasattr(value, "tolist"):
        value = value.tolist()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # also turns int subclasses (e.g. IntEnum) into plain ints
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise TypeError(f"record: {name!r} has a dict key {key!r} of type "
                                f"{type(key).__name__}; JSON keys must be str")
            out[key] = to_json(v, f"{name}[{key!r}]")
        return out
    raise TypeError(f"record: {name!r} has a value of type {type(value).__module__}."
                    f"{type(value).__qualname__}, which cannot be stored; use a number, bool, "
                    f"str, None, a NumPy array, a torch tensor, or a list/dict of those")


def _encode(value):
    """Strict-JSON form of a converted value: non-finite floats become {"$float": "nan"}."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}  # 'nan', 'inf' or '-inf'
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value):
    """Inverse of _encode."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$float"), str):
            return float(value["$float"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (not plain Python, not terminal IPython)."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it already
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _display(name: str, value) -> None:
    if not _in_kernel():
        return
    from IPython.display import display

    bundle = {MIMETYPE: {"name": name, "value": _encode(value)},
              "text/plain": f"{name} = {value!r}"}
    display(bundle, raw=True)
