"""One worker's share of the network: consecutive MLP layers, their synthesizer, their optimisers.

Every worker builds the same seeded model and takes its own stage of it, so
no weights ever travel; only activations (up) and targets (down) do.
"""
from __future__ import annotations

import itertools
import time
from collections import deque

import torch
from torch import Tensor, nn

from ..data.datasets import Dataset, load_dataset, minibatch_indices
from ..diagnostics import percent_correct
from ..experiments.mlp import MLP, LayerStep, layer_step
from ..interface import (DecoupledInterface, context_shuffler, label_context, regression_target,
                         synthesizer_loss)
from ..runner import seeded
from ..synthesizer import Synthesizer
from .config import ParallelConfig


def evaluate(stages: list[Stage], data: Dataset) -> float:
    """Test accuracy (percent) of the whole pipeline, its stages run one after the other."""
    h = data.x_test
    for stage in stages:
        h = stage.infer(h)
    return percent_correct(h, data.y_test)


def load_data(seed: int = 0) -> Dataset:
    """MNIST-1D (generated offline), standardised on the training split."""
    return load_dataset("mnist1d", seed=seed)


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> list[Tensor]:
    """The same seeded stream of minibatch indices on every worker (epochs, no ragged end)."""
    batches = minibatch_indices(n, batch_size, torch.Generator().manual_seed(seed + 1))
    return list(itertools.islice(batches, steps))


class Stage:
    """One worker's share: consecutive MLP layers, the synthesizer at their output, optimisers.

    ``step`` is notebook 03's ``layer_step`` (forward, update at once from the
    synthetic gradient, or from the real loss on the last stage);
    ``learn_synthesizer`` regresses the synthesizer toward a target that
    arrived later, on the activation (and context) it belongs to. ``busy_s``
    adds up the compute time of both.
    The regression runs the synthesizer forward again on the kept
    activation: regressing the prediction made at ``step`` instead (no second
    forward, but the weights it had one update ago) cost notebook 07's model
    8.7 points of test accuracy (57.5% to 48.8%, seed 0).
    """

    def __init__(self, module: nn.Module, interface: DecoupledInterface | None,
                 config: ParallelConfig, n_classes: int, first: bool,
                 bootstrapped: bool = False) -> None:
        self.module, self.interface = module, interface
        self.first, self.last = first, interface is None
        self.n_classes, self.conditioned = n_classes, config.method == "cdni"
        # the targets from the stage above are bootstrapped unless it is the last one
        self.bootstrapped, self.ablation = bootstrapped, config.ablation
        self.shuffle = context_shuffler(config.ablation, config.seed)
        self.opt = torch.optim.Adam(module.parameters(), lr=config.lr)
        self.synth_opt = (torch.optim.Adam(interface.parameters(), lr=config.synth_lr)
                          if interface is not None else None)
        self.pending: deque[tuple[Tensor, Tensor | None]] = deque()
        self.busy_s = 0.0

    def step(self, h_in: Tensor, y: Tensor) -> LayerStep:
        """Forward and update at once; ``h_out`` goes up, ``grad_in`` goes down."""
        t0 = time.perf_counter()
        context = label_context(y, self.n_classes, self.shuffle) if self.conditioned else None
        result = layer_step(self.module, self.opt, h_in.detach(), interface=self.interface,
                            context=context if self.interface else None,
                            y=y if self.last else None, send_gradient=not self.first)
        if self.interface is not None:
            result.h_out = result.h_out.detach()
            self.pending.append((result.h_out, context))
        self.busy_s += time.perf_counter() - t0
        return result

    def learn_synthesizer(self, target: Tensor) -> float:
        """Regress the synthesizer, on the oldest pending activation, toward ``target``."""
        t0 = time.perf_counter()
        h, context = self.pending.popleft()
        self.synth_opt.zero_grad(set_to_none=True)
        target = regression_target(target, self.bootstrapped, self.ablation)
        loss = synthesizer_loss(self.interface.synthesizer, h, target, context)
        loss.backward()
        self.synth_opt.step()
        self.busy_s += time.perf_counter() - t0
        return float(loss.detach())

    def state(self) -> dict:
        """The stage's weights and its synthesizer's, for comparing runs."""
        return {"module": self.module.state_dict(),
                "synthesizer": self.interface.synthesizer.state_dict() if self.interface else None}

    @torch.no_grad()
    def infer(self, h: Tensor) -> Tensor:
        self.module.eval()
        return self.module(h)


def build_stages(config: ParallelConfig, data: Dataset) -> list[Stage]:
    """All K stages, from the same seeded initial weights on every worker."""
    with seeded(config.seed):
        model = MLP(data.in_dim, data.n_classes, config.depth, config.width,
                    batchnorm=config.batchnorm)
    stages = []
    bounds = config.stage_layers()
    with seeded(config.seed + 1):
        for k, (a, b) in enumerate(bounds):
            interface = None
            if k < len(bounds) - 1:
                interface = DecoupledInterface(Synthesizer(
                    config.width, data.n_classes if config.method == "cdni" else 0,
                    kind=config.synth_kind, hidden_dim=config.synth_hidden),
                    zero_output=config.ablation == "zero_synthetic_gradient")
            module = nn.Sequential(*[model.layers[i] for i in range(a, b)])
            stages.append(Stage(module, interface, config, data.n_classes, first=(k == 0),
                                bootstrapped=k < len(bounds) - 2))
    return stages
