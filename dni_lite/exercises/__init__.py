"""Checkers for the notebooks' exercises, one module per notebook (nb01.py, ...).

Each checker takes the student's answer, verifies it by computation, and
returns a one-line verdict; ``None`` means "not attempted yet". Worked
solutions for instructors are in ``solutions.py`` (the notebooks never import it).
"""
from __future__ import annotations

from typing import Any, Callable

NOT_YET = "Not attempted yet: replace None with your answer and run the cell again."


def number_or_hint(value: Any, what: str = "a number") -> tuple[float | None, str | None]:
    """The answer as a float, or ``None`` and a message that says why it is not a number.

    A number typed as text (``"3"``) gets a message about the type, not a wrong verdict.
    """
    if isinstance(value, bool):
        return None, f"Not yet: the answer is {what}, not {value}."
    if isinstance(value, (int, float)):
        return float(value), None
    if isinstance(value, str):
        try:
            float(value.strip())
        except ValueError:
            pass
        else:
            return None, (f"Not yet: you gave the text {value!r}; give the number itself, without "
                          f"quotes: {value.strip()}")
    return None, f"Not yet: the answer is {what}, got a {type(value).__name__}."


def whole_number_or_hint(value: Any, what: str, low: int = 0) -> tuple[int | None, str | None]:
    """The answer as an int >= ``low`` (a float like 3.0 is accepted), or a message."""
    number, hint = number_or_hint(value, what)
    if hint:
        return None, hint
    if number != int(number) or number < low:
        return None, f"Not yet: the answer is {what}, got {value!r}."
    return int(number), None


def call_student(fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """Call a student's function: ``(result, None)``, or ``(None, message)`` naming the exception."""
    try:
        return fn(*args), None
    except Exception as exc:  # shown to the student
        return None, f"Not yet: your function raised {type(exc).__name__}: {exc}"
