"""How good is a synthetic gradient? Measures against the true gradient.

These are read-outs only: the true gradients they compare against are computed
on the side and never feed into training.
"""
from __future__ import annotations

import torch
from torch import Tensor


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
