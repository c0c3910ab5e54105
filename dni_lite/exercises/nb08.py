"""Exercise checkers for notebook 08 (two timescales joined by a decoupled interface)."""
from __future__ import annotations

import itertools
from typing import Callable

from ..data.tasks import count_chance
from ..experiments.timeline import Costs, simulate
from . import NOT_YET, call_student, number_or_hint


def check_chance(chance: float | None) -> str:
    """Exercise 1: the accuracy of always giving the most frequent count for m = 6."""
    if chance is None:
        return NOT_YET
    chance, hint = number_or_hint(chance, "a fraction between 0 and 1")
    if hint:
        return hint
    want = count_chance(6)
    if abs(float(chance) - want) <= 1e-3:
        return (f"Correct: {want:.4f}. Three ones out of six is the most frequent count, "
                "C(6, 3) = 20 of the 64 equally likely windows.")
    return (f"Not yet: {float(chance):.4g}. Of the 2^6 equally likely windows, how many hold "
            "the most frequent number of ones?")


def fast_updates(method: str, K: int, windows: int) -> int:
    """How often each system updates its fast network in ``windows`` windows of K ticks."""
    return {"locked": windows, "dni": K * windows, "no_signal": 0}[method]


def check_updates(fn: Callable[[str, int, int], int] | None) -> str:
    """Exercise 2: ``fn(method, K, windows)`` is the number of fast-network updates."""
    if fn is None:
        return NOT_YET
    for method, K, windows in itertools.product(("locked", "dni", "no_signal"), (1, 4, 16), (1, 10)):
        got, hint = call_student(fn, method, K, windows)
        if hint:
            return hint
        if got != fast_updates(method, K, windows):
            return (f"Not yet: fn({method!r}, K={K}, windows={windows}) gave {got!r}. When does each "
                    "system's fast network receive a gradient, true or synthetic?")
    return ("Correct: the locked fast network updates once per window, the DNI-joined one at every "
            "tick, and the ablation's never.")


def steady_window(costs: Costs, mode: str) -> float:
    """Time per window once the two-worker schedule has settled, from the simulator."""
    long, short = simulate(costs, mode, 60), simulate(costs, mode, 30)
    return (long.makespan - short.makespan) / 30


def check_window_time(fn: Callable[..., tuple[float, float]] | None) -> str:
    """Exercise 3: ``fn(fast_forward, fast_backward, slow_forward, slow_backward, synthesizer)``
    returns the seconds per window of the locked and the DNI-joined system on two workers."""
    if fn is None:
        return NOT_YET
    cases = [(1.0, 2.0, 1.0, 2.0, 0.5), (3.0, 6.0, 0.5, 1.0, 1.0), (0.5, 1.0, 2.0, 4.0, 0.2)]
    for ff, fb, sf, sb, syn in cases:
        got, hint = call_student(fn, ff, fb, sf, sb, syn)
        if hint:
            return hint
        costs = Costs([ff, sf], [fb, sb], [syn, 0.0])
        want = (steady_window(costs, "backprop"), steady_window(costs, "decoupled"))
        try:
            locked, dni = (float(v) for v in got)
        except (TypeError, ValueError):
            return f"Not yet: return two numbers (locked, dni), got {got!r}."
        if abs(locked - want[0]) > 1e-6 or abs(dni - want[1]) > 1e-6:
            return (f"Not yet: for costs {(ff, fb, sf, sb, syn)} you gave ({locked:g}, {dni:g}); "
                    f"the simulator says ({want[0]:g}, {want[1]:g}). Who waits for whom in each system?")
    return ("Correct: locked, the two workers take turns, so a window costs the sum of all four parts; "
            "decoupled, they overlap, and the busier worker sets the pace.")
