"""The decoupled neural interface: where a synthetic gradient is sent and where its synthesizer learns.

Everything the course calls "the mechanism" is in this file:

* ``label_context(y, n_classes)``: the one place where a label becomes a cDNI
  synthesizer's context (a one-hot vector);
* ``synthetic_gradient(synth, h, context)``: the synthesizer's prediction of
  dL/dh, in the units of a batch-mean loss, ready to push into the lower module;
* ``synthesizer_loss(synth, h, target, context)``: the synthesizer's regression
  toward a target dL/dh that arrived for ``h`` (true, or *bootstrapped*: computed
  by an upper module that itself learned from a synthetic gradient);
* ``per_example`` / ``batch_mean``: the unit convention, held here once.
  Synthesizers predict the *per-example* gradient (batch size x dL/dh of a
  batch-mean loss); the raw gradient of a mean loss shrinks with the batch
  size and is too small to regress on comfortably.

``DecoupledInterface`` wraps these for the teaching API of notebooks 01-02.
Backprop locks the lower module A until the upper module B has run forward
and backward; the interface cuts the graph at A's output h:

1. ``forward(h, context)`` hands B a detached copy of h and asks the
   synthesizer for a prediction of dL/dh right away;
2. ``backward()`` pushes that synthetic gradient into A, so A can update at
   once (update unlocking);
3. when a target for h arrives, ``synthesizer_loss(target)`` regresses the
   synthesizer toward it.

BP(lambda) mixes the two signals A learns from:
``lam * true + (1 - lam) * synthetic``. ``lam=0`` is pure synthetic
gradients, ``lam=1`` is exactly backprop (A then has to wait for B again).

Schedules where the target arrives later (stale targets, pipeline stages,
the next truncation chunk) call ``synthesizer_loss`` with the activation the
target belongs to; nothing here remembers a previous call.

**Where the bootstrapped target forms.** A module that learned from a synthetic
gradient backpropagates it to its own input: the gradient that lands there is
the bootstrapped target for the synthesizer below (``mlp.layer_step`` returns
it as ``grad_in``; in a recurrent core it lands on the chunk's first state).
Only the synthesizer just under the real loss regresses on a true gradient.

**Ablations** (``ABLATIONS``): the controls that switch one piece of the
mechanism off, each applied here and chosen by an experiment's ``ablation``
setting: ``"zero_synthetic_gradient"`` (the lower module receives zero; the
synthesizer still learns), ``"shuffled_context"`` (the cDNI context is permuted
across the batch: same statistics, no link to each example) and
``"no_bootstrap"`` (a synthesizer whose target would be bootstrapped regresses
on zero instead).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from typing import Any, Sequence

from torch import Tensor, nn

from .validate import check_bool, check_choice, check_float, check_int

ABLATIONS = ("none", "zero_synthetic_gradient", "shuffled_context", "no_bootstrap")
# the suffix of a control copy's variant name: "cdni" under "shuffled_context" is "cdni_shuffled"
CONTROL_SUFFIX = {"zero_synthetic_gradient": "zero_sg", "shuffled_context": "shuffled",
                  "no_bootstrap": "no_bootstrap", "one_fast_update_per_window": "one_update"}


def control_name(variant: str, ablation: str) -> str:
    """The name of ``variant``'s control copy under ``ablation`` (``"cdni_shuffled"``)."""
    return f"{variant}_{CONTROL_SUFFIX[ablation]}"


def check_controls(controls: Any, variants: Sequence[str], ablations: Sequence[str]) -> None:
    """Validate a ``controls`` setting: a tuple of ``(variant, ablation)`` pairs."""
    if not isinstance(controls, tuple) or not all(
            isinstance(c, tuple) and len(c) == 2 for c in controls):
        raise ValueError(f"controls must be a tuple of (variant, ablation) pairs, got {controls!r}")
    for variant, ablation in controls:
        check_choice("controls[][0]", variant, variants)
        check_choice("controls[][1]", ablation, ablations)


# -- the unit convention ------------------------------------------------------------------
def per_example(gradient: Tensor) -> Tensor:
    """A raw dL/dh of a batch-mean loss, in per-example units (x batch size)."""
    return gradient * gradient.shape[0]


def batch_mean(prediction: Tensor) -> Tensor:
    """A per-example prediction, in the units of a batch-mean loss's gradient (/ batch size)."""
    return prediction / prediction.shape[0]


# -- the mechanism as pure functions --------------------------------------------------------
def label_context(y: Tensor, n_classes: int, shuffle: torch.Generator | None = None) -> Tensor:
    """The cDNI context: the one-hot label, as floats (``[batch, n_classes]``).

    With ``shuffle`` (the ``"shuffled_context"`` ablation) its rows are permuted
    across the batch by that generator.
    """
    check_int("n_classes", n_classes, 1)
    return shuffle_rows(F.one_hot(y, n_classes).float(), shuffle)


def shuffle_rows(context: Tensor, shuffle: torch.Generator | None) -> Tensor:
    """``context`` with its rows permuted by ``shuffle`` (unchanged when it is None)."""
    if shuffle is None:
        return context
    return context[torch.randperm(context.shape[0], generator=shuffle)]


def context_shuffler(ablation: str, seed: int = 0) -> torch.Generator | None:
    """The generator that shuffles contexts under ``"shuffled_context"``, else None."""
    return torch.Generator().manual_seed(seed) if ablation == "shuffled_context" else None


def regression_target(target: Tensor, bootstrapped: bool, ablation: str = "none") -> Tensor:
    """What a synthesizer regresses on: ``target``, or zero when it is bootstrapped under
    the ``"no_bootstrap"`` ablation."""
    return torch.zeros_like(target) if bootstrapped and ablation == "no_bootstrap" else target


def synthetic_gradient(synth: nn.Module, h: Tensor, context: Tensor | None = None) -> Tensor:
    """The synthesizer's prediction of dL/dh for a batch-mean loss (detached: no graph)."""
    return batch_mean(synth(h.detach(), context).detach())


def regression_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """MSE between a per-example prediction and a raw target dL/dh (converted to per-example)."""
    return F.mse_loss(prediction, per_example(target.detach()))


def synthesizer_loss(synth: nn.Module, h: Tensor, target: Tensor,
                     context: Tensor | None = None) -> Tensor:
    """Regression loss of ``synth`` toward ``target``, a raw dL/dh that arrived for ``h``.

    ``target`` is the true gradient when the module above learned from the
    real loss, and a bootstrapped one when it learned from a synthetic
    gradient itself. Backward this loss to train the synthesizer.
    """
    return regression_loss(synth(h.detach(), context), target)


# -- the teaching API -------------------------------------------------------------------
class DecoupledInterface(nn.Module):
    """Cut the graph between two modules and bridge it with a synthesizer.

    Args:
        synthesizer: predicts the per-example gradient at the cut.
        lam: BP(lambda) mixing weight in [0, 1]; 0 is pure SG, 1 is backprop.
        zero_output: send zero instead of the prediction (the
            ``"zero_synthetic_gradient"`` ablation); the synthesizer still learns.
    """

    def __init__(self, synthesizer: nn.Module, lam: float = 0.0, zero_output: bool = False) -> None:
        super().__init__()
        if not isinstance(synthesizer, nn.Module):
            raise ValueError(f"synthesizer must be an nn.Module, got {type(synthesizer).__name__}")
        self.synthesizer = synthesizer
        self.lam = check_float("lam", lam, 0.0, 1.0)
        self.zero_output = check_bool("zero_output", zero_output)
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
    def prediction(self) -> Tensor:
        """The synthesizer's last prediction (per-example units), with its graph: a worker
        keeps it to regress on when its target arrives, instead of predicting again."""
        self._require_forward()
        return self._prediction

    @property
    def synthetic_gradient(self) -> Tensor:
        """The synthetic dL/dh (batch-mean units) the lower module receives: the
        synthesizer's prediction, or zero under ``zero_output``."""
        self._require_forward()
        if self.zero_output:
            return torch.zeros_like(self._prediction).detach()
        return batch_mean(self._prediction.detach())

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
        """``regression_loss`` of the last prediction toward a target dL/dh.

        ``target`` is a raw gradient of the batch-mean loss (by default the one
        received from the upper module).
        """
        self._require_forward()
        if target is None:
            target = self.received_gradient
        if target is None:
            raise ValueError("target is needed: run the upper module's backward first "
                             "or pass a target gradient explicitly")
        return regression_loss(self._prediction, target)

    def _require_forward(self) -> None:
        if self._prediction is None:
            raise RuntimeError("call the interface on an activation (forward) first")
