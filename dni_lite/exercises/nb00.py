"""Exercise checkers for notebook 00 (locking and the timeline simulator)."""
from __future__ import annotations

from ..experiments.timeline import Costs, simulate
from . import NOT_YET, number_or_hint, whole_number_or_hint



def check_idle_fraction(idle: float | None) -> str:
    """Exercise 1: worker 2's idle fraction under backprop for
    forward costs [1, 2, 1], backward costs [2, 4, 2] and no delay."""
    if idle is None:
        return NOT_YET
    idle, hint = number_or_hint(idle, "a number in [0, 1]")
    if hint:
        return hint
    if not 0 <= idle <= 1:
        return "Not yet: an idle fraction is a number in [0, 1]."
    t = simulate(Costs([1.0, 2.0, 1.0], [2.0, 4.0, 2.0]), "backprop", minibatches=4)
    if abs(idle - t.idle_fraction[1]) < 1e-3:
        return "Correct: worker 2 works 6 of every 12 time units and waits the rest."
    return ("Not yet: one backprop step lasts the sum of every forward and backward cost; "
            "worker 2 is busy only for its own forward and backward.")


def check_minibatches_for_3x(minibatches: int | None) -> str:
    """Exercise 2: the fewest minibatches for which update-decoupled SG with K = 4
    equal modules (forward = backward = 1, free synthesizers, no delay) is at least
    3x faster than backprop."""
    if minibatches is None:
        return NOT_YET
    minibatches, hint = whole_number_or_hint(minibatches, "a positive whole number of minibatches", 1)
    if hint:
        return hint

    def speedup(n: int) -> float:
        return simulate(Costs.uniform(4, 1.0, 1.0), "decoupled", minibatches=n).speedup

    if speedup(minibatches) >= 3 and (minibatches == 1 or speedup(minibatches - 1) < 3):
        return "Correct: 2KN / (2N + K - 1) first reaches 3 at N = 5."
    if speedup(minibatches) < 3:
        return "Not yet: with that many minibatches the pipeline fill still costs too much."
    return "Not yet: fewer minibatches already reach 3x. Write the makespan as 2N + K - 1."


def check_unlocked_makespan(makespan: float | None) -> str:
    """Exercise 3: the makespan of complete unlocking for K = 3 equal modules,
    forward 1, backward 2, synthesizer 0.5, delay 1, over 10 minibatches."""
    if makespan is None:
        return NOT_YET
    makespan, hint = number_or_hint(makespan, "a number (time units)")
    if hint:
        return hint
    t = simulate(Costs.uniform(3, 1.0, 2.0, synth=0.5, delay=1.0), "unlocked", minibatches=10)
    if abs(makespan - t.makespan) < 1e-6:
        return ("Correct: the middle worker hosts two synthesizers (input and gradient), "
                "so it is the slowest; the delay never matters.")
    return ("Not yet: no worker waits for another, so the makespan is the busiest worker's "
            "total work. Count the synthesizers each worker hosts.")
