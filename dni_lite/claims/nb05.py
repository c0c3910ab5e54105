"""Notebook 05's claim: DNI's synthetic gradient, not any push at the boundary, lengthens the copies solved.

Beside BPTT(T) and DNI(T), every run trains the control ``"dni_noise"``: the
same DNI run, but at each chunk's end it injects Gaussian noise of the
synthetic gradient's size instead of the prediction. DNI must beat both at
every T, not only in total. Margins are calibrated over seeds 0-4 (the table
in the notebook; ``calibrate``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..experiments.recurrent import copy_experiment
from ..runner import run_to_end
from . import require

SWEEP_T = (2, 3, 4)


def dni_beats_truncation_and_noise(longest: Mapping[int, Mapping[str, float]], method: str = "dni") -> str:
    """At every T, ``method`` solves a longer copy than BPTT(T) and than noise at the boundary
    (seeds 0-4, T = 2, 3, 4: ahead of both by 1 or 2 lengths in all 15 runs)."""
    require(bool(longest), "no T was run")
    for T, solved in longest.items():
        require(solved[method] > solved["bptt"],
                f"T={T}: {method} solved length {solved[method]:.0f}, not longer than BPTT's {solved['bptt']:.0f}")
        require(solved[method] > solved["dni_noise"],
                f"T={T}: {method} solved length {solved[method]:.0f}, not longer than noise at the "
                f"boundary ({solved['dni_noise']:.0f})")
    return (f"PASS: for T = {', '.join(str(T) for T in longest)}, DNI(T) solves longer copies than BPTT(T) "
            "and than noise of the same size injected at the boundary")


def calibrate(seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> list[dict[str, Any]]:
    """Per seed and T, the longest copy length each variant solved with the default settings."""
    table = []
    for seed in seeds:
        for T in SWEEP_T:
            _, result = run_to_end(copy_experiment(T=T, seed=seed))
            table.append({"seed": seed, "T": T, **result.final("solved")})
    return table
