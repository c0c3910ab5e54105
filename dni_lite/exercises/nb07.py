"""Exercise checkers for notebook 07 (decoupled training in parallel)."""
from __future__ import annotations

from ..experiments.timeline import Costs, simulate
from . import NOT_YET, number_or_hint, whole_number_or_hint



def check_pipeline_throughput(examples_per_s: float | None) -> str:
    """Exercise 1: minibatches of 64 examples, two workers, no message delay.
    Worker 0: forward 1 ms, synthesizer 1 ms, backward 2 ms; worker 1 (the loss):
    forward 2 ms, backward 4 ms. Steady-state examples per second of the pipeline?"""
    if examples_per_s is None:
        return NOT_YET
    examples_per_s, hint = number_or_hint(examples_per_s, "a positive number of examples per second")
    if hint:
        return hint
    if examples_per_s <= 0:
        return "Not yet: the answer is a positive number of examples per second."
    t = simulate(Costs([0.001, 0.002], [0.002, 0.004], [0.001, 0.0]), "decoupled", minibatches=2000)
    truth = t.throughput * 64
    if abs(examples_per_s - truth) / truth < 0.02:
        return ("Correct: in steady state the slowest worker sets the pace: 64 examples "
                "every 6 ms, about 10,700 per second.")
    if abs(examples_per_s - 64 / 0.010) / (64 / 0.010) < 0.02:
        return ("Not yet: that is backprop's pace (every step waits for both workers). "
                "Decoupled, the workers overlap: which one is busiest?")
    return "Not yet: find the busiest worker's time per minibatch; it sets the pace."


def check_best_speedup(speedup: float | None) -> str:
    """Exercise 2: in one process a DNI step costs 1.3 times a backprop step. With K = 2
    perfectly balanced workers and free messages, the best speed-up over one-process
    backprop (one thread each)?"""
    if speedup is None:
        return NOT_YET
    speedup, hint = number_or_hint(speedup, "a positive number")
    if hint:
        return hint
    if speedup <= 0:
        return "Not yet: a speed-up is a positive number."
    if abs(speedup - 2 / 1.3) < 0.02:
        return ("Correct: K / 1.3, about 1.54: the synthesizers' extra work eats part of "
                "the 2x that two workers could give.")
    if abs(speedup - 2.0) < 0.02:
        return "Not yet: 2x ignores that each DNI step does 1.3x the work of a backprop step."
    return "Not yet: split the DNI work evenly over K workers and compare with one backprop step."


def check_target_delay(delay: int | None) -> str:
    """Exercise 3: the smallest ``target_delay`` for which worker 0 never waits for its
    synthesizer target in steady state (equal stage costs, no message delay)."""
    if delay is None:
        return NOT_YET
    delay, hint = whole_number_or_hint(delay, "a whole number >= 0")
    if hint:
        return hint
    if delay == 1:
        return ("Correct: the target for step t - 1 is computed by worker 1 while worker 0 "
                "runs step t, so it is already there when worker 0 asks for it.")
    if delay == 0:
        return ("Not yet: with 0, worker 0 waits at every step until worker 1 has run the "
                "same minibatch: the round trip is back on the critical path.")
    return "Not yet: that works, but a smaller delay already hides the round trip."
