"""Argument checks shared by the public API.

Every public function validates what it is given and raises ``ValueError``
naming the parameter and the allowed range, so a typo in a notebook fails at
once with a message a student can act on.
"""
from __future__ import annotations

import math
from typing import Any, Iterable


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``[low, high]``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer{_range(low, high)}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{_range(low, high)}, got {value!r}")
    return value


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> float:
    """Return ``value`` as float if it is finite and in range, else raise ValueError.

    ``low_open=True`` excludes ``low`` itself (for learning rates: ``> 0``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{_range(low, high, low_open)}, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise ValueError(f"{name} must be a number{_range(low, high, low_open)}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, options: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``options``, else raise ValueError listing them."""
    options = list(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _range(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def check_methods(methods: Any, valid: Iterable[str]) -> tuple[str, ...]:
    """Return ``methods`` if it is a non-empty tuple of names from ``valid``, else raise ValueError."""
    valid = tuple(valid)
    if not isinstance(methods, tuple) or not methods or any(m not in valid for m in methods):
        raise ValueError(f"methods must be a non-empty tuple of {valid}, got {methods!r}")
    return methods
