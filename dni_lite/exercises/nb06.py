"""Exercise checkers for notebook 06 (DNI-truncated BPTT on streams and text)."""
from __future__ import annotations

from typing import Callable

import torch

from ..data.tasks import load_corpus, planted_entropy
from . import NOT_YET, call_student, number_or_hint



def check_floor(floor: float | None) -> str:
    """Exercise 1: the planted task's floor for V = 8, noise 0.2."""
    if floor is None:
        return NOT_YET
    floor, hint = number_or_hint(floor, "a number of bits per symbol")
    if hint:
        return hint
    want = planted_entropy(8, 0.2)
    if abs(float(floor) - want) <= 0.005:
        return (f"Correct: {want:.3f} bits per symbol, against log2(8) = 3 bits for a model that "
                "forgot x[t-k].")
    return (f"Not yet: {float(floor):.4g}. p = 1 - 0.2 + 0.2/8 repeats, q = 0.2/8 for each of the "
            "7 other letters.")


def check_min_window(fn: Callable[[int], int] | None) -> str:
    """Exercise 2: ``fn(k)`` is the smallest T at which truncated BPTT links x[t+1] to x[t+1-k]."""
    if fn is None:
        return NOT_YET
    for k in range(1, 20):
        got, hint = call_student(fn, k)
        if hint:
            return hint
        if got != k:
            return (f"Not yet: for k={k} you gave {got}. The input x[t+1-k] is k - 1 steps before "
                    "the current input x[t]; a chunk of T steps spans T - 1 steps.")
    return "Correct: T = k. Any shorter window needs something else, such as a synthetic gradient."


def unigram_entropy(tokens: torch.Tensor, vocab: int) -> float:
    """Bits per symbol of the symbols' frequency distribution."""
    counts = torch.bincount(tokens, minlength=vocab).float()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * torch.log2(p)).sum())


def check_unigram(bits: float | None) -> str:
    """Exercise 3: the unigram entropy of the shipped corpus's training split."""
    if bits is None:
        return NOT_YET
    bits, hint = number_or_hint(bits, "a number of bits per character")
    if hint:
        return hint
    corpus = load_corpus("shakespeare")
    want = unigram_entropy(corpus.train, corpus.vocab)
    if abs(float(bits) - want) <= 0.01:
        return f"Correct: {want:.3f} bits per character."
    return (f"Not yet: {float(bits):.4g}. Count each character in corpus.train with torch.bincount, "
            "normalise, and take -sum p log2 p.")


def check_discount(fn: Callable[[float, int], float] | None) -> str:
    """Exercise 4: ``fn(scale, n)`` is the weight of the gradient from n chunks ahead in the
    bootstrapped target, Jacobians ignored."""
    if fn is None:
        return NOT_YET
    for scale in (0.1, 0.5, 1.0, 0.3):
        for n in range(0, 6):
            got, hint = call_student(fn, scale, n)
            if hint:
                return hint
            try:
                ok = abs(float(got) - scale ** n) <= 1e-9
            except (TypeError, ValueError):
                return f"Not yet: fn({scale}, {n}) returned {got!r}, not a number."
            if not ok:
                return (f"Not yet: fn({scale}, {n}) gave {got}. The chunk's own gradient (n = 0) has "
                        "weight 1; each boundary it crosses multiplies it by the scale once.")
    return ("Correct: scale ** n. With 0.1, the error from two chunks ahead arrives at 1%; with 0.5, at "
            "25%; with 1.0 nothing is discounted and the sum over a never-ending stream need not converge.")
