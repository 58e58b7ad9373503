"""Checks for exercises: ``lk.check(name, answer, expected, hint=...)``.

A check says whether a learner's answer is right, and when it is not, gives a hint that points
at the concept -- never the expected value:

    >>> lk.check("slope", theta[1], true_slope, rtol=0.05, hint="look at the sign of the update")
    ✓ slope: correct
    True

What can be compared (``expected`` decides):

- a number (int, float, NumPy scalar, 0-d array/tensor): ``|answer - expected| <= atol + rtol*|expected|``;
- an array or tensor, or a list/tuple of numbers: the shape first (the message names both
  shapes: a shape is not the answer), then every entry with the same tolerance as for numbers;
- a bool or a string: equal (strings ignoring surrounding whitespace and case);
- a list/tuple/dict of any of these (e.g. a function returning ``(loss, grad)``): item by item;
- a function (any callable, e.g. a reference implementation or an ``nn.Module``): ``answer`` must be
  callable too, and both are called on each item of ``inputs=`` (a tuple is unpacked into
  positional arguments, anything else is passed as the one argument; each call gets its own copy,
  so an answer that modifies its input in place cannot change what the reference sees); the
  outputs are compared as above.

A wrong answer -- wrong value, wrong shape, wrong type, an exception raised by the learner's
function -- prints ``✗ <name>: not yet — <hint> (<what is off>)`` and returns False. A mistake in
the call itself (an ``expected`` of a type that cannot be compared, a bad tolerance, a missing
hint, a function to compare without ``inputs``) raises TypeError/ValueError naming the parameter.
"""
from __future__ import annotations

import copy
import math
import numbers

import numpy as np

__all__ = ["check"]

_SUPPORTED = ("a number, a bool, a string, a NumPy array or torch tensor, a list/tuple/dict of "
              "those, or a function (callable) with inputs=[...]")


def check(name: str, answer, expected, *, rtol: float = 1e-5, atol: float = 1e-8, hint: str,
          inputs=None) -> bool:
    """Compare ``answer`` with ``expected``; print ``✓ name: correct`` or ``✗ name: not yet — hint``.

    Returns True when the answer is right. The expected value is never printed. ``rtol``/``atol``
    are the relative/absolute tolerances for numbers and arrays; ``inputs`` is the list of inputs
    on which a function answer is compared with a function ``expected``.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"check: name must be a non-empty str naming the exercise, got {name!r}")
    if not isinstance(hint, str) or not hint.strip():
        raise TypeError(f"check: hint must be a non-empty str pointing at the concept, got {hint!r}")
    rtol = _tolerance("rtol", rtol)
    atol = _tolerance("atol", atol)
    if callable(expected) and not _is_value(expected):
        if inputs is None:
            raise TypeError("check: inputs must be given when expected is a function: a list of inputs "
                            "to call both functions on, e.g. inputs=[torch.randn(4, 3)]")
        if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__iter__"):
            raise TypeError(f"check: inputs must be a list of inputs, got {type(inputs).__name__}")
        inputs = list(inputs)
        if not inputs:
            raise ValueError("check: inputs must hold at least one input to call the functions on, got []")
        reason = _compare_functions(answer, expected, inputs, rtol, atol)
    else:
        if inputs is not None:
            raise TypeError("check: inputs is only used when expected is a function; "
                            f"here expected is a {type(expected).__name__}")
        _validate_expected(expected)
        reason = _compare(answer, expected, rtol, atol)
    if reason is None:
        print(f"✓ {name}: correct")
        return True
    print(f"✗ {name}: not yet — {hint.strip()} ({reason})")
    return False


def _tolerance(label: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"check: {label} must be a number >= 0 such as 1e-5, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"check: {label} must be a finite number >= 0 such as 1e-5, got {value!r}")
    return float(value)


# ---- what a value is -------------------------------------------------------------------------

def _is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _torch():
    try:
        import torch
    except ImportError:        # pragma: no cover - labkit depends on torch
        return None
    return torch


def _is_value(x) -> bool:
    """Values that happen to be callable are still values (none of the supported ones are)."""
    return isinstance(x, (np.ndarray, np.generic)) or _is_tensor(x)


def _as_array(x) -> np.ndarray:
    """A NumPy array from an array, a tensor (detached, on the CPU, float if NumPy lacks its dtype)
    or a nested list/tuple of numbers."""
    if _is_tensor(x):
        t = x.detach().cpu()
        if t.dtype in (_torch().bfloat16, _torch().float16) or t.is_quantized:
            t = t.float()
        return t.resolve_conj().resolve_neg().numpy() if t.is_complex() else t.numpy()
    return np.asarray(x)


def _is_number(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, numbers.Number):
        return True
    if isinstance(x, np.ndarray) or _is_tensor(x):
        return x.ndim == 0 and _as_array(x).dtype.kind in "iufc"
    return False


def _is_bool(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return True
    if isinstance(x, np.ndarray) or _is_tensor(x):
        return x.ndim == 0 and _as_array(x).dtype.kind == "b"
    return False


def _is_array_like(x) -> bool:
    if isinstance(x, np.ndarray) or _is_tensor(x):
        return True
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError):  # ragged, or items NumPy cannot hold
            return False
        return arr.dtype.kind in "biufcU"
    return False


def _validate_expected(expected) -> None:
    if expected is None:
        raise TypeError(f"check: expected is None; it must be {_SUPPORTED}")
    if (_is_bool(expected) or _is_number(expected) or isinstance(expected, str)
            or _is_array_like(expected)):
        if _is_array_like(expected) and _as_array(expected).dtype.kind not in "biufcU":
            raise TypeError(f"check: expected is an array of dtype {_as_array(expected).dtype}; "
                            f"it must hold numbers, bools or strings")
        return
    if isinstance(expected, (list, tuple)):
        for item in expected:
            _validate_expected(item)
        return
    if isinstance(expected, dict):
        for item in expected.values():
            _validate_expected(item)
        return
    raise TypeError(f"check: cannot compare an expected value of type {type(expected).__name__}; "
                    f"expected must be {_SUPPORTED}")


def _describe(x) -> str:
    """The kind of a learner's answer, never its value (it might be printed next to a hint)."""
    if x is None:
        return "None (no answer yet?)"
    if callable(x) and not _is_value(x):
        return "a function (did you mean to call it?)"
    if _is_tensor(x) or isinstance(x, np.ndarray):
        return f"an array of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


# ---- comparisons: each returns None when equal, else what is off (never the expected value) --

def _compare(answer, expected, rtol: float, atol: float) -> str | None:
    if _is_bool(expected):
        if not _is_bool(answer):
            return f"expected True or False, got {_describe(answer)}"
        return None if bool(answer) == bool(expected) else "that is not the right truth value"
    if isinstance(expected, str):
        if not isinstance(answer, str):
            return f"expected a string, got {_describe(answer)}"
        same = answer.strip().casefold() == expected.strip().casefold()
        return None if same else "that is not the expected text"
    if _is_number(expected):
        return _compare_number(answer, expected, rtol, atol)
    if _is_array_like(expected):
        return _compare_array(answer, expected, rtol, atol)
    if isinstance(expected, (list, tuple)):
        if not isinstance(answer, (list, tuple)):
            return f"expected a sequence of {len(expected)} items, got {_describe(answer)}"
        if len(answer) != len(expected):
            return f"expected {len(expected)} items, got {len(answer)}"
        for i, (a, e) in enumerate(zip(answer, expected)):
            reason = _compare(a, e, rtol, atol)
            if reason is not None:
                return f"item {i}: {reason}"
        return None
    if isinstance(expected, dict):
        if not isinstance(answer, dict):
            return f"expected a dict, got {_describe(answer)}"
        missing = [k for k in expected if k not in answer]
        extra = [k for k in answer if k not in expected]
        if missing or extra:
            parts = ([f"missing keys {missing}"] if missing else []) + ([f"unexpected keys {extra}"] if extra else [])
            return ", ".join(parts)
        for k in expected:
            reason = _compare(answer[k], expected[k], rtol, atol)
            if reason is not None:
                return f"key {k!r}: {reason}"
        return None
    raise TypeError(f"check: cannot compare an expected value of type {type(expected).__name__}; "
                    f"expected must be {_SUPPORTED}")


def _compare_number(answer, expected, rtol, atol) -> str | None:
    if not _is_number(answer):
        if (_is_tensor(answer) or isinstance(answer, (np.ndarray, list, tuple))) and _is_array_like(answer):
            return f"expected a single number, got an array of shape {_as_array(answer).shape}"
        return f"expected a number, got {_describe(answer)}"
    a = complex(_as_array(answer).item()) if not isinstance(answer, numbers.Number) else complex(answer)
    e = complex(_as_array(expected).item()) if not isinstance(expected, numbers.Number) else complex(expected)
    if any(math.isnan(v) for v in (a.real, a.imag)):
        return "your answer is NaN (a computation overflowed or divided 0 by 0)"
    if any(math.isinf(v) for v in (a.real, a.imag)) and a != e:
        return "your answer is infinite"
    if a == e or abs(a - e) <= atol + rtol * abs(e):
        return None
    return f"not within the tolerance (rtol={rtol:g}, atol={atol:g})"


def _compare_array(answer, expected, rtol, atol) -> str | None:
    e = _as_array(expected)
    if _is_number(answer) or _is_bool(answer) or _is_array_like(answer):
        a = _as_array(answer)
    else:
        return f"expected an array of shape {e.shape}, got {_describe(answer)}"
    if a.shape != e.shape:
        return f"shape mismatch: expected shape {e.shape}, got {a.shape}"
    if e.dtype.kind == "U" or a.dtype.kind == "U":
        if e.dtype.kind != a.dtype.kind:
            return f"expected entries of kind {'text' if e.dtype.kind == 'U' else 'number'}, got {a.dtype}"
        norm = np.vectorize(lambda s: str(s).strip().casefold(), otypes=[object])
        wrong = int(np.sum(norm(a) != norm(e)))
    elif e.dtype.kind == "b":
        if a.dtype.kind != "b":
            return f"expected True/False entries, got entries of dtype {a.dtype}"
        wrong = int(np.sum(a != e))
    else:
        if a.dtype.kind not in "biufc":
            return f"expected numbers, got entries of dtype {a.dtype}"
        a64 = a.astype(np.complex128 if "c" in (a.dtype.kind, e.dtype.kind) else np.float64)
        e64 = e.astype(a64.dtype)
        if np.isnan(a64).any() and not np.isnan(e64).any():
            return f"your answer has {int(np.isnan(a64).sum())} NaN entries of {a.size}"
        wrong = int(np.sum(~np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)))
    if wrong == 0:
        return None
    if a.size == 1:
        return f"not within the tolerance (rtol={rtol:g}, atol={atol:g})"
    return f"{wrong} of {a.size} entries differ beyond the tolerance (rtol={rtol:g}, atol={atol:g})"


def _compare_functions(answer, expected, inputs, rtol, atol) -> str | None:
    if not callable(answer) or _is_value(answer):
        return f"expected a function, got {_describe(answer)}"
    for i, item in enumerate(inputs):
        args = item if isinstance(item, tuple) else (item,)
        want = expected(*copy.deepcopy(args))
        _validate_expected(want)
        try:
            got = answer(*copy.deepcopy(args))
        except Exception as exc:   # the learner's code failing is a wrong answer, not a crash
            return f"calling it on input {i} raised {type(exc).__name__}: {exc}"
        reason = _compare(got, want, rtol, atol)
        if reason is not None:
            return f"on input {i}: {reason}"
    return None
