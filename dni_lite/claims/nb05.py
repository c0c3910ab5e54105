"""Notebook 05's claim: DNI's synthetic gradient, not any push at the boundary, lengthens the copies solved.

Beside BPTT(T) and DNI(T), every run trains the control ``"dni_noise"``: the
same DNI run, but at each chunk's end it injects Gaussian noise of the
synthetic gradient's size instead of the prediction. DNI must beat both at
every T, not only in total. Margins are calibrated over seeds 0-4 (the table
in the notebook; ``calibrate``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..experiments.recurrent import CopySettings, copy_experiment
from ..pool import final_values, summary
from ..runner import Result
from ..validate import check_int
from . import require

SWEEP_T = (2, 3, 4)
METRICS = ("solved", "train_bits")


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


def sweep(T_values: Sequence[int] = SWEEP_T, settings: CopySettings | None = None,
          runs: Mapping[int, Result] | None = None, processes: int = 1) -> dict[int, dict[str, dict[str, float]]]:
    """Per T, the copy experiment's longest lengths solved and training seconds.

    Returns ``{T: {"solved": {variant: length}, "train_bits": {variant: error},
    "seconds": {variant: s}}}`` from each run's last row and its timings.
    ``settings`` (default: ``CopySettings()``, what the check is calibrated for)
    is run with each T. ``runs`` maps a T to a run already trained with these
    settings (the notebook passes its panel's run): it is not trained again.
    ``processes`` > 1 trains the other T in that many worker processes, one
    thread and one variant at a time (``pool.final_values``); every number but
    the seconds is the same as in one process.
    """
    if not T_values:
        raise ValueError("T_values must name at least one truncation T >= 1, got none")
    for T in T_values:
        check_int("T", T, 1)
    base = settings or CopySettings()
    done = {T: summary(result, METRICS) for T, result in (runs or {}).items() if T in T_values}
    todo = [T for T in T_values if T not in done]
    done.update(zip(todo, final_values(copy_experiment, [base.replace(T=T) for T in todo], METRICS, processes)))
    return {T: done[T] for T in T_values}


def calibrate(seeds: Sequence[int] = (0, 1, 2, 3, 4), processes: int = 1) -> list[dict[str, Any]]:
    """Per seed and T, the longest copy length each variant solved with the default settings."""
    keys = [(seed, T) for seed in seeds for T in SWEEP_T]
    runs = final_values(copy_experiment, [CopySettings(T=T, seed=seed) for seed, T in keys], METRICS, processes)
    return [{"seed": seed, "T": T, **run["solved"]} for (seed, T), run in zip(keys, runs)]
