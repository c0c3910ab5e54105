"""Exercise checkers for notebook 05 (DNI at the truncation boundary of BPTT)."""
from __future__ import annotations

from typing import Callable
from . import NOT_YET, call_student, number_or_hint, whole_number_or_hint



def pairs_within_chunk(length: int, T: int) -> int:
    """Reference for exercise 1: copy pairs (input i, output i) that fall in one chunk.

    Steps are numbered from 0: input i at step i, the delimiter at ``length``,
    output i at step ``length + 1 + i``; chunks are ``[0, T), [T, 2T), ...``.
    """
    return sum(i // T == (length + 1 + i) // T for i in range(length))


def check_pairs_within_chunk(fn: Callable[[int, int], int] | None) -> str:
    """Exercise 1: ``fn(length, T)`` counts the copy pairs that truncated BPTT can link."""
    if fn is None:
        return NOT_YET
    for length in range(1, 9):
        for T in range(1, 12):
            got, hint = call_student(fn, length, T)
            if hint:
                return hint
            want = pairs_within_chunk(length, T)
            if got != want:
                return f"Not yet: for length={length}, T={T} the answer is {want}, you gave {got}."
    return ("Correct: once length + 1 >= T no pair shares a chunk, so no gradient ever links an "
            "output to the bit it must copy; only the synthetic gradient can.")


def check_fixed_point(factor: float | None) -> str:
    """Exercise 2: the synthesizer's fixed point for a constant per-chunk gradient.

    If every chunk adds gradient g at its start and the state passes gradients
    through unchanged, the bootstrapped target is ``x = g + 0.1 x`` at the
    fixed point, so ``x = g / (1 - 0.1)``: a factor 1 / 0.9 = 1.111.
    """
    if factor is None:
        return NOT_YET
    factor, hint = number_or_hint(factor, "a number (the factor that multiplies g)")
    if hint:
        return hint
    if abs(float(factor) - 1 / 0.9) <= 0.005:
        return ("Correct: 1/(1 - 0.1) = 1.111. The scale acts as a discount: the chunk k steps "
                "ahead contributes 0.1^k of its gradient.")
    return f"Not yet: {float(factor):.4g} is not the fixed point of x = g + 0.1 x (in units of g)."


def check_reach(chunks: int | None) -> str:
    """Exercise 3: how many chunk boundaries the copy dependency of length 6 crosses at T = 2."""
    if chunks is None:
        return NOT_YET
    chunks, hint = whole_number_or_hint(chunks, "a whole number of boundaries")
    if hint:
        return hint
    # input 0 at step 0 (chunk 0), output 0 at step 7 (chunk 3): 3 boundaries
    if chunks == 3:
        return ("Correct: 3. The synthetic gradient must carry the error across three "
                "bootstrapped boundaries, each discounted by the scale.")
    return f"Not yet: {chunks} boundaries. Find the chunk of step 0 and of step length + 1 = 7."
