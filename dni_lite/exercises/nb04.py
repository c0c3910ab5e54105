"""Exercise checkers for notebook 04 (stochastic, stale and completely unlocked training)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..diagnostics import relative_error
from ..experiments.timeline import Costs, simulate
from ..runner import seeded
from . import NOT_YET, call_student, number_or_hint



def check_input_model(make_input_model: Callable[[int, int], nn.Module] | None) -> str:
    """Exercise 1: ``make_input_model(in_dim, out_dim)`` returns a synthetic-input model
    that, trained by regression, predicts a random ReLU layer's output from x to within
    a relative error of 0.25 (a linear map cannot: it stays near 0.43)."""
    if make_input_model is None:
        return NOT_YET
    g = torch.Generator().manual_seed(7)
    in_dim, out_dim = 12, 24
    w = torch.randn(in_dim, out_dim, generator=g) / in_dim ** 0.5
    x = torch.randn(512, in_dim, generator=g)
    x_test = torch.randn(512, in_dim, generator=g)
    layer = lambda inputs: torch.relu(inputs @ w)            # the layer below, frozen
    with seeded(0):
        model, hint = call_student(make_input_model, in_dim, out_dim)
    if hint:
        return hint
    if not isinstance(model, nn.Module):
        return "Not yet: make_input_model must return an nn.Module."
    params = list(model.parameters())
    if not params:
        return "Not yet: the model has no parameters to train."
    opt = torch.optim.Adam(params, lr=3e-3)
    for _ in range(400):
        opt.zero_grad()
        prediction, hint = call_student(model, x)
        if hint:
            return hint
        if not isinstance(prediction, torch.Tensor) or prediction.shape != (512, out_dim):
            return f"Not yet: the model must map [batch, {in_dim}] to [batch, {out_dim}]."
        nn.functional.mse_loss(prediction, layer(x)).backward()
        opt.step()
    with torch.no_grad():
        error = relative_error(model(x_test), layer(x_test))
    if error < 0.25:
        return f"Correct: relative error {error:.2f} on unseen inputs."
    return (f"Not yet: relative error {error:.2f} (need < 0.25). The real input is a ReLU "
            "output: a linear map cannot bend like it.")


def check_unlocked_speedup(speedup: float | None) -> str:
    """Exercise 2: the simulated speed-up of complete unlocking over backprop for this
    notebook's 4-layer network (forward 1, backward 2, synthesizer 0.5 per layer,
    no delay, 100 minibatches)."""
    if speedup is None:
        return NOT_YET
    speedup, hint = number_or_hint(speedup, "a speed-up (a number)")
    if hint:
        return hint
    truth = simulate(Costs.uniform(4, 1.0, 2.0, synth=0.5), "unlocked", minibatches=100).speedup
    if abs(speedup - truth) < 1e-3:
        return ("Correct: the two middle layers each run a synthetic-input and a synthetic-"
                "gradient model, so they set the pace: 4 x 3 / 4 = 3.")
    return ("Not yet: no layer waits, so the slowest worker sets the pace. Count how many "
            "synthesizers each of the 4 layers runs, or call dni_lite.timeline.simulate.")
