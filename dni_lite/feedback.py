"""Feedback Alignment, Direct Feedback Alignment and Kickback as *fixed* synthesizers.

Czarnecki et al. (2017) point out that several alternatives to backprop fit
the synthetic-gradient mould: each layer gets a learning signal from a
"synthesizer" that is fixed instead of learned, and whose context is the
error at the output, ``e = dl/dy_hat`` per example:

* Feedback Alignment (FA, Lillicrap et al. 2016): the error travels down
  through fixed random matrices ``B`` instead of the forward weights ``W``;
  at the cut after layer k the signal is ``e @ B_L @ ... @ B_{k+1}``.
* Direct Feedback Alignment (DFA, Nøkland 2016): one fixed random matrix per
  cut maps ``e`` straight to that layer: ``e @ B_k``.
* Kickback (Balduzzi et al. 2015): every unit receives the same summed error,
  ``e @ 1`` (a matrix of ones). We scale it by ``1/sqrt(width)`` so its signal
  has the size of the others.

A ``FixedSynthesizer`` has the same call signature as ``Synthesizer``
(``forward(h, context)`` returns a per-example gradient), so it plugs into a
``DecoupledInterface`` unchanged. It has no parameters: nothing to train.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .validate import check_choice, check_int

FIXED_METHODS = ("fa", "dfa", "kickback")


class FixedSynthesizer(nn.Module):
    """A synthesizer that is not learned: the output error times fixed matrices.

    Args:
        matrices: applied in order to the context ``e`` (shape ``[batch, out_dim]``):
            ``e @ matrices[0] @ matrices[1] ...``; each is laid out like an
            ``nn.Linear`` weight, ``[fan_out, fan_in]``, so backprop itself is
            the special case ``matrices = [W_L, ..., W_{k+1}]``.

    Its context is the per-example output error, so ``context_dim`` is the
    output size; ``uses_error`` tells the training loop to pass that error.
    """

    uses_error = True

    def __init__(self, matrices: Sequence[Tensor]) -> None:
        super().__init__()
        matrices = [m.detach().clone() for m in matrices]
        if not matrices or any(m.dim() != 2 for m in matrices):
            raise ValueError("matrices must be a non-empty list of 2-d tensors")
        for upper, lower in zip(matrices[:-1], matrices[1:]):
            if upper.shape[1] != lower.shape[0]:
                raise ValueError(f"matrices do not chain: {list(upper.shape)} then {list(lower.shape)}")
        for i, m in enumerate(matrices):
            self.register_buffer(f"b{i}", m)
        self.n = len(matrices)
        self.context_dim = matrices[0].shape[0]
        self.dim = matrices[-1].shape[1]

    @property
    def matrices(self) -> list[Tensor]:
        return [getattr(self, f"b{i}") for i in range(self.n)]

    def forward(self, h: Tensor, context: Tensor | None = None) -> Tensor:
        """The fixed signal for ``h``: the output error ``context`` times the matrices."""
        if context is None or context.shape != (h.shape[0], self.context_dim):
            raise ValueError(f"context must be the output error, shape [{h.shape[0]}, "
                             f"{self.context_dim}], got "
                             f"{None if context is None else list(context.shape)}")
        signal = context.to(h.dtype)
        for m in self.matrices:
            signal = signal @ m
        return signal


def fixed_synthesizers(method: str, weights: Sequence[Tensor], cuts: Sequence[int],
                       seed: int = 0, feedback: Sequence[Tensor] | None = None
                       ) -> dict[int, FixedSynthesizer]:
    """One fixed synthesizer per cut for ``"fa"``, ``"dfa"`` or ``"kickback"``.

    Args:
        method: which rule.
        weights: the network's forward weights ``[W_1, ..., W_L]`` (only their shapes are
            used: the feedback matrices are drawn fresh, like the forward weights are
            initialised, with standard deviation ``1/sqrt(fan_in)``).
        cuts: cut k sits after layer k (``1 <= k < L``).
        seed: seed of the random feedback matrices.
        feedback: FA only: use these matrices (one per layer, shaped like ``weights``)
            instead of random ones; ``feedback=weights`` turns FA into backprop.
    """
    check_choice("method", method, FIXED_METHODS)
    depth = len(weights)
    check_int("seed", seed, 0)
    for k in cuts:
        check_int("cut", k, 1, depth - 1)
    g = torch.Generator().manual_seed(seed)
    out_dim = weights[-1].shape[0]
    if method == "fa":
        if feedback is None:
            feedback = [torch.randn(w.shape, generator=g) / w.shape[1] ** 0.5 for w in weights]
        if [tuple(b.shape) for b in feedback] != [tuple(w.shape) for w in weights]:
            raise ValueError("feedback must hold one matrix per layer, shaped like weights")
        return {k: FixedSynthesizer(feedback[k:][::-1]) for k in cuts}
    result = {}
    for k in cuts:
        width = weights[k - 1].shape[0]
        if method == "dfa":
            b = torch.randn(out_dim, width, generator=g) / width ** 0.5
        else:
            b = torch.ones(out_dim, width) / width ** 0.5
        result[k] = FixedSynthesizer([b])
    return result
