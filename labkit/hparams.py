"""Hyperparameters in notebooks: `check_params` for papermill parameters and `quick_default`.

The argument checks live in `labkit.checks` and the loss/optimizer/metric factories in
`labkit.factories`; they are re-exported here, where earlier code imports them from.
"""
from __future__ import annotations

import numbers
import os

from .checks import (check_bool, check_choice, check_float, check_fraction, check_int,  # noqa: F401
                     check_lr, check_number)
from .factories import (LOSSES, METRICS, OPTIMIZERS, make_loss, make_metrics,  # noqa: F401
                        make_optimizer)


def check_params(**specs) -> None:
    """Check notebook parameters (e.g. from papermill) against expected types.

    >>> check_params(lr=(lr, float), epochs=(epochs, int), quick=(quick, bool))

    An int is accepted where a float is expected. The error names the parameter, the value
    received, and shows how to pass it right.
    """
    for name, (value, expected) in specs.items():
        types = expected if isinstance(expected, tuple) else (expected,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok and float in types and isinstance(value, numbers.Real) and not isinstance(value, bool):
            ok = True
        if not ok:
            wanted = " or ".join(t.__name__ for t in types)
            raise TypeError(f"parameter {name!r} must be {wanted}, got {type(value).__name__} {value!r}"
                            f" (with papermill: -p {name} <{wanted}>, e.g. unquoted numbers and True/False)")


def quick_default() -> bool:
    """The default of a notebook's `quick` parameter: True when LABKIT_QUICK=1 is set (as `pytest`
    and `labkit run --quick` do), so nbval, which passes no parameters, runs the quick path too."""
    return os.environ.get("LABKIT_QUICK", "").strip().lower() in ("1", "true", "yes", "on")
