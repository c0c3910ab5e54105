"""Driving an experiment without a panel.

An experiment is a generator of metric dicts that may ``return`` a result
object. The panel drives it live; tests, scripts and check cells drive it to
its end with ``run_to_end``.
"""
from __future__ import annotations

from typing import Any, Iterator


def run_to_end(experiment: Iterator[dict[str, float]]) -> tuple[list[dict[str, float]], Any]:
    """Drive an experiment generator to its end; return its rows and its return value."""
    rows = []
    while True:
        try:
            rows.append(next(experiment))
        except StopIteration as done:
            return rows, done.value
