"""Exercise checkers for notebook 03 (the update-decoupled MLP)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..interface import DecoupledInterface
from ..experiments.mlp import MLP, layer_step, make_stages
from ..synthesizer import Synthesizer
from ..runner import seeded
from . import NOT_YET, call_student



def check_output_gradient(output_gradient: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
                          | None) -> str:
    """Exercise 1: ``output_gradient(W, b, h, y)``: batch size x dL/dh at the output layer.

    The loss is the batch-mean cross-entropy of the logits ``h @ W.T + b``
    with integer labels ``y``; the checker compares with autograd.
    """
    if output_gradient is None:
        return NOT_YET
    g = torch.Generator().manual_seed(303)
    for _ in range(3):
        w, b = torch.randn(10, 8, generator=g), torch.randn(10, generator=g)
        h = torch.randn(16, 8, generator=g, requires_grad=True)
        y = torch.randint(0, 10, (16,), generator=g)
        (true,) = torch.autograd.grad(F.cross_entropy(h @ w.T + b, y), h)
        got, hint = call_student(output_gradient, w.clone(), b.clone(), h.detach().clone(), y.clone())
        if hint:
            return hint
        if not isinstance(got, Tensor) or tuple(got.shape) != (16, 8):
            return "Not yet: return a tensor of shape [batch, width] (here [16, 8])."
        if not torch.allclose(got, true * 16, atol=1e-5):
            return ("Not yet: your gradient differs from autograd's (times the batch size). "
                    "Start from dL/dz = softmax(z) - onehot(y) per example.")
    return ("Correct: B dL/dh = (softmax(z) - onehot(y)) W. The label enters linearly, which is "
            "why a synthesizer that sees it (cDNI) has a much easier regression problem.")


def check_bootstrap_target(bootstrap_target: Callable[[nn.Module, Synthesizer, Tensor], Tensor]
                           | None) -> str:
    """Exercise 2: ``bootstrap_target(layer, synthesizer, h)``: what ``layer`` sends down.

    ``layer`` is a hidden layer whose output is decoupled by ``synthesizer``
    (no context); ``h`` is its input. Return the gradient of the batch-mean
    loss with respect to ``h`` that the layer computes from its synthetic
    gradient: the target for the synthesizer below.
    """
    if bootstrap_target is None:
        return NOT_YET
    with seeded(304):          # the same draws every time, the caller's RNG untouched
        for _ in range(3):
            model = MLP(6, 4, depth=2, width=8)
            synth = Synthesizer(8, zero_init=False)
            h = torch.randn(16, 8)
            layer = model.layers[1]
            state = {k: v.clone() for k, v in layer.state_dict().items()}
            got, hint = call_student(bootstrap_target, layer, synth, h.clone())
            if hint:
                return hint
            layer.load_state_dict(state)            # undo anything the attempt changed
            reference = layer_step(layer, None, h.clone(), interface=DecoupledInterface(synth)).grad_in
            if not isinstance(got, Tensor) or got.shape != h.shape:
                return "Not yet: return a tensor with the shape of h."
            if not torch.allclose(got, reference, atol=1e-6):
                return ("Not yet: run the layer on a copy of h that requires grad, push the "
                        "synthetic gradient (the synthesizer's output divided by the batch size) "
                        "into the layer's output, and return the gradient that lands on h.")
    return ("Correct: this gradient, built from the layer's own synthetic gradient, is the "
            "bootstrapped target of the synthesizer below.")


def check_true_targets(modes: list[str], answer: Iterable[int] | None) -> str:
    """Exercise 3: which synthesizers regress on the *true* gradient? Layer numbers (1-based).

    A synthesizer at boundary k sees the true gradient only when the stage
    above it ends in the output layer; every other one bootstraps.
    """
    if answer is None:
        return NOT_YET
    stages = make_stages(modes)
    depth = len(modes)
    expected = {k + 1 for k, mode in enumerate(modes) if mode in ("dni", "cdni")
                and any(stage[0] == k + 1 and stage[-1] == depth for stage in stages)}
    if isinstance(answer, str):
        return f"Not yet: you gave the text {answer!r}; give a list of layer numbers, e.g. [2]."
    try:
        given = {int(a) for a in answer}
    except (TypeError, ValueError):
        return "Not yet: give a list of layer numbers, e.g. [2]."
    if given == expected:
        return (f"Correct: {sorted(expected)}. Only the stage holding the output layer sees the "
                "loss; every synthesizer below it learns from a prediction of a prediction.")
    return f"Not yet: {sorted(given)} is not the set; group the layers into stages first."
