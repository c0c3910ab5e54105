"""The decoupled neural interface: a cut between a lower and an upper module.

Backprop locks the lower module A until the upper module B has run forward
and backward. A ``DecoupledInterface`` cuts the graph at A's output h:

1. ``forward(h, context)`` hands B a detached copy of h and asks the
   synthesizer for a prediction of dL/dh right away;
2. ``backward()`` pushes that synthetic gradient into A, so A can update at
   once (update unlocking);
3. when a target gradient for h arrives (the true one from B, or a
   *bootstrapped* one that B computed from its own synthetic gradient),
   ``synthesizer_loss(target)`` regresses the synthesizer toward it.

BP(lambda) mixes the two signals A learns from:
``lam * true + (1 - lam) * synthetic``. ``lam=0`` is pure synthetic
gradients, ``lam=1`` is exactly backprop (A then has to wait for B again).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .synthesizer import Synthesizer
from .validate import check_float


class DecoupledInterface(nn.Module):
    """Cut the graph between two modules and bridge it with a synthesizer.

    Args:
        synthesizer: predicts the per-example gradient at the cut.
        lam: BP(lambda) mixing weight in [0, 1]; 0 is pure SG, 1 is backprop.
    """

    def __init__(self, synthesizer: Synthesizer, lam: float = 0.0) -> None:
        super().__init__()
        if not isinstance(synthesizer, nn.Module):
            raise ValueError(f"synthesizer must be an nn.Module, got {type(synthesizer).__name__}")
        self.synthesizer = synthesizer
        self.lam = check_float("lam", lam, 0.0, 1.0)
        self._h: Tensor | None = None
        self._h_upper: Tensor | None = None
        self._prediction: Tensor | None = None

    def forward(self, h: Tensor, context: Tensor | None = None) -> Tensor:
        """Cut at ``h``: return the activation for the upper module.

        The returned tensor is a detached leaf, so the upper module's backward
        stops here and leaves the gradient it computed in ``.grad``.
        """
        self._h = h
        self._prediction = self.synthesizer(h.detach(), context)
        self._h_upper = h.detach().requires_grad_(True)
        return self._h_upper

    @property
    def synthetic_gradient(self) -> Tensor:
        """The synthesizer's prediction of dL/dh for a batch-mean loss."""
        self._require_forward()
        return self._prediction.detach() / self._prediction.shape[0]

    @property
    def received_gradient(self) -> Tensor | None:
        """The gradient the upper module sent back to the cut (``None`` until it has).

        It is the true dL/dh when the upper module backpropagated a real loss,
        and a bootstrapped target when the upper module itself learned from a
        synthetic gradient further up.
        """
        self._require_forward()
        return self._h_upper.grad

    def backward(self, true_gradient: Tensor | None = None) -> Tensor:
        """Send the learning signal into the lower module and return it.

        With ``lam == 0`` this needs nothing from above: the lower module is
        update-unlocked. With ``lam > 0`` it mixes in ``true_gradient``
        (by default the gradient received from the upper module).
        """
        self._require_forward()
        signal = self.synthetic_gradient
        if self.lam > 0:
            if true_gradient is None:
                true_gradient = self.received_gradient
            if true_gradient is None:
                raise ValueError("true_gradient is needed when lam > 0: run the upper module's "
                                 "backward first or pass it explicitly")
            signal = self.lam * true_gradient.detach() + (1.0 - self.lam) * signal
        if self._h.requires_grad:
            self._h.backward(signal)
        return signal

    def synthesizer_loss(self, target: Tensor | None = None) -> Tensor:
        """Mean squared error between the prediction and a target dL/dh.

        ``target`` is a raw gradient of the batch-mean loss (by default the one
        received from the upper module); it is scaled to per-example units.
        """
        self._require_forward()
        if target is None:
            target = self.received_gradient
        if target is None:
            raise ValueError("target is needed: run the upper module's backward first "
                             "or pass a target gradient explicitly")
        per_example = target.detach() * self._prediction.shape[0]
        return F.mse_loss(self._prediction, per_example)

    def _require_forward(self) -> None:
        if self._prediction is None:
            raise RuntimeError("call the interface on an activation (forward) first")
