"""Argument checks, one place for all of labkit.

Each check returns the value (converted to a plain Python type) or raises a TypeError (wrong
kind of value) or ValueError (right kind, outside the allowed range) whose message names the
parameter, the value received and what is allowed, so a typo fails early with a message saying
what to change:

    >>> check_int("epochs", 2.5)
    TypeError: epochs must be an int, got float 2.5
    >>> check_number("gamma", -1, minimum=0, min_inclusive=False)
    ValueError: gamma must be a finite number > 0, got -1
"""
from __future__ import annotations

import difflib
import math
import numbers

from .i18n import _


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_text(minimum, maximum, min_inclusive=True, max_inclusive=True) -> str:
    low = None if minimum is None else f"{'>=' if min_inclusive else '>'} {minimum:g}"
    high = None if maximum is None else f"{'<=' if max_inclusive else '<'} {maximum:g}"
    if low and high:
        return _("in {interval}").format(
            interval=f"{'[' if min_inclusive else '('}{minimum:g}, {maximum:g}{']' if max_inclusive else ')'}")
    return low or high or ""


def check_number(name: str, value, minimum: float | None = None, maximum: float | None = None, *,
                 min_inclusive: bool = True, max_inclusive: bool = True, finite: bool = True,
                 hint: str = "") -> float:
    """A real number (not a bool) within the bounds; NaN never passes, inf only if finite=False."""
    kind = _("a finite number") if finite else _("a number")
    allowed = " ".join(p for p in (kind, _range_text(minimum, maximum, min_inclusive, max_inclusive)) if p)
    suffix = f"; {hint}" if hint else ""
    if not _is_real(value):
        raise TypeError(_("{name} must be {allowed}, got {type} {value!r}{suffix}").format(
            name=name, allowed=allowed, type=type(value).__name__, value=value, suffix=suffix))
    v = float(value)
    bad = (math.isnan(v) or (finite and math.isinf(v))
           or (minimum is not None and (v < minimum or (v == minimum and not min_inclusive)))
           or (maximum is not None and (v > maximum or (v == maximum and not max_inclusive))))
    if bad:
        raise ValueError(_("{name} must be {allowed}, got {value!r}{suffix}").format(
            name=name, allowed=allowed, value=value, suffix=suffix))
    return v


check_float = check_number


def check_positive(name: str, value, hint: str = "") -> float:
    """A finite number > 0."""
    return check_number(name, value, minimum=0, min_inclusive=False, hint=hint)


def check_nonnegative(name: str, value, hint: str = "") -> float:
    """A finite number >= 0."""
    return check_number(name, value, minimum=0, hint=hint)


def check_fraction(name: str, value, *, low_inclusive: bool = True, high_inclusive: bool = False,
                   hint: str = "") -> float:
    """A number between 0 and 1 (by default 0 included, 1 excluded, as a dropout rate)."""
    return check_number(name, value, minimum=0, maximum=1, min_inclusive=low_inclusive,
                        max_inclusive=high_inclusive, hint=hint)


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int (not a bool, not a float) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(_("{name} must be an int, got {type} {value!r}").format(
            name=name, type=type(value).__name__, value=value))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        allowed = (_("in {interval}").format(interval=f"[{minimum}, {maximum}]")
                   if minimum is not None and maximum is not None
                   else f">= {minimum}" if minimum is not None else f"<= {maximum}")
        raise ValueError(_("{name} must be an int {allowed}, got {value!r}").format(
            name=name, allowed=allowed, value=value))
    return int(value)


def check_lr(lr, name: str = "lr") -> float:
    """A learning rate: a finite number > 0."""
    if not _is_real(lr):
        raise TypeError(_("{name} must be a number > 0 such as 1e-3, got {type} {value!r}").format(
            name=name, type=type(lr).__name__, value=lr))
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(_("{name} must be a finite number > 0 such as 1e-3, got {value!r}").format(
            name=name, value=lr))
    return float(lr)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(_("{name} must be True or False, got {type} {value!r}").format(
            name=name, type=type(value).__name__, value=value))
    return value


def check_choice(name: str, value, choices):
    """One of `choices`; a near miss is suggested."""
    options = list(choices)
    try:
        ok = value in options
    except TypeError:                          # an unhashable value against a dict's keys
        ok = False
    if not ok:
        close = difflib.get_close_matches(value, [str(c) for c in options], n=1) \
            if isinstance(value, str) else []
        guess = _(" (did you mean {option!r}?)").format(option=close[0]) if close else ""
        raise ValueError(_("{name}={value!r} is not supported{guess}; use one of {options}").format(
            name=name, value=value, guess=guess, options=tuple(options)))
    return value


def check_str(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(_("{name} must be a non-empty string, got {type} {value!r}").format(
            name=name, type=type(value).__name__, value=value))
    return value


def check_instance(name: str, value, cls, what: str):
    """An instance of `cls`; passing the class itself gets a hint to call it."""
    if isinstance(value, type) and issubclass(value, cls):
        raise TypeError(_("{name} must be an instance, got the class {cls}: write {name}={cls}(...) "
                          "with parentheses").format(name=name, cls=value.__name__))
    if not isinstance(value, cls):
        raise TypeError(_("{name} must be {what}, got {type} {value}").format(
            name=name, what=what, type=type(value).__name__, value=f"{value!r:.80}"))
    return value


def suggest(value: str, options) -> str:
    """' (did you mean 'x'?)' for a near miss among `options`, else ''."""
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
    return _(" (did you mean {option!r}?)").format(option=close[0]) if close else ""
