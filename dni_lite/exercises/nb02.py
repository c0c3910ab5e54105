"""Exercise checkers for notebook 02 (deep linear networks, BP(lambda), FA/DFA/Kickback)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ..experiments.deep_linear import DeepLinearNet, true_signals
from ..feedback import FixedSynthesizer
from ..experiments.linear import squared_loss
from ..experiments.representations import linear_cka
from ..runner import seeded
from . import NOT_YET



def check_linear_cka(my_cka: Callable[[Tensor, Tensor], float] | None) -> str:
    """Exercise 1: ``my_cka(x, y)`` must agree with ``linear_cka`` on random representations."""
    if my_cka is None:
        return NOT_YET
    g = torch.Generator().manual_seed(7)
    for n, d1, d2 in [(50, 4, 6), (80, 10, 3), (30, 5, 5)]:
        x = torch.randn(n, d1, generator=g) + 3.0          # not centred: centring is part of it
        y = x[:, :1] * torch.randn(1, d2, generator=g) + torch.randn(n, d2, generator=g)
        try:
            mine = float(my_cka(x.clone(), y.clone()))
        except Exception as exc:  # shown to the student
            return f"Not yet: your function raised {type(exc).__name__}: {exc}"
        reference = linear_cka(x, y)
        if abs(mine - reference) > 1e-4:
            hint = " Did you centre the columns first?" if abs(mine - reference) > 0.05 else ""
            return f"Not yet: for x {n}x{d1}, y {n}x{d2} you give {mine:.4f}, expected {reference:.4f}.{hint}"
    return "Correct: centre, then ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)."


def check_trivial_solution(answer: str | None) -> str:
    """Exercise 2: why does a synthesizer that does not see the label stall (multiple choice)."""
    if answer is None:
        return NOT_YET
    answer = str(answer).strip().lower()
    if answer == "b":
        return ("Correct: once the upper half is the best read-out of h, the error averaged over "
                "all y that share an h is zero, so the best label-free prediction is ~0 and the "
                "lower half stops moving.")
    if answer in ("a", "c", "d"):
        return "Not yet: look at the cosine and the synthesizer's target in the section 1 run."
    return "Not yet: answer with one letter, 'a', 'b', 'c' or 'd'."


def check_dfa_as_backprop(dfa_matrix: Callable[[Sequence[Tensor], int], Tensor] | None) -> str:
    """Exercise 3: ``dfa_matrix(weights, k)`` -> the DFA feedback matrix at cut k that IS backprop.

    In a deep linear network the gradient at cut k is the output error times a
    product of the weights above k; a DFA synthesizer holding that product is exact.
    """
    if dfa_matrix is None:
        return NOT_YET
    with seeded(3):
        net = DeepLinearNet(6, 5, 3, 5)
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(20, 6, generator=g), torch.randn(20, 3, generator=g)
    for k in (1, 2, 4):
        true, error = true_signals(net, x, y, squared_loss, [k])
        weights = [w.detach().clone() for w in net.weights]
        try:
            b = dfa_matrix(weights, k)
        except Exception as exc:  # shown to the student
            return f"Not yet: your function raised {type(exc).__name__}: {exc}"
        if not isinstance(b, Tensor) or tuple(b.shape) != (3, 5):
            return f"Not yet: at cut {k} the matrix must be a tensor of shape (3, 5) = (out_dim, width)."
        signal = FixedSynthesizer([b])(torch.zeros(20, 5), error) / x.shape[0]
        if not torch.allclose(signal, true[k], atol=1e-5):
            return (f"Not yet: at cut {k} your DFA signal differs from backprop's gradient. "
                    "Multiply the weights above the cut, top layer first.")
    return ("Correct: W_L @ ... @ W_{k+1}. DFA replaces this product by a fixed random matrix; "
            "FA replaces each factor.")
