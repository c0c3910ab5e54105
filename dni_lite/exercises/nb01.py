"""Exercise checkers for notebook 01 (synthetic gradients on a linear model)."""
from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch import Tensor

from ..experiments.linear import LinearNet, compare_linear, make_regression, squared_loss
from ..runner import rows as rows_of, seeded
from . import NOT_YET, call_student, number_or_hint



def check_exact_cdni(exact_cdni: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None) -> str:
    """Exercise 1: ``exact_cdni(W2, b2) -> (weight, bias)`` of a linear synthesizer on [h, y].

    The checker draws random upper modules and batches and compares the
    synthesizer's output with the true per-example dL/dh from autograd.
    """
    if exact_cdni is None:
        return NOT_YET
    g = torch.Generator().manual_seed(123)
    for _ in range(3):
        hidden, out = 6, 3
        w2, b2 = torch.randn(out, hidden, generator=g), torch.randn(out, generator=g)
        h = torch.randn(16, hidden, generator=g, requires_grad=True)
        y = torch.randn(16, out, generator=g)
        loss = squared_loss(h @ w2.T + b2, y)
        (true,) = torch.autograd.grad(loss, h)
        answer, hint = call_student(exact_cdni, w2.clone(), b2.clone())
        if hint:
            return hint
        if not (isinstance(answer, tuple) and len(answer) == 2
                and all(isinstance(t, torch.Tensor) for t in answer)):
            return "Not yet: return two tensors, (weight, bias)."
        weight, bias = answer
        if tuple(weight.shape) != (hidden, hidden + out) or tuple(bias.shape) != (hidden,):
            return (f"Not yet: weight must have shape ({hidden}, {hidden + out}) and bias "
                    f"({hidden},), got {tuple(weight.shape)} and {tuple(bias.shape)}.")
        predicted = torch.cat([h.detach(), y], dim=1) @ weight.T + bias
        if not torch.allclose(predicted, true * h.shape[0], atol=1e-4):
            return "Not yet: your synthesizer does not reproduce batch size x dL/dh. Expand W2^T (W2 h + b2 - y)."
    return "Correct: a linear synthesizer that sees y represents dL/dh exactly."


def check_slow_synthesizer(synth_lr: float | None) -> str:
    """Exercise 2: a synthesizer learning rate at which cDNI's final cosine stays below 0.9."""
    if synth_lr is None:
        return NOT_YET
    synth_lr, hint = number_or_hint(synth_lr, "a learning rate in (0, 1]")
    if hint:
        return hint
    if not 0 < synth_lr <= 1:
        return "Not yet: synth_lr must be a number in (0, 1]."
    rows = list(rows_of(compare_linear(synth_lr=float(synth_lr), variants="cdni", controls=())))
    tail = rows[-max(1, len(rows) // 10):]
    cosine = statistics.mean(r["cos/cdni"] for r in tail)
    if cosine < 0.9:
        return (f"Correct: with synth_lr={synth_lr:g} the final cDNI cosine is {cosine:.2f}; the "
                "synthesizer cannot keep up with the moving target W2^T(W2 h + b2 - y).")
    return f"Not yet: with synth_lr={synth_lr:g} the final cDNI cosine is {cosine:.3f} (>= 0.9)."


def check_best_unconditioned_cosine(cosine: float | None, seed: int = 0) -> str:
    """Exercise 3: cosine of the best *affine-in-h* gradient prediction at the backprop optimum.

    The reference trains the backprop model of ``compare_linear`` (default
    settings), fits per-example dL/dh on [h, 1] by least squares on the test
    set, and compares the fit's cosine with the student's value.
    """
    if cosine is None:
        return NOT_YET
    cosine, hint = number_or_hint(cosine, "a cosine in [-1, 1]")
    if hint:
        return hint
    reference = best_unconditioned_cosine(seed)
    if abs(float(cosine) - reference) <= 0.02:
        return (f"Correct: {reference:.3f}. Even the best synthesizer that sees only h misses most "
                "of the per-example gradient, which is driven by the noise in y.")
    return f"Not yet: your value {float(cosine):.3f} is not within 0.02 of the reference."


def best_unconditioned_cosine(seed: int = 0) -> float:
    """The reference for exercise 3 (see its docstring)."""
    data = make_regression(noise=0.5, seed=seed)
    with seeded(seed):
        model = LinearNet(10, 5, 5)           # compare_linear's default shape
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(1500):
        idx = torch.randint(0, data.x.shape[0], (32,), generator=g)
        opt.zero_grad()
        squared_loss(model(data.x[idx]), data.y[idx]).backward()
        opt.step()
    h = model.lower(data.x_test).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(squared_loss(model.upper(h), data.y_test), h)
    target = grad * h.shape[0]
    features = torch.cat([h.detach(), torch.ones(h.shape[0], 1)], dim=1)
    fit = features @ torch.linalg.lstsq(features, target).solution
    return float(torch.nn.functional.cosine_similarity(fit.flatten(), target.flatten(), dim=0))
