"""Read-outs: how good a synthetic gradient is, and how well a model classifies.

The true gradients the first two compare against are computed on the side and
never feed into training.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def cosine_similarity(synthetic: Tensor, true: Tensor) -> float:
    """Cosine between two gradients, each flattened over the whole batch.

    This is the direction the lower module actually moves in; 1 means the
    synthetic gradient points exactly where backprop would.
    """
    a, b = synthetic.detach().flatten().double(), true.detach().flatten().double()
    norm = a.norm() * b.norm()
    if norm == 0:
        return 0.0
    return float(torch.dot(a, b) / norm)


def relative_error(synthetic: Tensor, true: Tensor) -> float:
    """``||synthetic - true|| / ||true||`` over the whole batch (0 is perfect)."""
    a, b = synthetic.detach().double(), true.detach().double()
    denom = b.norm()
    if denom == 0:
        return 0.0 if a.norm() == 0 else float("inf")
    return float((a - b).norm() / denom)


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Classification accuracy in percent, with the model in eval mode.

    One output unit is a logit (class 1 when positive, ``y`` holds 0/1);
    several are class scores (``y`` holds class indices). NaN once the
    outputs are not finite, so a diverged run is reported as such.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train(was_training)
    return percent_correct(out, y)


def percent_correct(outputs: Tensor, y: Tensor) -> float:
    """Percent of rows of ``outputs`` (logits or class scores) that match ``y``; NaN if not finite."""
    if not torch.isfinite(outputs).all():
        return float("nan")
    predicted = (outputs > 0).float() if outputs.shape[1] == 1 else outputs.argmax(dim=1)
    return 100.0 * float((predicted == y).float().mean())


def activation_health(h: Tensor) -> dict[str, float]:
    """How a layer's output looks over a batch: ``norm``, the mean per-example L2 norm, and
    ``dead``, the share of units that are zero on every example.

    A ReLU unit that never fires passes no gradient and carries no feature, so a
    lower module whose updates kill most of its units has thrown its features away.
    """
    h = h.detach()
    if h.dim() != 2 or h.shape[0] == 0:
        raise ValueError(f"h must be a [batch, units] tensor with at least one row, "
                         f"got shape {list(h.shape)}")
    return {"norm": float(h.norm(dim=1).mean()), "dead": float((h == 0).all(dim=0).float().mean())}
