"""The notebooks' claims as checks, one module per notebook (nb01.py, ...).

Each check takes the rows of a run (the method and its *control*: the same run
with the mechanism the claim is about switched off, trained alongside), asserts
that the method beats the control by a margin calibrated over seeds 0-4 and
that the mechanism itself did its part, and returns a ``PASS`` line to print.
When the claim does not hold it raises ``ClaimFailed`` with the numbers.

The notebooks' check cells call these functions; the tests call them too, on the
method (they pass) and on the control run (they must fail), so a check that
would pass with the mechanism broken is caught.
"""
from __future__ import annotations

from typing import Sequence


class ClaimFailed(AssertionError):
    """A claim did not hold on this run; the message has the numbers."""


def require(condition: bool, message: str) -> None:
    """Raise ``ClaimFailed(message)`` unless ``condition``."""
    if not condition:
        raise ClaimFailed(message)


def tail_mean(rows: Sequence[dict[str, float]], key: str, fraction: float = 0.1) -> float:
    """Mean of ``key`` over the last ``fraction`` of the logged rows (at least one row)."""
    tail = rows[-max(1, int(len(rows) * fraction)):]
    values = [r[key] for r in tail if key in r]
    require(bool(values), f"the run logged no {key!r}: was that variant trained?")
    return sum(values) / len(values)
