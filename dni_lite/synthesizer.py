"""Synthesizers: small models that predict the error gradient at an interface.

A synthesizer M sees the activation h that a lower module sends up (and,
for cDNI, a context c such as the one-hot label) and predicts dL/dh before
the upper module has even run. Following the paper, its last layer starts at
zero, so at step 0 it predicts a zero gradient and moves nothing.

Units: synthesizers predict the *per-example* gradient, i.e. batch size times
dL/dh of a batch-mean loss. Raw gradients of a mean loss shrink with the batch
size and are too small to regress on comfortably. ``interface.per_example`` and
``interface.batch_mean`` convert in both directions, and only they do.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .validate import check_bool, check_choice, check_int

KINDS = ("linear", "mlp")


class Synthesizer(nn.Module):
    """Predicts dL/dh from h (and an optional context) with a linear map or an MLP.

    Args:
        dim: size of the activation h (and of the predicted gradient).
        context_dim: size of the context c; 0 means no context (plain DNI).
        kind: ``"linear"`` or ``"mlp"`` (two hidden ReLU layers).
        hidden_dim: width of the MLP's hidden layers (ignored for ``"linear"``).
        zero_init: start the output layer at zero, so the first predictions are 0.
        projection: if > 0, the synthesizer sees h only through a fixed random matrix
            with this many columns (a buffer, never trained; the context passes beside it;
            more than ``dim`` columns see no more of h than ``dim`` do). Its products have
            ``projection`` columns instead of ``dim``: cheaper where the lower module sets
            the pace (notebook 07's pipeline uses 128 at widths 512 and 1024).
    """

    def __init__(
        self,
        dim: int,
        context_dim: int = 0,
        kind: str = "linear",
        hidden_dim: int = 64,
        zero_init: bool = True,
        projection: int = 0,
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, 1)
        self.context_dim = check_int("context_dim", context_dim, 0)
        self.kind = check_choice("kind", kind, KINDS)
        check_int("hidden_dim", hidden_dim, 1)
        self.zero_init = check_bool("zero_init", zero_init)
        self.projection = check_int("projection", projection, 0)
        if projection:
            # scaled so that a projected activation has about the size of one unit of h
            self.register_buffer("directions", torch.randn(dim, projection) / dim ** 0.5)
        in_dim = (projection or dim) + context_dim
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(in_dim, dim))
        else:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.ReLU(),
                nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                nn.Linear(hidden_dim, dim),
            )
        if zero_init:
            last = self.net[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, h: Tensor, context: Tensor | None = None) -> Tensor:
        """Predict the per-example gradient for ``h`` (shape ``[batch, dim]``)."""
        if self.projection:
            h = h @ self.directions
        if self.context_dim:
            if context is None:
                raise ValueError(f"context must be a tensor of shape [batch, {self.context_dim}] "
                                 "for a conditioned (cDNI) synthesizer, got None")
            if context.shape != (h.shape[0], self.context_dim):
                raise ValueError(f"context must have shape [{h.shape[0]}, {self.context_dim}], "
                                 f"got {list(context.shape)}")
            h = torch.cat([h, context.to(h.dtype)], dim=1)
        return self.net(h)
